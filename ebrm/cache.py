"""The QE cache: cross-encoder judgements keyed by normalised query × (entity type, entity text).

A query scored against a catalogue meets each distinct entity many times (every title of a
brand shares that brand); the cross-encoder runs once per (query, entity) and every later title
reads the cached value. Values live in memory per query and on disk in SQLite (one file per EBRM
model: a cache written by another model is cleared on open, never silently mixed). SQLite gives
atomic, crash-safe writes and lets two processes share one cache. A file SQLite cannot read
(damaged, or not a database) is a CacheError naming it; `QECache.reset` (what `deepbow ebrm
cache clear` runs) empties the file, or replaces a damaged one with a new, empty cache.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

from deepbow.errors import DeepBowError
from deepbow.locations import default_cache_dir

Key = tuple[str, str]  # (entity type, entity text)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS qe (query TEXT, etype TEXT, entity TEXT, s REAL, c REAL,
                               PRIMARY KEY (query, etype, entity));
"""


SQLITE_MAGIC = b"SQLite format 3\0"


class CacheError(DeepBowError):
    """The QE cache file cannot be read or written."""


def cache_file(model_id: str) -> Path:
    """The persistent QE cache of an EBRM model: under $DEEPBOW_CACHE or ~/.cache/deepbow."""
    return default_cache_dir() / f"ebrm-qe-{model_id}.sqlite"


@contextmanager
def _sqlite_errors(path: Path | None):
    try:
        yield
    except sqlite3.DatabaseError as e:
        raise CacheError(f"{path}: the QE cache cannot be used ({e}); `deepbow ebrm cache "
                         "clear` starts it afresh") from None


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
            with _sqlite_errors(self.path):
                self._open(model_id)

    def _open(self, model_id: str) -> None:
        # one connection shared by the threads of a server, serialised by self._lock
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='model_id'").fetchone()
            if row is not None and row[0] != model_id:
                self._db.execute("DELETE FROM qe")
                self.invalidated = True
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('model_id', ?)",
                                 (model_id,))
        except sqlite3.DatabaseError:
            self._db.close()
            self._db = None
            raise

    @classmethod
    def reset(cls, path: str | Path, model_id: str) -> int:
        """Empty the cache file at `path` (returns the entries removed). A file SQLite cannot
        read is removed and a new cache made, if it is one of ours: named *.sqlite, or with
        SQLite's header; anything else is refused rather than deleted."""
        path = Path(path)
        try:
            cache = cls(path, model_id)
        except CacheError:
            with open(path, "rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
            if path.suffix != ".sqlite" and head != SQLITE_MAGIC:
                raise CacheError(f"{path} is not a QE cache (not an SQLite file): refusing to "
                                 "delete it") from None
            for extra in ("", "-journal", "-wal", "-shm"):
                Path(f"{path}{extra}").unlink(missing_ok=True)
            cls(path, model_id).close()
            return 0
        try:
            n = cache.stats()["entries"]
            cache.clear()
        finally:
            cache.close()
        return n

    def _load(self, query: str) -> dict[Key, tuple[float, float]]:
        got = self.mem.get(query)
        if got is None:
            got = {}
            if self._db is not None:
                with self._lock, _sqlite_errors(self.path):
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
            with self._lock, _sqlite_errors(self.path), self._db:
                self._db.executemany("INSERT OR REPLACE INTO qe VALUES (?, ?, ?, ?, ?)",
                                     [(query, k[0], k[1], s, c) for k, s, c in items])

    def stats(self) -> dict:
        entries = queries = 0
        if self._db is not None:
            with self._lock, _sqlite_errors(self.path):
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
            with self._lock, _sqlite_errors(self.path):
                with self._db:
                    self._db.execute("DELETE FROM qe")
                self._db.execute("VACUUM")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
