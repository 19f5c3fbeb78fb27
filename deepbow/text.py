"""Text normalisation and segmentation: the one place both models and the baselines read text.

Chinese runs go through jieba with the e-commerce user dictionary (gazetteer product and brand
words, and the entity strings of the NER training titles) so that words such as 鼠标垫 stay whole.
ASCII letter/digit runs (model numbers, sizes, brands such as iphone13) are kept whole by our own
regex: jieba would otherwise split "20000" into "2000" + "0".
"""

from __future__ import annotations

import logging
import re
import unicodedata
import warnings
from collections.abc import Iterable

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*|[\u3400-\u9fff\uf900-\ufaff]+|\S")
_HAN_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORDISH_RE = re.compile(r"[a-z0-9\u3400-\u9fff\uf900-\ufaff]")


def normalize(text: str) -> str:
    """NFKC (full-width to half-width), lower case, whitespace collapsed: the form of queries,
    words and cache keys."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def normalize_char(c: str) -> str:
    """NFKC + lower case of one character, kept one character long; whitespace becomes a space."""
    if c.isspace():
        return " "
    n = unicodedata.normalize("NFKC", c).lower()
    return n if len(n) == 1 else c.lower()


def normalize_chars(text: str) -> str:
    """Character by character normalize_char: the text keeps its length, so an entity's span
    found in the normalised text points into the text the user gave (EBRM's tagger reads
    this form; `normalize` may merge or drop characters)."""
    return "".join(normalize_char(c) for c in text)


def chars(text: str) -> list[str]:
    """The character stream of a normalised text, whitespace dropped."""
    return [c for c in text if not c.isspace()]


def user_word_freq(word: str) -> int:
    """jieba frequency for a user-dictionary word absent from jieba's own dictionary.

    Longer words get larger frequencies so that they win over their parts, while two-character
    words stay modest and do not swallow a neighbour's character (手 + 机壳 instead of 手机 + 壳).
    """
    return min(100_000, 30 * 10 ** (len(word) - 2))


class Segmenter:
    """jieba with a user dictionary, plus whole ASCII runs; returns word tokens only."""

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        with warnings.catch_warnings():  # jieba imports pkg_resources, which warns on import
            warnings.simplefilter("ignore", UserWarning)
            import jieba

        jieba.setLogLevel(logging.WARNING)
        self._tk = jieba.Tokenizer()
        self._tk.initialize()
        self.user_words = sorted({w for w in user_words if len(w) >= 2})
        for w in self.user_words:
            if not self._tk.FREQ.get(w):
                self._tk.add_word(w, user_word_freq(w))
        self._cache: dict[str, list[str]] = {}

    def words(self, text: str) -> list[str]:
        """Word tokens of an already normalised text; punctuation and spaces are dropped."""
        out: list[str] = []
        for m in _TOKEN_RE.finditer(text):
            tok = m.group(0)
            if _HAN_RE.match(tok):
                cached = self._cache.get(tok)
                if cached is None:
                    cached = self._tk.lcut(tok, HMM=True)
                    if len(self._cache) < 200_000:
                        self._cache[tok] = cached
                out.extend(cached)
            elif _WORDISH_RE.match(tok):
                out.append(tok)
        return out
