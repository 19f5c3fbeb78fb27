"""Operators' edits as they act on scoring: a value passed to score, search and explain.

An `Edits` holds the journal's effect that needs no index (index/edits.py replays a journal
into one): word scales and bans, synonym links, pinned entity judgements and entity-type rules.
DeepBoW reads the first two (they change the query vector: a scale of a word's weight scales its
contribution whichever side it is put on), EBRM the last two. It is plain data, so one value
serves every scorer, and a scorer never keeps edits as state of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np

from deepbow.sparse import SparseVector

MAX_QUERY_CODE_EDITED = 1 << 24  # a boosted query code stays far from int64 overflow


@dataclass
class Edits:
    """Word scales (word → factor, 0 = banned), links ((query word, title word) → weight),
    pins ((query or glob, entity type, entity) → (s, c), either None) and type rules
    ((category, entity type) → must_match | ignore | default)."""

    scales: dict[str, float] = field(default_factory=dict)
    links: dict[tuple[str, str], float] = field(default_factory=dict)
    pins: dict[tuple[str, str, str], tuple[float | None, float | None]] = field(
        default_factory=dict)
    rules: dict[tuple[str, str], str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.scales or self.links or self.pins or self.rules)

    def pin_for(self, query: str, etype: str, entity: str) -> tuple[float | None, float | None]:
        """The pinned (s, c) for a normalised query and entity: an exact query first, then
        the newest matching pattern; (None, None) when nothing is pinned."""
        got = self.pins.get((query, etype, entity))
        if got is not None:
            return got
        for (pat, t, e), v in reversed(self.pins.items()):
            if t == etype and e == entity and fnmatchcase(query, pat):
                return v
        return (None, None)

    def rule_for(self, categories: Iterable[str], etype: str) -> str:
        """The rule for an entity type in an item of these categories ("*" = every item)."""
        mode = self.rules.get(("*", etype), "default")
        for cat in categories:
            mode = self.rules.get((cat, etype), mode)
        return mode


@dataclass
class WordEdits:
    """The word part of an Edits resolved against one vocabulary (term ids)."""

    term_factor: dict[int, float] = field(default_factory=dict)
    links: dict[int, list[tuple[int, str, float]]] = field(default_factory=dict)

    @classmethod
    def compile(cls, edits: Edits | None, vocab) -> WordEdits:
        out = cls()
        if edits is None:
            return out
        for word, f in edits.scales.items():
            out.term_factor[vocab.word_id(word)] = f
        for (a, b), w in edits.links.items():
            out.links.setdefault(vocab.word_id(a), []).append((vocab.word_id(b), b, w))
        return out

    def __bool__(self) -> bool:
        return bool(self.term_factor or self.links)

    def apply(self, qv: SparseVector) -> SparseVector:
        """The query vector with links added (B joins with w × A's code) and factors applied;
        codes stay integers, so scores stay exact."""
        if not self:
            return qv
        exp = qv.expanded if qv.expanded is not None else np.zeros(len(qv), bool)
        rows: dict[int, list] = {int(t): [int(c), w, bool(e)]
                                 for t, c, w, e in zip(qv.ids, qv.codes, qv.words, exp,
                                                       strict=True)}
        for t, (c, _, _) in list(rows.items()):
            for b, word_b, w in self.links.get(t, ()):
                code = int(round(c * w))
                if b in rows:
                    rows[b][0] = max(rows[b][0], code)
                else:
                    rows[b] = [code, word_b, True]
        for t, row in rows.items():
            f = self.term_factor.get(t)
            if f is not None:  # a product of many scales may pass any int: cap it first
                row[0] = int(round(min(row[0] * f, MAX_QUERY_CODE_EDITED)))
        keep = sorted(t for t, r in rows.items() if r[0] > 0)
        return SparseVector(np.array(keep, np.int32),
                            np.array([rows[t][0] for t in keep], np.int64), qv.scale,
                            [rows[t][1] for t in keep],
                            np.array([rows[t][2] for t in keep], bool))
