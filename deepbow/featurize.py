"""Text → model inputs, the one path used by training and by encoding.

A text becomes its character ids, its word ids (known words or hash buckets) and the distinct
terms it contains (words and known bigram phrases), each with up to two word positions whose
contextual vectors represent it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepbow.text import Segmenter, chars, normalize
from deepbow.vocab import TextTerm, Vocabulary


@dataclass
class Features:
    char_ids: list[int]
    word_ids: list[int]
    terms: list[TextTerm]  # positions: (0, index into word_ids) or (1, index into char_ids)

    @property
    def term_ids(self) -> list[int]:
        return [t.term_id for t in self.terms]


class Featurizer:
    def __init__(self, vocab: Vocabulary, segmenter: Segmenter, max_chars: int = 64,
                 max_words: int = 40, char_bigrams: bool = False,
                 head_words: bool = False) -> None:
        self.vocab = vocab
        self.segmenter = segmenter
        self.max_chars = max_chars
        self.max_words = max_words
        self.char_bigrams = char_bigrams
        self.head_words = head_words

    def __call__(self, text: str) -> Features:
        norm = normalize(text)
        cs = chars(norm)[: self.max_chars]
        words = self.segmenter.words(norm)[: self.max_words]
        terms = self.vocab.text_terms(words, cs if self.char_bigrams else None, self.head_words)
        return Features([self.vocab.char_id(c) for c in cs],
                        [self.vocab.word_id(w) for w in words], terms)

    @staticmethod
    def collate(feats: list[Features]) -> dict[str, np.ndarray]:
        """Pad a batch into arrays; every text gets at least one (padding) slot per stream.

        term_pos indexes the concatenation [chars (lc slots), words (lw slots)]."""
        b = len(feats)
        lc = max(1, max(len(f.char_ids) for f in feats))
        lw = max(1, max(len(f.word_ids) for f in feats))
        lt = max(1, max(len(f.terms) for f in feats))
        char_ids = np.zeros((b, lc), np.int64)
        word_ids = np.zeros((b, lw), np.int64)
        term_ids = np.zeros((b, lt), np.int64)
        term_pos = np.zeros((b, lt, 2), np.int64)
        for i, f in enumerate(feats):
            char_ids[i, : len(f.char_ids)] = f.char_ids
            word_ids[i, : len(f.word_ids)] = f.word_ids
            for j, t in enumerate(f.terms):
                term_ids[i, j] = t.term_id
                a = t.positions[0]
                b = t.positions[1] if len(t.positions) > 1 else a
                term_pos[i, j, 0] = a[1] + (lc if a[0] == 0 else 0)
                term_pos[i, j, 1] = b[1] + (lc if b[0] == 0 else 0)
        return {"char_ids": char_ids, "word_ids": word_ids, "term_ids": term_ids,
                "term_pos": term_pos}
