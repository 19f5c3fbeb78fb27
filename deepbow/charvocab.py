"""Characters in, ids out: the one character vocabulary of every network here.

DeepBoW's Transformer, EBRM's tagger and EBRM's cross-encoder all read characters. A vocabulary
is the ordered list of its symbols (stored one a line as chars.txt in a model directory): the
specials first (padding 0, unknown 1), then the characters seen often enough in training, most
frequent first. Unknown characters share id 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from deepbow.text import normalize_chars

PAD, UNK = 0, 1


class CharVocab:
    """An ordered list of symbols (specials, then characters) and its index."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.chars = list(symbols)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def build(cls, texts: Iterable[str], specials: Sequence[str], min_count: int = 2,
              order: str = "frequency") -> CharVocab:
        """Specials, then the characters of `texts` seen at least `min_count` times, by
        decreasing count ("frequency", ties by character) or by character ("sorted")."""
        counts = Counter(c for t in texts for c in t if not c.isspace())
        kept = [c for c, n in counts.items() if n >= min_count]
        kept.sort(key=(lambda c: (-counts[c], c)) if order == "frequency" else None)
        return cls([*specials, *kept])

    def __len__(self) -> int:
        return len(self.chars)

    def id(self, ch: str) -> int:
        return self.index.get(ch, UNK)

    def ids(self, text: str) -> np.ndarray:
        """Ids of the characters of `text`, each normalised (normalize_chars) first."""
        get = self.index.get
        return np.array([get(c, UNK) for c in normalize_chars(text)], np.int64)
