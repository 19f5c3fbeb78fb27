"""Characters in, ids out: the one input vocabulary of the EBRM tagger and QE cross-encoder.

Both networks read characters (the tagger must cut entities anywhere; the cross-encoder compares
query and entity strings character by character). Characters are normalised one by one (NFKC,
lower case) so a title keeps its length and entity spans point into the text the user gave.
Unknown characters share one id; character bigrams are hashed (crc32, stable across processes).
"""

from __future__ import annotations

import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable

import numpy as np

PAD, UNK, CLS, SEP = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "[CLS]", "[SEP]")
N_BIGRAM_BUCKETS = 20011


def norm_char(c: str) -> str:
    """NFKC + lower case of one character, kept one character long; whitespace → a space."""
    if c.isspace():
        return " "
    n = unicodedata.normalize("NFKC", c).lower()
    return n if len(n) == 1 else c.lower()


def norm_chars(text: str) -> str:
    return "".join(norm_char(c) for c in text)


class CharVocab:
    """Characters seen at least `min_count` times, plus specials and entity-type tokens."""

    def __init__(self, chars: list[str]) -> None:
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def build(cls, texts: Iterable[str], types: Iterable[str], min_count: int = 2) -> CharVocab:
        counts = Counter(c for t in texts for c in norm_chars(t))
        kept = sorted((c for c, n in counts.items() if n >= min_count and c != " "),
                      key=lambda c: (-counts[c], c))
        return cls([*SPECIALS, *(f"<{t}>" for t in types), " ", *kept])

    def __len__(self) -> int:
        return len(self.chars)

    def ids(self, text: str) -> np.ndarray:
        get = self.index.get
        return np.array([get(c, UNK) for c in norm_chars(text)], np.int64)

    def type_id(self, typ: str) -> int:
        return self.index.get(f"<{typ}>", UNK)


def bigram_ids(text: str) -> np.ndarray:
    """Hashed bigram of each character with the next one (the last with an end mark)."""
    t = norm_chars(text) + "\x03"
    return np.array([zlib.crc32(t[i:i + 2].encode("utf-8")) % N_BIGRAM_BUCKETS + 1
                     for i in range(len(t) - 1)], np.int64)
