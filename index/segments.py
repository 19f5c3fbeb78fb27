"""What a catalogue keeps per segment besides the postings: the items and their filters.

Per segment (files named seg-<uid>.*): the items as JSONL with a byte-offset array (a hit's
title is read on demand, nothing is parsed at load), and filter bitmaps for each short string
field (field=value → local doc numbers) as serialized roaring bitmaps. Files are written once
(temp file, then rename) and never changed, like the postings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyroaring import BitMap

from deepbow.fileio import atomic_open

FILTER_MAX_LEN = 64


@dataclass
class Hit:
    """A search result: the engine's id, score, title and matched words, and the item's own
    fields apart (an item field named "score" or "rank" never hides the engine's)."""

    id: str
    score: float
    title: str
    fields: dict
    matched: list[tuple[str, float]] = field(default_factory=list)  # (word, contribution)

    def to_json(self) -> dict:
        return {"id": self.id, "score": self.score, "title": self.title, "fields": self.fields,
                "matched": [{"word": w, "contribution": c} for w, c in self.matched]}


def item_filters(item: dict) -> list[tuple[str, str]]:
    """(field, value) pairs a filter can select on: short string fields and lists of them."""
    out = []
    for k, v in item.items():
        if k in ("id", "title"):
            continue
        vals = v if isinstance(v, list) else [v]
        out += [(k, x) for x in vals if isinstance(x, str) and 0 < len(x) <= FILTER_MAX_LEN]
    return out


def item_categories(item: dict) -> list[str]:
    """An item's categories for the type rules: its "category" field (a string or a list)."""
    v = item.get("category", [])
    return [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]


class SegmentStore:
    """Items, ids and filter bitmaps of one segment (files named seg-<uid>.*)."""

    def __init__(self, folder: Path, uid: str) -> None:
        self.folder, self.uid = folder, uid
        self._offsets: np.ndarray | None = None
        self._filters: dict | None = None
        self._ids: list[str] | None = None

    def names(self) -> list[str]:
        return [f"seg-{self.uid}.items.jsonl", f"seg-{self.uid}.offsets.npy",
                f"seg-{self.uid}.filters.json"]

    @staticmethod
    def write(folder: Path, uid: str, items: Sequence[dict]) -> list[str]:
        """Write a segment's item files; returns their names."""
        offsets = np.zeros(len(items) + 1, np.int64)
        filters: dict[str, dict[str, BitMap]] = {}
        with atomic_open(folder / f"seg-{uid}.items.jsonl", "wb") as fh:
            pos = 0
            for i, it in enumerate(items):
                line = (json.dumps(it, ensure_ascii=False) + "\n").encode("utf-8")
                fh.write(line)
                pos += len(line)
                offsets[i + 1] = pos
                for f, v in item_filters(it):
                    filters.setdefault(f, {}).setdefault(v, BitMap()).add(i)
        with atomic_open(folder / f"seg-{uid}.offsets.npy", "wb") as fh:
            np.save(fh, offsets)
        ser = {f: {v: bm.serialize().hex() for v, bm in vals.items()}
               for f, vals in filters.items()}
        with atomic_open(folder / f"seg-{uid}.filters.json") as fh:
            json.dump(ser, fh, ensure_ascii=False)
        return SegmentStore(folder, uid).names()

    @property
    def offsets(self) -> np.ndarray:
        if self._offsets is None:
            self._offsets = np.load(self.folder / f"seg-{self.uid}.offsets.npy", mmap_mode="r")
        return self._offsets

    def item(self, local: int) -> dict:
        a, b = int(self.offsets[local]), int(self.offsets[local + 1])
        with open(self.folder / f"seg-{self.uid}.items.jsonl", "rb") as fh:
            fh.seek(a)
            return json.loads(fh.read(b - a))

    def items(self) -> list[dict]:
        with open(self.folder / f"seg-{self.uid}.items.jsonl", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]

    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = [it["id"] for it in self.items()]
        return self._ids

    def _filter_table(self) -> dict:
        if self._filters is None:
            with open(self.folder / f"seg-{self.uid}.filters.json", encoding="utf-8") as fh:
                self._filters = json.load(fh)
        return self._filters

    def filter(self, fname: str, value: str) -> BitMap:
        hexed = self._filter_table().get(fname, {}).get(value)
        return BitMap.deserialize(bytes.fromhex(hexed)) if hexed else BitMap()

    def fields(self) -> set[str]:
        return set(self._filter_table())
