"""Titles as a padded table of entity keys, so the soft logic runs vectorised over a catalogue.

The cross-encoder is asked once per distinct (type, text) entity of the table (the keys); each
title is a row of indices into them. Built the same way at inference (EBRM.score) and in
training (qi_forward), so both read the same rows and weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepbow.priors import BUNDLE_WORDS
from deepbow.text import normalize
from ebrm.cache import Key
from ebrm.lexicon import Entity


def main_products(ents: Sequence[Entity]) -> set[str]:
    """The product a title sells, as far as words tell: its last tagged product word, bundle
    words skipped (Taobao titles tend to end with what they sell: 游泳潜水套手机防水袋; the
    bundle words are those of DeepBoW's title prior, deepbow/priors.py)."""
    tagged = sorted((e for e in ents if e.type == "product" and not e.candidate),
                    key=lambda e: e.end)
    core = [e for e in tagged if e.text not in BUNDLE_WORDS] or tagged
    return {core[-1].text} if core else set()


def or_weights(ents: Sequence[Entity], gamma: float = 1.0, modifier: float = 1.0,
               secondary: float = 1.0) -> list[float]:
    """Each entity's weight in the OR of product entities (1 for the others): confidence **
    gamma for an untagged candidate; × `modifier` for a candidate directly followed by
    another product word, which it qualifies (手机 in 手机防水袋, 手机流量: head-final
    compounds); × `secondary` for a product word other than the title's main product (an
    accessory's "for" word, a bundle's extras), unless one ends with the other (智能手机 /
    手机)."""
    main = main_products(ents) if secondary != 1.0 else set()
    starts = {e.start for e in ents if e.type == "product" and (not e.candidate or e.conf >= 0.99)}
    out = []
    for e in ents:
        w = 1.0
        if e.type == "product":
            if e.candidate:
                w = e.conf ** gamma
                if modifier != 1.0 and e.end in starts:
                    w *= modifier
            if main and not any(e.text.endswith(m) or m.endswith(e.text) for m in main):
                w *= secondary
        out.append(w)
    return out


class EntityTable:
    """Titles as rows of entity keys, padded for vectorised soft logic.

    keys: the distinct (type, text) entities; prod[i] indexes title i's product entities and
    every[i] all its tagged entities into keys, padded with len(keys) (a sentinel whose s is 0
    and c is 1: the identities of OR and AND, so padding never changes a result). conf[i] holds
    the weight of each product entity in the OR (or_weights: confidence ** gamma for an
    untagged candidate, less for a modifier or a secondary product). An untagged brand
    candidate joins the AND (when brand_gamma is not None) softened by its weight
    w = confidence ** brand_gamma: it reads 1 − w (1 − c), so a word that is only somewhat
    brand-like can only somewhat conflict; every_w holds w.
    """

    def __init__(self, lists: Sequence[Sequence[Entity]], gamma: float = 1.0,
                 brand_gamma: float | None = None, texts: Sequence[str] | None = None,
                 modifier: float = 1.0, secondary: float = 1.0) -> None:
        if texts is not None and len(texts) != len(lists):
            raise ValueError(f"{len(texts)} texts for {len(lists)} entity lists")
        # the titles, for the text checks (brand presence, back-off); normalised only when one
        # is asked for
        self.texts = None if texts is None else list(texts)
        self._joined: str | None = None
        self._starts = np.zeros(0, np.int64)
        index: dict[Key, int] = {}
        rows_p: list[dict[int, float]] = []
        rows_a: list[dict[int, float]] = []
        rows_b: list[list[int]] = []
        for ents in lists:
            ids = [index.setdefault((e.type, e.text), len(index)) for e in ents]
            rows_b.append(list(dict.fromkeys(i for i, e in zip(ids, ents, strict=True)
                                             if e.type == "brand")))
            prod: dict[int, float] = {}
            every: dict[int, float] = {}
            weights = or_weights(ents, gamma, modifier, secondary)
            for i, e, w in zip(ids, ents, weights, strict=True):
                if not e.candidate:
                    every[i] = 1.0
                elif e.type == "brand" and brand_gamma is not None:
                    every[i] = max(every.get(i, 0.0), e.conf ** brand_gamma)
                if e.type == "product":
                    prod[i] = max(prod.get(i, 0.0), w)
            rows_p.append(prod)
            rows_a.append(every)
        self.keys: list[Key] = list(index)
        self.prod = _pad([list(r) for r in rows_p], len(self.keys))
        self.every = _pad([list(r) for r in rows_a], len(self.keys))
        self.conf = _weights(rows_p, self.prod.shape)
        self.every_w = _weights(rows_a, self.every.shape)
        self.brands = _pad(rows_b, len(self.keys))  # brand entities and brand candidates

    def __len__(self) -> int:
        return len(self.prod)

    def containing(self, words: Sequence[str]) -> np.ndarray:
        """Per title, whether any of `words` occurs in its text: a few str.find calls over all
        the titles joined (built once per table), not a Python loop per title."""
        if self.texts is None:
            raise ValueError("this EntityTable was built without the titles' texts")
        if self._joined is None:
            norm = [normalize(t) for t in self.texts]
            self._joined = "\x00".join(norm)
            lengths = np.array([len(t) + 1 for t in norm], np.int64)
            self._starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        out = np.zeros(len(self.texts), bool)
        big, starts = self._joined, self._starts
        for w in words:
            if not w or "\x00" in w:
                continue
            pos = big.find(w)
            while pos >= 0:
                i = int(np.searchsorted(starts, pos, "right")) - 1
                out[i] = True
                nxt = int(starts[i + 1]) if i + 1 < len(starts) else len(big)
                pos = big.find(w, nxt)
        return out


def _weights(rows: list[dict[int, float]], shape: tuple[int, int]) -> np.ndarray:
    out = np.ones(shape, np.float64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = list(r.values())
    return out


def _pad(rows: list[list[int]], sentinel: int) -> np.ndarray:
    out = np.full((len(rows), max((len(r) for r in rows), default=0)), sentinel, np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
