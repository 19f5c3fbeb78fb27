"""The model's vocabulary: the term space sparse vectors live in, and the character inputs.

Term ids: 0 is padding; 1..n_terms-1 are known terms (jieba words and frequent word-bigram
phrases such as 手机壳 = 手机 + 壳), most frequent first; n_terms..n_terms+n_buckets-1 are hash
buckets (crc32 of the word) for the long tail, so that no input word is ever dropped. Synonym
expansion reaches only the most frequent known terms (ids below the model's expansion_vocab): a
bucket stands for many words and would expand to noise, and rare targets cost time for little.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

PAD, UNK, CLS, SEP = 0, 1, 2, 3
CHAR_SPECIALS = ["<pad>", "<unk>", "<cls>", "<sep>"]


@dataclass
class TextTerm:
    """A term found in a text: its id, its surface string and the word positions it covers."""

    term_id: int
    surface: str
    positions: list[int]


class Vocabulary:
    def __init__(self, terms: list[str], chars: list[str], n_buckets: int) -> None:
        if not terms or terms[0] != "<pad>":
            raise ValueError("terms[0] must be '<pad>'")
        self.terms = terms
        self.chars = chars
        self.n_buckets = n_buckets
        self.term_index = {t: i for i, t in enumerate(terms)}
        self.char_index = {c: i for i, c in enumerate(chars)}

    @property
    def n_terms(self) -> int:
        return len(self.terms)

    @property
    def size(self) -> int:
        """Size of the whole term-id space, buckets included."""
        return len(self.terms) + self.n_buckets

    def bucket(self, word: str) -> int:
        return self.n_terms + zlib.crc32(word.encode("utf-8")) % self.n_buckets

    def word_id(self, word: str) -> int:
        i = self.term_index.get(word)
        return i if i is not None else self.bucket(word)

    def char_id(self, ch: str) -> int:
        return self.char_index.get(ch, UNK)

    def term_name(self, term_id: int) -> str:
        if 0 < term_id < self.n_terms:
            return self.terms[term_id]
        return f"#{term_id - self.n_terms}"

    def text_terms(self, words: list[str]) -> list[TextTerm]:
        """The distinct terms of a segmented text: its words, then its known bigram phrases."""
        found: dict[str, TextTerm] = {}
        for i, w in enumerate(words):
            tt = found.get(w)
            if tt is None:
                found[w] = TextTerm(self.word_id(w), w, [i])
            else:
                tt.positions.append(i)
        for i in range(len(words) - 1):
            ph = words[i] + words[i + 1]
            pid = self.term_index.get(ph)
            if pid is None:
                continue
            tt = found.get(ph)
            if tt is None:
                found[ph] = TextTerm(pid, ph, [i, i + 1])
            else:
                tt.positions.extend((i, i + 1))
        # two different words can share a bucket: keep one entry per id
        by_id: dict[int, TextTerm] = {}
        for tt in found.values():
            prev = by_id.get(tt.term_id)
            if prev is None:
                by_id[tt.term_id] = tt
            else:
                prev.positions.extend(tt.positions)
        return list(by_id.values())

    @classmethod
    def build(cls, segmented: Iterable[list[str]], user_words: Iterable[str] = (),
              max_words: int = 40_000, min_word_count: int = 2, max_phrases: int = 10_000,
              min_phrase_count: int = 5, min_char_count: int = 2,
              n_buckets: int = 8192) -> Vocabulary:
        """Count words, adjacent word pairs and characters over a segmented corpus."""
        wc: Counter[str] = Counter()
        pc: Counter[str] = Counter()
        cc: Counter[str] = Counter()
        for words in segmented:
            wc.update(words)
            pc.update(words[i] + words[i + 1] for i in range(len(words) - 1)
                      if len(words[i]) + len(words[i + 1]) <= 6)
            for w in words:
                cc.update(w)
        user = {w for w in user_words if wc.get(w, 0) >= 1}
        words = [w for w, n in wc.most_common() if n >= min_word_count or w in user]
        words = words[:max_words]
        have = set(words)
        phrases = [p for p, n in pc.most_common() if n >= min_phrase_count and p not in have]
        counts = {w: wc[w] for w in words} | {p: pc[p] for p in phrases[:max_phrases]}
        terms = ["<pad>"] + sorted(counts, key=lambda t: (-counts[t], t))
        chars = CHAR_SPECIALS + sorted(c for c, n in cc.items() if n >= min_char_count)
        return cls(terms, chars, n_buckets)
