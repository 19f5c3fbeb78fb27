"""A catalogue's title vectors in a Milvus collection, searched with the local index's results.

One row per item: `id` (primary key), `doc` (its number in catalogue order: ties in a ranking
go to the lower, as in the local index), `vector` (SPARSE_FLOAT_VECTOR: the exact dequantised
title weights code × scale), `item` (JSON: title and fields, for hits) and one ARRAY<VARCHAR>
per filter field (`f0`, `f1`, ...: item field names need not be Milvus identifiers). The
collection's description holds the rest as JSON (format, model id, scale, the field map), so
opening checks the model as `Catalogue.open` does. Metric IP over SPARSE_INVERTED_INDEX with
drop_ratio_build 0: exhaustive over the posting lists, nothing dropped.

Exact, not approximately equal: Milvus adds float32 products, so its order can differ from the
integer one by rounding, and it breaks ties its own way. So `search_codes` asks for k + margin
candidates (ids and float scores only: returning vectors from a search is slow in Milvus 2.5),
keeps the band that may hold the exact top-k (an upper bound of its float score, with
FLOAT_SLACK for float32 error, at least the k-th best lower bound: exact ties with the k-th are
in), and is certain when fewer candidates came back than asked or the last one is outside the
band; otherwise it asks again for 4× more, up to Milvus's limit of 16,384 (past that, more than
16k items tie at the k-th score: counted in `uncertain`). Then one `get` fetches the band's
vectors, recovers each title code (round(w / scale), exact for 8-bit codes), scores them in
integers as the local index does and sorts by (-score, doc).

Filter values go in as themselves when plainly printable, else as a hash ("h:" + blake2b),
because Milvus 2.5's expression strings cannot carry every character.

The same client code talks to a milvus-lite file (a URI ending in .db: the name at most 36
characters of [A-Za-z0-9._-], a milvus-lite 2.5 rule) and to a server or cluster URI.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from deepbow.errors import DeepBowError
from deepbow.locations import milvus_token
from index.segments import FILTER_MAX_LEN, item_filters

FORMAT = "deepbow-milvus"
FORMAT_VERSION = 1
DEFAULT_URI = "deepbow-milvus.db"
MAX_LIMIT = 16384
ID_MAX_BYTES = 1024
VALUE_MAX_BYTES = 4 * FILTER_MAX_LEN  # a filter value's characters in UTF-8, at most
FLOAT_SLACK = 1e-4  # relative bound on Milvus's float32 error (observed ~1e-7)
_PLAIN = re.compile(r"[^\"'\\\x00-\x1f\x7f\x85\u2028\u2029]+")
_LITE_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,36}")
# (uri, token) → MilvusIndex objects open on it in this process: pymilvus shares one
# connection among its clients of the same uri and token, so only the last may close it
_OPEN: dict[tuple[str, str], int] = {}


class MilvusError(DeepBowError):
    """A collection is missing, of another format or model, or an item does not fit it."""


def filter_token(value: str) -> str:
    """How a filter value is stored and asked for in Milvus (see the module docstring)."""
    if _PLAIN.fullmatch(value) and not value.startswith("h:"):
        return value
    return "h:" + hashlib.blake2b(value.encode("utf-8"), digest_size=16).hexdigest()


def check_uri(uri: str) -> str:
    """A milvus-lite file must end in .db, sit in an existing folder and have a short name."""
    if "://" in uri:
        return uri
    p = Path(uri)
    if p.suffix != ".db":
        raise MilvusError(f"{uri}: a Milvus URI is http(s)://host:port, or a milvus-lite file "
                          f"ending in .db")
    if not _LITE_NAME.fullmatch(p.name):
        raise MilvusError(f"{uri}: milvus-lite wants a file name of at most 36 characters "
                          f"from A-Z a-z 0-9 . - _")
    if not p.resolve().parent.is_dir():
        raise MilvusError(f"{uri}: folder {p.parent} does not exist")
    return str(p.resolve())


def _connect(client_cls, uri: str, token: str):
    """A client, or a MilvusError that says where it could not connect (pymilvus's own
    log line about it is kept quiet: the library prints nothing)."""
    for handler in logging.getLogger("pymilvus").handlers:  # its loggers propagate to these
        handler.setLevel(logging.CRITICAL)
    try:
        return client_cls(uri, token=token)
    except Exception as e:
        if not _from_pymilvus(e):
            raise
        hint = "" if "://" in uri else (" (a milvus-lite file serves one process at a time: "
                                        "is another one, a studio, using it?)")
        raise MilvusError(f"cannot connect to Milvus at {uri}: {_message(e)}{hint}") from None


def _from_pymilvus(e: BaseException) -> bool:
    return type(e).__module__.split(".")[0] in ("pymilvus", "grpc", "milvus_lite")


def _message(e: BaseException) -> str:
    return str(getattr(e, "message", None) or e).splitlines()[0] if str(e) else type(e).__name__


def milvus_errors(fn):
    """Milvus's own exceptions (a server gone, a refused request) as a MilvusError: a
    message, not a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not _from_pymilvus(e):
                raise
            raise MilvusError(f"Milvus refused {fn.__name__}: {_message(e)}") from None

    return wrapper


