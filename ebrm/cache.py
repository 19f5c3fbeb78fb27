"""The QE cache: cross-encoder judgements keyed by normalised query × (entity type, entity text).

A query scored against a catalogue meets each distinct entity many times (every title of a
brand shares that brand); the cross-encoder runs once per (query, entity) and every later title
reads the cached value. Values live in memory per query and on disk in SQLite (one file per EBRM
model: a cache written by another model is cleared on open, never silently mixed). SQLite gives
atomic, crash-safe writes and lets two processes share one cache.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

Key = tuple[str, str]  # (entity type, entity text)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS qe (query TEXT, etype TEXT, entity TEXT, s REAL, c REAL,
                               PRIMARY KEY (query, etype, entity));
"""


class QECache:
    """In-memory dict per query in front of an SQLite file (or memory only when path is None)."""

    def __init__(self, path: str | Path | None, model_id: str) -> None:
        self.path = Path(path) if path is not None else None
        self.model_id = model_id
        self.mem: dict[str, dict[Key, tuple[float, float]]] = {}
        self.hits = 0
        self.misses = 0
        self.invalidated = False
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one connection shared by the threads of a server, serialised by self._lock
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='model_id'").fetchone()
            if row is not None and row[0] != model_id:
                self._db.execute("DELETE FROM qe")
                self.invalidated = True
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('model_id', ?)",
                                 (model_id,))

    def _load(self, query: str) -> dict[Key, tuple[float, float]]:
        got = self.mem.get(query)
        if got is None:
            got = {}
            if self._db is not None:
                with self._lock:
                    for et, e, s, c in self._db.execute(
                            "SELECT etype, entity, s, c FROM qe WHERE query=?", (query,)):
                        got[(et, e)] = (s, c)
            self.mem[query] = got
        return got

    def lookup(self, query: str, keys: Sequence[Key]) -> tuple[list, list[int]]:
        """Cached (s, c) per key (None where missing) and the positions of the misses."""
        got = self._load(query)
        vals = [got.get(k) for k in keys]
        missing = [i for i, v in enumerate(vals) if v is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        return vals, missing

    def store(self, query: str, items: Iterable[tuple[Key, float, float]]) -> None:
        items = list(items)
        got = self._load(query)
        for k, s, c in items:
            got[k] = (s, c)
        if self._db is not None and items:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO qe VALUES (?, ?, ?, ?, ?)",
                                     [(query, k[0], k[1], s, c) for k, s, c in items])

    def stats(self) -> dict:
        entries = queries = 0
        if self._db is not None:
            with self._lock:
                entries = self._db.execute("SELECT COUNT(*) FROM qe").fetchone()[0]
                queries = self._db.execute("SELECT COUNT(DISTINCT query) FROM qe").fetchone()[0]
        else:
            entries = sum(len(v) for v in self.mem.values())
            queries = len(self.mem)
        looked = self.hits + self.misses
        return {"path": str(self.path) if self.path else None, "model_id": self.model_id,
                "entries": entries, "queries": queries,
                "bytes": self.path.stat().st_size if self.path and self.path.exists() else 0,
                "hits": self.hits, "misses": self.misses,
                "hit_rate": self.hits / looked if looked else 0.0}

    def clear(self) -> None:
        self.mem.clear()
        if self._db is not None:
            with self._lock:
                with self._db:
                    self._db.execute("DELETE FROM qe")
                self._db.execute("VACUUM")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
