"""A catalogue served from Milvus: text in, the local index's hits out; export, load and mirror.

`MilvusCatalogue` answers `search`, `batch_search` and `explain` as `index.catalogue.Catalogue`
does (same Hit and Explanation objects, same integer scores times the same two scales, ties by
doc number) over a collection written by `export_catalogue` (from a local index directory) or
`load_vectors` (from an `encode-catalogue` Parquet directory). It also has `journal_edits` and
`item_by_id`, so EBRM reranking (index/rerank.py) and the studio compose over it unchanged.

Edits, as the README's "Weight editing" says: word scales, bans and links act on the query
vector (`edits=`: an `index.editor.CompiledEdits`, whose `.words` it applies, or a
`deepbow.edits.WordEdits`; by default the journal the catalogue was opened with), so they need
nothing in Milvus. Per-item weights (`set`) are upserted as edited vectors: `export_catalogue`
writes them, `sync_item_edits` rewrites the items a journal names after an edit or an undo. The
journal stays the record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import sparse

from deepbow.edits import WordEdits
from deepbow.errors import InputError
from deepbow.explain import Explanation
from deepbow.sparse import SparseVector
from index.editor import CompiledEdits, journal_of, read_edits
from index.edits import replay
from index.hits import make_explanation, make_hit
from index.milvus import DEFAULT_URI, Meta, MilvusError, MilvusIndex
from index.segments import Hit, item_filters


class MilvusCatalogue:
    """A DeepBoW model + a Milvus collection of its title vectors; `journal` (an index
    directory or a journal file) supplies the edits applied when none are given."""

    def __init__(self, index: MilvusIndex, model, journal: str | Path | None = None) -> None:
        if index.meta.model_id != model.model_id:
            raise MilvusError(f"collection {index.collection}: built with model "
                              f"{index.meta.model_id}, the model given is {model.model_id}")
        self.index, self.model = index, model
        self.journal = journal_of(journal) if journal is not None else None
        self._compiled: tuple[tuple, CompiledEdits] | None = None

    @classmethod
    def open(cls, uri: str, collection: str, model, token: str | None = None,
             journal: str | Path | None = None) -> MilvusCatalogue:
        mix = MilvusIndex.open(uri, collection, token)
        try:
            return cls(mix, model, journal)
        except BaseException:
            mix.close()
            raise

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> MilvusCatalogue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def journal_edits(self) -> CompiledEdits:
        """The journal's edits (none without a journal), compiled again when it changed; no
        per-item overlay: those weights are in the collection."""
        sig = self.journal.signature() if self.journal is not None else ()
        if self._compiled is None or self._compiled[0] != sig:
            state = replay(self.journal.read() if self.journal is not None else [])
            self._compiled = (sig, CompiledEdits(state, WordEdits.compile(state,
                                                                          self.model.vocab)))
        return self._compiled[1]

    def _words(self, edits) -> WordEdits:
        if edits is None:
            return self.journal_edits().words
        return edits if isinstance(edits, WordEdits) else edits.words

    def search(self, query: str, k: int = 10, filters: dict | None = None,
               matched_words: int = 3, edits=None) -> list[Hit]:
        return self.batch_search([query], k, filters, matched_words, edits=edits)[0]

    def batch_search(self, queries: Sequence[str], k: int = 10, filters: dict | None = None,
                     matched_words: int = 3, progress=None, edits=None, threads: int = 1,
                     batch: int = 64) -> list[list[Hit]]:
        """Exact top-k per query, `batch` queries per Milvus call and `threads` calls in
        flight; `edits` acts on the query vectors (per-item weights are in the collection
        already). Queries are encoded here, first, in one thread."""
        qvs = self.query_vectors(queries, edits)
        chunks = [qvs[a:a + batch] for a in range(0, len(qvs), batch)]

        def ranked(chunk: list[SparseVector]):
            return self.index.search_codes([(q.ids, q.codes, q.scale) for q in chunk], k,
                                           filters)

        out: list[list[Hit]] = []
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for chunk, found in zip(chunks, pool.map(ranked, chunks), strict=True):
                for qv, r in zip(chunk, found, strict=True):
                    out.append([self._hit(qv, r.items[j], r.codes[j], int(r.ints[j]),
                                          matched_words) for j in range(len(r.ids))])
                if progress is not None:
                    progress(len(chunk))
        return out

    def query_vectors(self, queries: Sequence[str], edits=None) -> list[SparseVector]:
        words = self._words(edits)
        return [words.apply(q) for q in self.model.encode(list(queries), "query")]

    def _contributions(self, qv: SparseVector, codes: dict[int, int]):
        dcodes = np.array([codes.get(int(t), 0) for t in qv.ids], np.int64)
        return dcodes, qv.codes.astype(np.int64) * dcodes

    def _hit(self, qv: SparseVector, item: dict, codes: dict[int, int], score_int: int,
             n_words: int) -> Hit:
        """The Hit `Catalogue._hit` makes: same score, same top matched words."""
        _, contrib = self._contributions(qv, codes)
        return make_hit(qv, item, contrib, score_int, self.index.meta.scale, n_words)

    def _get(self, item_id: str) -> tuple[int, dict, dict[int, int]]:
        got = self.index.get([str(item_id)]).get(str(item_id))
        if got is None:
            raise InputError(f"unknown id {item_id!r}")
        return got

    def item_by_id(self, item_id: str) -> dict:
        return self._get(item_id)[1]

    def explain(self, query: str, item_id: str, edits=None,
                qv: SparseVector | None = None) -> Explanation:
        """The query–item score word by word, from the vector Milvus holds (`qv`: the query's
        vector from `query_vectors`, as for `Catalogue.explain`)."""
        _, item, codes = self._get(item_id)
        qv = qv if qv is not None else self.query_vectors([query], edits)[0]
        dcodes, contrib = self._contributions(qv, codes)
        return make_explanation(self.model, query, item["title"], qv, dcodes, contrib,
                                self.index.meta.scale)


def journal_word_edits(path: str | Path, vocab) -> WordEdits:
    """The word-level edits (scales, bans, links) of a journal file or index directory, for
    `edits=`: what a Milvus-served catalogue applies at query time."""
    return WordEdits.compile(read_edits(path), vocab)


def filter_meta(model_id: str, scale: float, n_terms: int, items: Iterable[dict],
                capacity_floor: int = 16) -> Meta:
    """A collection's meta for these items: each filter field, and room for the most values
    any item has in one field (a power of two, at least `capacity_floor`, Milvus allows 4096)."""
    counts: dict[str, int] = {}
    for it in items:
        per: dict[str, int] = {}
        for f, _ in item_filters(it):
            per[f] = per.get(f, 0) + 1
        for f, n in per.items():
            counts[f] = max(counts.get(f, 0), n)
    cap = capacity_floor
    while cap < max(counts.values(), default=0):
        cap *= 2
    if cap > 4096:
        raise MilvusError(f"an item has {max(counts.values())} values in one filter field; "
                          f"Milvus holds at most 4096")
    fields = {f: f"f{i}" for i, f in enumerate(sorted(counts))}
    return Meta(model_id, float(scale), int(n_terms), fields, cap)


def _alive_rows(cat, edits=None):
    """(docs, items, codes) of a local catalogue's alive items, per segment, with per-item
    weight edits (`edits.overlay`: doc → term → code) applied."""
    overlay = getattr(edits, "overlay", None) or {}
    for seg in cat.index.segments:
        items = cat.stores[seg.uid].items()
        codes = seg.to_codes()
        fix = [(doc - seg.doc_base, t, c) for doc, over in overlay.items()
               if seg.doc_base <= doc < seg.doc_base + seg.n_docs for t, c in over.items()]
        if fix:
            r, t, c = (np.array(x, np.int64) for x in zip(*fix, strict=True))
            old = np.asarray(codes[r, t]).ravel().astype(np.int64)
            delta = sparse.csr_matrix((c - old, (r, t)), shape=codes.shape)
            codes = sparse.csr_matrix(codes.astype(np.int64) + delta).astype(np.uint8)
            codes.eliminate_zeros()
        keep = np.nonzero(cat.index.alive_mask()[seg.doc_base:seg.doc_base + seg.n_docs])[0]
        yield keep + seg.doc_base, [items[i] for i in keep], codes[keep]


def export_catalogue(cat, uri: str = DEFAULT_URI, collection: str = "deepbow", edits=None,
                     overwrite: bool = False, token: str | None = None, batch: int = 2000,
                     progress: Callable[[int], None] | None = None,
                     shards: int | None = None) -> MilvusIndex:
    """Write a local catalogue's alive items into a new collection, with the per-item weights
    of `edits` (default: the catalogue's journal) written as edited vectors."""
    edits = edits if edits is not None else cat.journal_edits()
    m = cat.model
    meta = filter_meta(m.model_id, m.scales["title"], m.vocab.size,
                       (it for s in cat.stores.values() for it in s.items()))
    mix = MilvusIndex.create(uri, collection, meta, overwrite, token, shards)
    for docs, items, codes in _alive_rows(cat, edits):
        for a in range(0, len(items), batch):
            mix.insert(docs[a:a + batch], items[a:a + batch], codes[a:a + batch], batch)
            if progress is not None:
                progress(len(items[a:a + batch]))
    return mix


def mirror(cat, mix: MilvusIndex, ids: Iterable[str], edits=None) -> tuple[int, int]:
    """After `add`, `update` or `delete` on the local catalogue: upsert those ids as the local
    index now holds them (their doc numbers, vectors, fields) and delete the ones it no longer
    has. Returns (upserted, deleted). After `compact`, export again instead: compaction
    renumbers docs and moves items whose weights it folded to the end. `edits`: default the
    catalogue's journal (its per-item weights go into the vectors)."""
    edits = edits if edits is not None else cat.journal_edits()
    ids = [str(x) for x in ids]
    idmap = cat.id_map()
    present = sorted((idmap[x], x) for x in ids if x in idmap)
    gone = [x for x in ids if x not in idmap]
    mix.delete(gone)
    overlay = getattr(edits, "overlay", None) or {}
    rows = [_doc_codes(cat, d, overlay.get(d)) for d, _ in present]
    if rows:
        codes = sparse.csr_matrix(sparse.vstack(rows), dtype=np.uint8)
        mix.upsert([d for d, _ in present], [cat.item(d) for d, _ in present], codes)
    return len(present), len(gone)


def _doc_codes(cat, doc: int, over: dict[int, int] | None):
    vec = {**cat.doc_vector(doc), **(over or {})}
    vec = {t: c for t, c in vec.items() if c > 0}
    terms = sorted(vec)
    return sparse.csr_matrix((np.array([vec[t] for t in terms], np.uint8),
                              np.array(terms, np.int64), np.array([0, len(terms)])),
                             shape=(1, cat.index.n_terms))


def sync_item_edits(cat, mix: MilvusIndex, edits=None,
                    journal_records: Sequence[dict] | None = None) -> int:
    """Upsert every item a journal's `set` records name (edited, or back to its postings'
    weights after an undo): the collection then holds what the local index scores. Default:
    the catalogue's own journal and its compiled edits."""
    if journal_records is None:
        journal_records = journal_of(cat.path).read()
    ids = sorted({r["args"]["item"] for r in journal_records if r.get("op") == "set"})
    idmap = cat.id_map()
    return mirror(cat, mix, [x for x in ids if x in idmap], edits)[0]


def load_vectors(path: str | Path, uri: str = DEFAULT_URI, collection: str = "deepbow",
                 model=None, overwrite: bool = False, token: str | None = None,
                 batch_rows: int = 8192, progress: Callable[[int], None] | None = None,
                 shards: int | None = None) -> MilvusIndex:
    """Bulk-load an `encode-catalogue` vectors directory (index/vectors.py) into a new
    collection: two passes, the first over the items for the filter fields."""
    import pyarrow as pa

    from index.vectors import iter_vectors, open_vectors, table_codes

    manifest = open_vectors(path)
    if model is not None and model.model_id != manifest["model_id"]:
        raise MilvusError(f"{path}: encoded by model {manifest['model_id']}, the model given "
                          f"is {model.model_id}")
    items = (json.loads(s) for b in iter_vectors(path, batch_rows)
             for s in b.column("item").to_pylist())
    meta = filter_meta(manifest["model_id"], manifest["scale"], manifest["n_terms"], items)
    mix = MilvusIndex.create(uri, collection, meta, overwrite, token, shards)
    for b in iter_vectors(path, batch_rows):
        docs = b.column("doc").to_numpy()
        its = [json.loads(s) for s in b.column("item").to_pylist()]
        mix.insert(docs, its, table_codes(pa.Table.from_batches([b]), manifest["n_terms"]))
        if progress is not None:
            progress(len(its))
    return mix
