"""Sparse bags of words, and the one dot product every scorer uses.

Weights are stored as integer codes on a fixed scale per side (titles: 8-bit, as in the index;
queries: 12-bit), so a score is an integer sum times two scales. That makes `deepbow score`,
`deepbow explain` and the inverted index compute bit-identical numbers, whatever the order in
which they add the matched terms, and lets the index compare scores exactly (ties by doc id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TITLE_MAX_CODE = 255
QUERY_MAX_CODE = 4095


@dataclass
class SparseVector:
    """A text's bag of words, sorted by term id.

    `words` names each term (the surface word for hash buckets, which have no name of their
    own); `expanded` is True for terms that are not in the text but were added by expansion.
    """

    ids: np.ndarray  # int32, sorted, unique
    codes: np.ndarray  # int32, > 0: weight = code × scale
    scale: float = 1.0
    words: list[str] = field(default_factory=list)
    expanded: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def weights(self) -> np.ndarray:
        return self.codes.astype(np.float64) * self.scale

    def as_dict(self) -> dict[str, float]:
        return {w: float(x) for w, x in zip(self.words, self.weights, strict=True)}

    def top(self, n: int | None = None) -> list[tuple[str, float, bool]]:
        """(word, weight, expanded) by decreasing weight."""
        order = np.argsort(-self.codes, kind="stable")[:n]
        exp = self.expanded if self.expanded is not None else np.zeros(len(self), bool)
        w = self.weights
        return [(self.words[i], float(w[i]), bool(exp[i])) for i in order]


def matched(q: SparseVector, d: SparseVector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into q and d of their common terms, and each term's contribution q·d."""
    _, qi, di = np.intersect1d(q.ids, d.ids, assume_unique=True, return_indices=True)
    prod = q.codes[qi].astype(np.int64) * d.codes[di].astype(np.int64)
    return qi, di, prod * (q.scale * d.scale)


def dot(q: SparseVector, d: SparseVector) -> float:
    """Relevance = Σ over matched terms of query weight × title weight (exact integer sum)."""
    _, qi, di = np.intersect1d(q.ids, d.ids, assume_unique=True, return_indices=True)
    total = int(np.dot(q.codes[qi].astype(np.int64), d.codes[di].astype(np.int64)))
    return total * (q.scale * d.scale)


def quantize(weights: np.ndarray, scale: float, max_code: int) -> np.ndarray:
    """Codes for float weights: round to the nearest step, saturate at max_code."""
    return np.clip(np.rint(np.asarray(weights, np.float64) / scale), 0, max_code).astype(np.int32)
