"""What a catalogue keeps per segment besides the postings: the items and their filters.

Per segment (files named seg-<uid>.*): the items as JSONL with a byte-offset array (a hit's
title is read on demand, nothing is parsed at load), and filter bitmaps for each short string
field (field=value → local doc numbers) as serialized roaring bitmaps. Files are written once
(temp file, then rename) and never changed, like the postings.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyroaring import BitMap

from deepbow.fileio import atomic_open
from index.integrity import IndexFileError

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
    """Items, ids and filter bitmaps of one segment (files named seg-<uid>.*).

    Opening holds the items and filters files open and maps the offsets, so a view stays
    readable after a compaction removes its files (POSIX keeps an open file until it is
    closed); a damaged file is an IndexFileError naming it, found when it is read."""

    def __init__(self, folder: Path, uid: str, n_docs: int) -> None:
        self.folder, self.uid = Path(folder), uid
        self.where = self.folder / f"seg-{uid}"
        items, offsets, filters = (self.folder / n for n in self.names_for(uid))
        self._items_fd = _open_fd(self, items)
        self._filters_fd = _open_fd(self, filters)
        try:
            off = np.load(offsets, mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError, OSError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise IndexFileError(f"{offsets}: unreadable ({e})") from None
        size = os.fstat(self._items_fd).st_size
        if off.ndim != 1 or off.dtype != np.int64 or len(off) != n_docs + 1 or off[0] != 0 \
                or off[-1] != size or np.any(np.diff(off) <= 0):
            raise IndexFileError(f"{offsets}: damaged (not {n_docs + 1} increasing offsets "
                                 f"from 0 to the {size} bytes of the items)")
        self.offsets = off
        self._filters: dict | None = None
        self._bitmaps: dict[tuple[str, str], BitMap] = {}
        self._ids: list[str] | None = None

    @staticmethod
    def names_for(uid: str) -> list[str]:
        return [f"seg-{uid}.items.jsonl", f"seg-{uid}.offsets.npy", f"seg-{uid}.filters.json"]

    def names(self) -> list[str]:
        return self.names_for(self.uid)

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
        return SegmentStore.names_for(uid)

    def _item_at(self, raw: bytes, local: int) -> dict:
        try:
            it = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError):
            it = None
        if not isinstance(it, dict) or not isinstance(it.get("id"), str) \
                or not isinstance(it.get("title"), str):
            raise IndexFileError(f"{self.where}.items.jsonl: item {local} is damaged")
        return it

    def item(self, local: int) -> dict:
        a, b = int(self.offsets[local]), int(self.offsets[local + 1])
        return self._item_at(os.pread(self._items_fd, b - a, a), local)

    def items(self) -> list[dict]:
        data = os.pread(self._items_fd, int(self.offsets[-1]), 0)
        off = self.offsets
        return [self._item_at(data[int(off[i]):int(off[i + 1])], i) for i in range(len(off) - 1)]

    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = [it["id"] for it in self.items()]
        return self._ids

    def _filter_table(self) -> dict:
        if self._filters is None:
            size = os.fstat(self._filters_fd).st_size
            try:
                table = json.loads(os.pread(self._filters_fd, size, 0))
            except (UnicodeDecodeError, ValueError, RecursionError):
                table = None
            if not isinstance(table, dict) or not all(
                    isinstance(v, dict) and all(isinstance(h, str) for h in v.values())
                    for v in table.values()):
                raise IndexFileError(f"{self.where}.filters.json: damaged")
            self._filters = table
        return self._filters

    def filter(self, fname: str, value: str) -> BitMap:
        """The local doc numbers of field=value, decoded once per store (the files never
        change) rather than on every search; callers must not change the bitmap."""
        bm = self._bitmaps.get((fname, value))
        if bm is None:
            bm = self._bitmaps[(fname, value)] = self._decode(fname, value)
        return bm

    def _decode(self, fname: str, value: str) -> BitMap:
        hexed = self._filter_table().get(fname, {}).get(value)
        if not hexed:
            return BitMap()
        try:
            bm = BitMap.deserialize(bytes.fromhex(hexed))
        except (ValueError, IndexError):
            bm = None
        if bm is None or (len(bm) and bm.max() >= len(self.offsets) - 1):
            raise IndexFileError(f"{self.where}.filters.json: the bitmap of "
                                 f"{fname}={value} is damaged")
        return bm

    def fields(self) -> set[str]:
        return set(self._filter_table())


def _open_fd(owner: object, path: Path) -> int:
    """A read-only descriptor of `path`, closed when `owner` is collected."""
    fd = os.open(path, os.O_RDONLY)
    weakref.finalize(owner, os.close, fd)
    return fd
