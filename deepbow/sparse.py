"""Sparse bags of words: term ids with weights, and the one dot product every scorer uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SparseVector:
    """A text's bag of words, sorted by term id.

    `words` names each term (the surface word for hash buckets, which have no name of their
    own); `expanded` is True for terms that are not in the text but were added by expansion.
    """

    ids: np.ndarray  # int32, sorted, unique
    weights: np.ndarray  # float32, > 0
    words: list[str] = field(default_factory=list)
    expanded: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def as_dict(self) -> dict[str, float]:
        return {w: float(x) for w, x in zip(self.words, self.weights, strict=True)}

    def top(self, n: int | None = None) -> list[tuple[str, float, bool]]:
        """(word, weight, expanded) by decreasing weight."""
        order = np.argsort(-self.weights, kind="stable")[:n]
        exp = self.expanded if self.expanded is not None else np.zeros(len(self), bool)
        return [(self.words[i], float(self.weights[i]), bool(exp[i])) for i in order]


def matched(q: SparseVector, d: SparseVector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into q and d of their common terms, and each term's contribution q·d."""
    _, qi, di = np.intersect1d(q.ids, d.ids, assume_unique=True, return_indices=True)
    contrib = q.weights[qi].astype(np.float64) * d.weights[di].astype(np.float64)
    return qi, di, contrib


def dot(q: SparseVector, d: SparseVector) -> float:
    """Relevance = Σ over matched terms of query weight × title weight (float64 sum)."""
    return float(matched(q, d)[2].sum())
