"""Gazetteer lookups: the longest-match baseline tagger and the tagger's lexicon features.

A title is scanned left to right; at each position the longest gazetteer word starting there is
taken (forward maximum matching) and the scan jumps past it. Words listed both as a product and
as a brand are read as a product (product words are what a query asks for most). The same
matches, written as B/I/E/S marks per character and type, are input features of the neural
tagger, so the tagger learns when to trust the gazetteer and when not to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepbow.text import normalize

LEXICON_TYPES = ("product", "brand")


@dataclass(frozen=True)
class Entity:
    """An entity of a title: its type, its normalised text and its character span. A
    `candidate` is a product word the tagger did not tag (a gazetteer product word, or a word of
    the title with `conf` = the tagger's mean probability of a product tag over its characters)."""

    type: str
    text: str
    start: int = -1
    end: int = -1
    conf: float = 1.0
    candidate: bool = False

    def to_json(self) -> dict:
        return {"type": self.type, "text": self.text, "start": self.start, "end": self.end,
                "confidence": self.conf, "candidate": self.candidate}


class Lexicon:
    """Product and brand words (normalised, 2–12 characters)."""

    def __init__(self, products: Iterable[str], brands: Iterable[str]) -> None:
        self.words: dict[str, str] = {}
        for w in brands:
            self._add(w, "brand")
        for w in products:  # products last: they win a word listed as both
            self._add(w, "product")
        self.max_len = max((len(w) for w in self.words), default=0)

    def _add(self, word: str, typ: str) -> None:
        w = normalize(word)
        if 2 <= len(w) <= 12:
            self.words[w] = typ

    def of_type(self, typ: str) -> list[str]:
        return sorted(w for w, t in self.words.items() if t == typ)

    @classmethod
    def from_gazetteers(cls, folder: str | Path) -> Lexicon:
        """product*.dic and brand*.dic files, one word a line."""
        folder = Path(folder)

        def read(pattern: str) -> list[str]:
            out: list[str] = []
            for f in sorted(folder.glob(pattern)):
                out += f.read_text(encoding="utf-8").split("\n")
            return out

        return cls(read("product*.dic"), read("brand*.dic"))

    def longest_match(self, text: str) -> list[Entity]:
        """Forward maximum matching over a normalised text."""
        out: list[Entity] = []
        i, n = 0, len(text)
        while i < n:
            for j in range(min(n, i + self.max_len), i + 1, -1):
                typ = self.words.get(text[i:j])
                if typ is not None:
                    out.append(Entity(typ, text[i:j], i, j))
                    i = j
                    break
            else:
                i += 1
        return out

    def features(self, text: str, matches: list[Entity] | None = None) -> np.ndarray:
        """[len(text), 8] float marks: B/I/E/S of a longest-match word, per lexicon type
        (`matches`: longest_match(text), when the caller has it already)."""
        f = np.zeros((len(text), 4 * len(LEXICON_TYPES)), np.float32)
        for e in self.longest_match(text) if matches is None else matches:
            base = 4 * LEXICON_TYPES.index(e.type)
            if e.end - e.start == 1:
                f[e.start, base + 3] = 1
                continue
            f[e.start, base] = 1
            f[e.start + 1:e.end - 1, base + 1] = 1
            f[e.end - 1, base + 2] = 1
        return f
