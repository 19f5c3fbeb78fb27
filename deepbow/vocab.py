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

from deepbow.charvocab import CharVocab

CHAR_SPECIALS = ("<pad>", "<unk>", "<cls>", "<sep>")
# With a bigram prefix ("c:"), character-bigram terms live apart from words: "c:手机" (the 手机
# inside 手机壳) is not the word 手机, so a whole-word match and a match inside another word can
# weigh differently. Without one, a bigram shares the id of the word of that surface.
BIGRAM_PREFIX = "c:"


@dataclass
class TextTerm:
    """A term found in a text: its id, its surface string and the positions it covers.

    A position is (stream, index): stream 0 = the word stream, 1 = the character stream.
    """

    term_id: int
    surface: str
    positions: list[tuple[int, int]]


def han_bigrams(chars: list[str]) -> list[tuple[str, int]]:
    """Adjacent pairs of Chinese characters with the index of the first (character n-grams let
    a query match a title whose segmentation differs: 咳嗽感冒 / 感冒过后久咳嗽)."""
    return [(chars[i] + chars[i + 1], i) for i in range(len(chars) - 1)
            if _is_han(chars[i]) and _is_han(chars[i + 1])]


def _is_han(c: str) -> bool:
    return "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff"


class Vocabulary:
    """The term space (known terms, then hash buckets) and the character inputs."""

    def __init__(self, terms: list[str], chars: list[str], n_buckets: int,
                 bigram_prefix: str = "") -> None:
        if not terms or terms[0] != "<pad>":
            raise ValueError("terms[0] must be '<pad>'")
        self.terms = terms
        self.charvocab = CharVocab(chars)
        self.n_buckets = n_buckets
        self.bigram_prefix = bigram_prefix
        self.term_index = {t: i for i, t in enumerate(terms)}

    @property
    def chars(self) -> list[str]:
        return self.charvocab.chars

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
        return self.charvocab.id(ch)

    def term_name(self, term_id: int) -> str:
        if 0 < term_id < self.n_terms:
            return self.terms[term_id]
        return f"#{term_id - self.n_terms}"

    def head_word(self, word: str) -> str | None:
        """The longest known term that ends `word` and is shorter than it (鼠标 for 无线鼠标,
        手机 for 智能手机), or None. Chinese compounds are head-final: a 无线鼠标 is a 鼠标,
        while 鼠标垫, which only starts with it, gets none."""
        if len(word) < 3 or not _is_han(word[-1]):
            return None
        for a in range(1, len(word) - 1):
            if word[a:] in self.term_index:
                return word[a:]
        return None

    def text_terms(self, words: list[str], chars: list[str] | None = None,
                   head_words: bool = False) -> list[TextTerm]:
        """The distinct terms of a text: its words, its known word-bigram phrases, with
        `head_words` the head of each compound word (see head_word) and, when `chars` is given,
        its Chinese character bigrams (see BIGRAM_PREFIX)."""
        found: dict[str, TextTerm] = {}

        def add(surface: str, term_id: int, pos: list[tuple[int, int]]) -> None:
            tt = found.get(surface)
            if tt is None:
                found[surface] = TextTerm(term_id, surface, pos)
            else:
                tt.positions.extend(pos)

        for i, w in enumerate(words):
            add(w, self.word_id(w), [(0, i)])
            head = self.head_word(w) if head_words else None
            if head is not None:
                add(head, self.term_index[head], [(0, i)])
        for i in range(len(words) - 1):
            ph = words[i] + words[i + 1]
            pid = self.term_index.get(ph)
            if pid is not None:
                add(ph, pid, [(0, i), (0, i + 1)])
        for bg, i in han_bigrams(chars or []):
            term = self.bigram_prefix + bg
            add(term, self.word_id(term), [(1, i), (1, i + 1)])
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
              n_buckets: int = 8192, max_char_bigrams: int = 0,
              min_char_bigram_count: int = 5, bigram_prefix: str = "") -> Vocabulary:
        """Count words, adjacent word pairs, character bigrams and characters."""
        wc: Counter[str] = Counter()
        pc: Counter[str] = Counter()
        bc: Counter[str] = Counter()
        segmented = list(segmented)
        for words in segmented:
            wc.update(words)
            pc.update(words[i] + words[i + 1] for i in range(len(words) - 1)
                      if len(words[i]) + len(words[i + 1]) <= 6)
            if max_char_bigrams:
                bc.update(b for b, _ in han_bigrams(list("".join(words))))
        user = {w for w in user_words if wc.get(w, 0) >= 1}
        words = [w for w, n in wc.most_common() if n >= min_word_count or w in user]
        words = words[:max_words]
        have = set(words)
        phrases = [p for p, n in pc.most_common() if n >= min_phrase_count and p not in have]
        counts = {w: wc[w] for w in words} | {p: pc[p] for p in phrases[:max_phrases]}
        bigrams = [bigram_prefix + b for b, n in bc.most_common()
                   if n >= min_char_bigram_count and bigram_prefix + b not in counts]
        counts |= {b: bc[b.removeprefix(bigram_prefix)] for b in bigrams[:max_char_bigrams]}
        terms = ["<pad>"] + sorted(counts, key=lambda t: (-counts[t], t))
        chars = CharVocab.build(("".join(w) for w in segmented), CHAR_SPECIALS,
                                min_char_count, order="sorted")
        return cls(terms, chars.chars, n_buckets, bigram_prefix)