@dataclass
class Meta:
    """What a collection holds besides rows, kept in its description as JSON."""

    model_id: str
    scale: float
    n_terms: int
    fields: dict[str, str] = field(default_factory=dict)  # item field name → Milvus field
    capacity: int = 64  # values per item and filter field

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                           "model_id": self.model_id, "scale": self.scale,
                           "n_terms": self.n_terms, "fields": self.fields,
                           "capacity": self.capacity}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, where: str) -> Meta:
        try:
            d = json.loads(text)
        except (TypeError, ValueError):
            d = None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise MilvusError(f"{where}: not a deepbow collection")
        if d.get("format_version") != FORMAT_VERSION:
            raise MilvusError(f"{where}: format_version {d.get('format_version')!r}; this "
                              f"deepbow reads {FORMAT_VERSION}")
        return cls(d["model_id"], float(d["scale"]), int(d["n_terms"]), dict(d["fields"]),
                   int(d["capacity"]))


@dataclass
class Ranked:
    """One query's exact top-k: ids, doc numbers, integer scores, items, title codes."""

    ids: list[str]
    docs: np.ndarray
    ints: np.ndarray
    items: list[dict]
    codes: list[dict[int, int]]  # term id → title code, per hit


class MilvusIndex:
    """Rows in, exact top-k out (over integer query codes); see the module docstring."""

    def __init__(self, client, key: tuple[str, str] | None, collection: str, meta: Meta
                 ) -> None:
        self.client, self._key, self.collection, self.meta = client, key, collection, meta
        self.uncertain = 0  # queries whose ties at the k-th score passed MAX_LIMIT
        self.widened = 0  # queries asked again with a 4x larger limit
        self.fetched = 0  # band rows fetched to score exactly

    # -- opening ----------------------------------------------------------------------------
    @staticmethod
    def _client(uri: str, token: str | None):
        from index.shards import require

        client_cls = require("pymilvus", "serving from Milvus").MilvusClient
        uri = check_uri(uri)
        if "://" not in uri:
            require("milvus_lite", f"a milvus-lite file ({uri})")
        key = (uri, token or milvus_token() or "")
        client = _connect(client_cls, *key)
        _OPEN[key] = _OPEN.get(key, 0) + 1
        return client, key

    @classmethod
    @milvus_errors
    def create(cls, uri: str, collection: str, meta: Meta, overwrite: bool = False,
               token: str | None = None, shards: int | None = None) -> MilvusIndex:
        """A new, empty collection for `meta` (refused if it exists, unless `overwrite`);
        `shards`: Milvus's DML channels, for a cluster's write throughput (default 1)."""
        mix = cls(*cls._client(uri, token), collection, meta)
        try:
            if mix.client.has_collection(collection):
                if not overwrite:
                    raise MilvusError(f"collection {collection} exists at {uri} "
                                      f"(use --overwrite)")
                mix.client.drop_collection(collection)
            mix._create_collection(shards)
        except BaseException:
            mix.close()
            raise
        return mix

    def _create_collection(self, shards: int | None) -> None:
        from pymilvus import DataType

        client, meta = self.client, self.meta
        schema = client.create_schema(auto_id=False, description=meta.to_json())
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_BYTES)
        schema.add_field("doc", DataType.INT64)
        schema.add_field("vector", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("item", DataType.JSON)
        for name in meta.fields.values():
            schema.add_field(name, DataType.ARRAY, element_type=DataType.VARCHAR,
                             max_capacity=meta.capacity, max_length=VALUE_MAX_BYTES)
        params = client.prepare_index_params()
        params.add_index("vector", index_type="SPARSE_INVERTED_INDEX", metric_type="IP",
                         params={"drop_ratio_build": 0.0})
        extra = {"num_shards": shards} if shards else {}
        client.create_collection(self.collection, schema=schema, index_params=params,
                                 consistency_level="Strong", **extra)

    @classmethod
    @milvus_errors
    def open(cls, uri: str, collection: str, token: str | None = None) -> MilvusIndex:
        client, lite = cls._client(uri, token)
        mix = cls(client, lite, collection, None)
        try:
            if not client.has_collection(collection):
                raise MilvusError(f"no collection {collection} at {uri}")
            desc = client.describe_collection(collection).get("description", "")
            mix.meta = Meta.from_json(desc, f"{uri} {collection}")
        except BaseException:
            mix.close()
            raise
        return mix

    def close(self) -> None:
        """The last one open on a URI closes the shared connection, and on a milvus-lite file
        stops its process; closing twice is harmless."""
        key, self._key = self._key, None
        if key is None:
            return
        _OPEN[key] -= 1
        if _OPEN[key] > 0:
            return
        del _OPEN[key]
        self.client.close()
        if "://" not in key[0]:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(key[0])

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- rows -------------------------------------------------------------------------------
    def rows(self, docs: Sequence[int], items: Sequence[dict], codes: sparse.csr_matrix
             ) -> list[dict]:
        """Milvus rows for items with their numbers and title-code rows."""
        codes = sparse.csr_matrix(codes)
        out = []
        for i, (doc, it) in enumerate(zip(docs, items, strict=True)):
            a, b = codes.indptr[i], codes.indptr[i + 1]
            vec = {int(t): float(c) * self.meta.scale
                   for t, c in zip(codes.indices[a:b], codes.data[a:b], strict=True) if c > 0}
            if len(str(it["id"]).encode("utf-8")) > ID_MAX_BYTES:
                raise MilvusError(f"item id {str(it['id'])[:40]!r}...: longer than "
                                  f"{ID_MAX_BYTES} bytes")
            row = {"id": str(it["id"]), "doc": int(doc), "vector": vec,
                   "item": {k: v for k, v in it.items() if k != "id"}}
            for name in self.meta.fields.values():
                row[name] = []
            for fname, value in item_filters(it):
                name = self.meta.fields.get(fname)
                if name is None:
                    raise MilvusError(f"item {it['id']}: field {fname!r} is not a filter field "
                                      f"of collection {self.collection}; export it again")
                row[name].append(filter_token(value))
            for fname, name in self.meta.fields.items():
                if len(row[name]) > self.meta.capacity:
                    raise MilvusError(f"item {it['id']}: {len(row[name])} values of {fname!r}, "
                                      f"the collection holds {self.meta.capacity}")
            out.append(row)
        return out

    @milvus_errors
    def upsert(self, docs: Sequence[int], items: Sequence[dict], codes: sparse.csr_matrix,
               batch: int = 2000) -> int:
        """Insert or replace items (an id already there is replaced whole)."""
        return self._write(self.client.upsert, docs, items, codes, batch)

    @milvus_errors
    def insert(self, docs: Sequence[int], items: Sequence[dict], codes: sparse.csr_matrix,
               batch: int = 2000) -> int:
        """Insert new items (faster than upsert; a bulk load into an empty collection)."""
        return self._write(self.client.insert, docs, items, codes, batch)

    def _write(self, send, docs: Sequence[int], items: Sequence[dict],
               codes: sparse.csr_matrix, batch: int) -> int:
        """The items' rows sent in batches by `send` (the client's insert or upsert)."""
        rows = self.rows(docs, items, codes)
        for a in range(0, len(rows), batch):
            send(self.collection, rows[a:a + batch])
        return len(rows)

    @milvus_errors
    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.client.delete(self.collection, ids=[str(x) for x in ids])

    @milvus_errors
    def get(self, ids: Sequence[str], batch: int = 4096
            ) -> dict[str, tuple[int, dict, dict[int, int]]]:
        """id → (doc, item, term → title code) for the ids present."""
        out = {}
        for a in range(0, len(ids), batch):
            got = self.client.get(self.collection, ids=[str(x) for x in ids[a:a + batch]],
                                  output_fields=["doc", "item", "vector"])
            out.update({r["id"]: (int(r["doc"]), {"id": r["id"], **r["item"]},
                                  self._codes(r["vector"])) for r in got})
        return out

    @milvus_errors
    def count(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def _codes(self, vec: dict) -> dict[int, int]:
        return {int(t): int(round(w / self.meta.scale)) for t, w in vec.items()}

    # -- search -----------------------------------------------------------------------------
    def filter_expr(self, filters: dict[str, Sequence[str]] | None) -> str | None:
        """AND across fields, OR within a field; None when nothing can match."""
        parts = []
        for fname, values in (filters or {}).items():
            name = self.meta.fields.get(fname)
            if name is None or not values:
                return None  # as the local index: an unknown field or no value selects nothing
            toks = ", ".join(json.dumps(filter_token(v), ensure_ascii=False) for v in values)
            parts.append(f"array_contains_any({name}, [{toks}])")
        return " and ".join(parts)

    @milvus_errors
    def search_codes(self, queries: Sequence[tuple[np.ndarray, np.ndarray, float]], k: int = 10,
                     filters: dict | None = None, margin: int | None = None) -> list[Ranked]:
        """Exact top-k for (term ids, integer codes, query scale) queries: the local index's
        (doc numbers → ids, integer scores), best first, ties by doc number."""
        expr = self.filter_expr(filters)
        out = [Ranked([], np.zeros(0, np.int64), np.zeros(0, np.int64), [], [])
               for _ in queries]
        vecs = [self._query_vector(*q) for q in queries]
        todo = [i for i, v in enumerate(vecs) if v and k > 0 and expr is not None]
        limit = min(MAX_LIMIT, k + (margin if margin is not None else max(16, k)))
        bands: dict[int, list[str]] = {}
        while todo:  # candidates by float score: ids and scores only (vectors are slow here)
            res = self.client.search(
                self.collection, [vecs[i] for i in todo], filter=expr or "", limit=limit,
                output_fields=[], anns_field="vector",
                search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}})
            again = []
            for i, hits in zip(todo, res, strict=True):
                bands[i], sure = self._band(hits, k, limit)
                if not sure and limit < MAX_LIMIT:
                    again.append(i)
                    self.widened += 1
                elif not sure:
                    self.uncertain += 1
            todo, limit = again, min(MAX_LIMIT, limit * 4)
        rows = self.get(sorted({x for band in bands.values() for x in band}))
        self.fetched += sum(len(band) for band in bands.values())
        for i, band in bands.items():
            out[i] = self._exact(queries[i], [x for x in band if x in rows], rows, k)
        return out

    def _query_vector(self, term_ids, codes, qscale: float) -> dict[int, float]:
        t, c = np.asarray(term_ids, np.int64), np.asarray(codes, np.int64)
        keep = (t >= 0) & (t < self.meta.n_terms) & (c > 0)  # unknown terms match nothing
        return {int(a): float(b) * qscale for a, b in zip(t[keep], c[keep], strict=True)}

    @staticmethod
    def _band(hits: list[dict], k: int, limit: int) -> tuple[list[str], bool]:
        """The candidates that may be in the exact top-k, and whether no other item can:
        true scores lie within FLOAT_SLACK of Milvus's, so anything whose upper bound is below
        the k-th best lower bound is out (an exact tie with the k-th is not)."""
        dist = np.array([float(h["distance"]) for h in hits])
        if len(hits) < k:
            return [h["id"] for h in hits], len(hits) < limit
        low = np.sort(dist * (1 - FLOAT_SLACK))[::-1][k - 1]
        inside = dist * (1 + FLOAT_SLACK) >= low
        sure = len(hits) < limit or not inside[np.argmin(dist)]
        return [h["id"] for h, ok in zip(hits, inside, strict=True) if ok], bool(sure)

    def _exact(self, query, band: list[str], rows: dict, k: int) -> Ranked:
        """Integer scores of the band (as the local index computes them), top k by
        (-score, doc)."""
        qcode = {int(t): int(c) for t, c in zip(*map(np.asarray, query[:2]), strict=True)}
        ints = np.array([sum(qcode.get(t, 0) * c for t, c in rows[x][2].items()) for x in band],
                        np.int64)
        docs = np.array([rows[x][0] for x in band], np.int64)
        keep = np.nonzero(ints > 0)[0]
        order = keep[np.lexsort((docs[keep], -ints[keep]))][:k]
        return Ranked([band[j] for j in order], docs[order], ints[order],
                      [rows[band[j]][1] for j in order], [rows[band[j]][2] for j in order])
