"""A searchable product catalogue: a DeepBoW model + an inverted index + the items themselves.

Takes text, returns hits. The directory holds the index (index/inverted.py), the items and
filters of each segment (index/segments.py) and the edit journal (index/journal.py), whose
effect applies to every search and explain. The manifest records the model id: opening with
another model is refused, since its term ids and weights would not match.

Scores are the index's integer scores times the two scales, the same numbers `deepbow score` and
`deepbow explain` compute for a pair; `explain` here reads the title weights from the postings,
so it always agrees with the ranking.

Writers (add, update, delete, compact) hold the directory's lock and re-read the manifest under
it before changing anything, so two writers never work from a stale view; a write that fails
removes what it wrote. Readers notice a new manifest on their next call and reopen (keeping the
segments that did not change). A view holds its segment files open, so a compaction that
removes them meanwhile does not disturb a search; a reader that opens while a writer replaces
the manifest starts again on the new one.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pyroaring import BitMap

from deepbow.errors import InputError
from deepbow.explain import Explanation
from deepbow.fileio import dir_lock
from deepbow.readers import check_item
from deepbow.sparse import SparseVector
from index.editor import CompiledEdits, Editor, compile_edits, journal_of
from index.edits import replay
from index.folder import LINK_FILE, check_replaceable, listed_files, prune
from index.hits import make_explanation, make_hit
from index.inverted import InvertedIndex, Segment
from index.journal import JOURNAL
from index.segments import Hit, SegmentStore
from index.view import STALE, open_view, signature

INDEX_BATCH = 2048


class Catalogue:
    def __init__(self, path: Path, index: InvertedIndex, model,
                 stores: dict[str, SegmentStore] | None = None, sig: bytes | None = None
                 ) -> None:
        self.path = Path(path)
        self.model = model
        self.stores: dict[str, SegmentStore] = {}
        self._set_index(index, stores, sig)
        self._compiled: tuple[tuple, CompiledEdits] | None = None

    def _set_index(self, index: InvertedIndex, stores: dict | None = None,
                   sig: bytes | None = None) -> None:
        """Make `index` (and its segments' stores) this catalogue's view; `sig` is the
        manifest it was read from (read before it, so a change in between is seen later)."""
        self.index = index
        if stores is None:
            stores = {s.uid: self.stores.get(s.uid) or SegmentStore(self.path, s.uid, s.n_docs)
                      for s in index.segments}
        self.stores = stores
        self._id_map: dict[str, int] | None = None
        self._manifest_sig = signature(self.path) if sig is None else sig

    @property
    def editor(self) -> Editor:
        """The weight editor of this catalogue (index/editor.py), journalled in
        `<index>/edits.jsonl` and applied to every search and explain."""
        return Editor(self)

    def journal_edits(self) -> CompiledEdits:
        """The journal's effect on this catalogue, compiled again whenever the journal or the
        index changed."""
        self.refresh()
        journal = journal_of(self.path)
        sig = (journal.signature(), self._manifest_sig)
        if self._compiled is None or self._compiled[0] != sig:
            self._compiled = (sig, compile_edits(replay(journal.read()), self))
        return self._compiled[1]

    # -- building and opening ---------------------------------------------------------------
    @classmethod
    def build(cls, model, items: Iterable[dict], out: str | Path, overwrite: bool = False,
              batch_size: int = INDEX_BATCH, progress: Callable[[int], None] | None = None,
              codes=None) -> Catalogue:
        """Encode every title and write a new index directory (temp dir, then rename). With
        `overwrite` an existing index there is replaced (its journal and Milvus link kept);
        anything else there is refused. `codes`: the titles' codes computed elsewhere (on
        Ray: index/ray_encode.py), one CSR row per item, instead of encoding here."""
        out = Path(out)
        check_replaceable(out, overwrite)
        items = validate_items(items)
        codes = given_codes(codes, items, model) if codes is not None else \
            encode_items(model, items, batch_size, progress)
        index = InvertedIndex.from_csr(codes, scale=model.scales["title"])
        index.meta = {"model_id": model.model_id}
        uid = index.segments[0].uid
        index.save(out, overwrite=overwrite, keep=[JOURNAL, LINK_FILE],
                   write_extra=lambda folder: SegmentStore.write(folder, uid, items))
        return cls.open(out, model)

    @classmethod
    def open(cls, path: str | Path, model, mmap: bool = True, verify: bool = False
             ) -> Catalogue:
        """Open an index directory with the model it was built with."""
        path = Path(path)
        index, stores, sig = open_view(path, model, None, mmap, verify)
        return cls(path, index, model, stores, sig)

    def refresh(self) -> None:
        """Reopen the index when another process changed its manifest (unchanged segments
        are kept as they are)."""
        if signature(self.path) != self._manifest_sig:
            self._set_index(*open_view(self.path, self.model, self))

    # -- live changes -----------------------------------------------------------------------
    @contextmanager
    def _writing(self):
        """The directory's lock, the manifest re-read under it, the new manifest written.
        A write that fails (a full disk, a read-only folder) removes the files it wrote and
        leaves the index as it was; this view is read again at the next call."""
        with dir_lock(self.path):
            self._set_index(*open_view(self.path, self.model, self))
            try:
                yield
                names = [n for s in self.index.segments for n in self.stores[s.uid].names()]
                self.index.write_into(self.path, {"files": names})
            except BaseException:
                self._manifest_sig = STALE  # the view may hold the failed change
                listed = listed_files(self.path)
                if listed is not None:
                    try:
                        prune(self.path, listed)
                    except OSError:
                        pass
                raise
            self._set_index(self.index, self.stores)

    def id_map(self) -> dict[str, int]:
        if self._id_map is None:
            m: dict[str, int] = {}
            for seg in self.index.segments:
                for i, x in enumerate(self.stores[seg.uid].ids()):
                    if seg.doc_base + i not in self.index.deleted:
                        m[x] = seg.doc_base + i
            self._id_map = m
        return self._id_map

    def add(self, items: Iterable[dict], progress=None, replace: bool = False,
            codes=None) -> int:
        """Add items; an id already present is refused unless `replace` (that is update).
        `codes`: their title codes computed elsewhere, as for `build`."""
        items = validate_items(items)
        codes = given_codes(codes, items, self.model) if codes is not None else \
            encode_items(self.model, items, INDEX_BATCH, progress)
        with self._writing():
            ids = self.id_map()
            clash = [it["id"] for it in items if it["id"] in ids]
            if clash and not replace:
                raise InputError(f"ids already in the index: {clash[:5]} (use update)")
            if clash:
                self.index.delete([ids[x] for x in clash])
                self._unfold(clash)
            self._add_segment(items, codes)
        return len(items)

    def _add_segment(self, items: list[dict], codes) -> None:
        """Postings (a CSR of title codes, one row per item) and items as a new segment."""
        if self.index.add(codes).size:
            uid = self.index.segments[-1].uid
            SegmentStore.write(self.path, uid, items)
            self.stores[uid] = SegmentStore(self.path, uid, len(items))
            self._id_map = None

    def update(self, items: Iterable[dict], progress=None, codes=None) -> int:
        return self.add(items, progress, replace=True, codes=codes)

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(str(x) for x in ids))
        with self._writing():
            m = self.id_map()
            unknown = [x for x in ids if x not in m]
            if unknown:
                raise InputError(f"unknown ids: {unknown[:5]}")
            self.index.delete([m[x] for x in ids])
            self._unfold(ids)
        return len(ids)

    def compact(self) -> None:
        """Fold segments, deletions and per-item weight edits into one segment (no
        re-encoding). The journal is kept: the folded edits are recorded in the manifest, so an
        undo later restores the word's original weight."""
        with self._writing():
            self._fold_item_edits()
            alive = [it for seg in self.index.segments
                     for i, it in enumerate(self.stores[seg.uid].items())
                     if seg.doc_base + i not in self.index.deleted]
            self.index.compact()
            uid = self.index.segments[0].uid
            SegmentStore.write(self.path, uid, alive)
            self.stores = {uid: SegmentStore(self.path, uid, len(alive))}

    def folded_edits(self) -> list[dict]:
        """Per-product weights folded into the postings by compactions: {"item", "word",
        "code", "original"} each (indexes of an earlier version keyed them "item<TAB>word")."""
        folded = self.index.meta.get("folded_edits", [])
        if isinstance(folded, dict):  # the older form; a word never holds a tab
            return [{"item": k.rsplit("\t", 1)[0], "word": k.rsplit("\t", 1)[1], **v}
                    for k, v in folded.items()]
        return list(folded)

    def _unfold(self, ids: Sequence[str]) -> None:
        """Forget the folded edits of products whose postings are gone (deleted, or replaced
        by an update): the journal's edits then apply to a new product of that id as they
        did before any compaction."""
        gone = set(ids)
        folded = self.folded_edits()
        if any(f["item"] in gone for f in folded):
            self.index.meta["folded_edits"] = [f for f in folded if f["item"] not in gone]

    def doc_vector(self, doc: int) -> dict[int, int]:
        """Every stored (term id → code) of one doc, read back from the postings."""
        seg, local = self._locate(doc)
        pos = np.nonzero(np.asarray(seg.docs) == local)[0]
        terms = np.searchsorted(np.asarray(seg.indptr), pos, side="right") - 1
        return {int(t): int(seg.impacts[p]) for t, p in zip(terms, pos, strict=True)}

    def _fold_item_edits(self) -> None:
        """Re-add each product with per-item edits as a new row holding its edited codes,
        and remember each folded (item, word) with its original code."""
        from scipy import sparse

        compiled = self.journal_edits()
        overlay = compiled.overlay
        if not overlay:
            return
        folded = {(f["item"], f["word"]): f for f in self.folded_edits()}
        words_of: dict[str, set[str]] = {}
        for item, word in [*compiled.state.doc_weights, *folded]:
            words_of.setdefault(item, set()).add(word)
        docs, rows, items = [], [], []
        for doc, over in sorted(overlay.items()):
            if doc in self.index.deleted:
                continue
            vec, item = self.doc_vector(doc), self.item(doc)
            for word in words_of.get(item["id"], ()):
                t = self.model.vocab.word_id(word)
                if t in over:
                    original = folded.get((item["id"], word), {}).get("original", vec.get(t, 0))
                    folded.pop((item["id"], word), None)
                    if over[t] != original:
                        folded[(item["id"], word)] = {"item": item["id"], "word": word,
                                                      "code": over[t], "original": original}
                    vec[t] = over[t]
            docs.append(doc)
            items.append(item)
            rows.append({t: c for t, c in vec.items() if c > 0})
        indptr = np.cumsum([0] + [len(r) for r in rows])
        cols = np.array([t for r in rows for t in sorted(r)], np.int64)
        vals = np.array([r[t] for r in rows for t in sorted(r)], np.uint8)
        self.index.delete(docs)
        self._add_segment(items, sparse.csr_matrix((vals, cols, indptr),
                                                   shape=(len(rows), self.index.n_terms)))
        self.index.meta["folded_edits"] = list(folded.values())

    # -- search -----------------------------------------------------------------------------
    def filter_bitmap(self, filters: dict[str, Sequence[str]] | None) -> BitMap | None:
        """AND across fields, OR within a field's values."""
        if not filters:
            return None
        result: BitMap | None = None
        for fname, values in filters.items():
            bm = BitMap()
            for seg in self.index.segments:
                store = self.stores[seg.uid]
                for v in values:
                    bm |= store.filter(fname, v).shift(seg.doc_base)
            result = bm if result is None else result & bm
        return result

    def search(self, query: str, k: int = 10, filters: dict | None = None,
               matched_words: int = 3, edits: CompiledEdits | None = None) -> list[Hit]:
        return self.batch_search([query], k, filters, matched_words, edits=edits)[0]

    def batch_search(self, queries: Sequence[str], k: int = 10, filters: dict | None = None,
                     matched_words: int = 3, progress=None,
                     edits: CompiledEdits | None = None, threads: int = 1) -> list[list[Hit]]:
        """Exact top-k with the journal's edits applied (or `edits`, e.g. to preview an edit),
        the postings walked on `threads` threads. Products with per-item edits are scored
        beside the walk and merged in."""
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 0:
            raise InputError(f"k must be a whole number of hits, got {k!r}")
        edits = edits if edits is not None else self.journal_edits()
        k = min(int(k), self.index.n_docs)  # no more hits than documents can come back
        mask, side = self._masks(filters, edits)
        qvs = self.query_vectors(queries, edits)
        found = self.index.batch_search_codes([(qv.ids, qv.codes) for qv in qvs], k, mask=mask,
                                              threads=threads)
        out = []
        for qv, (docs, ints) in zip(qvs, found, strict=True):
            if side.size and k > 0:
                extra = np.array([int(self._contributions(qv, int(d), edits)[1].sum())
                                  for d in side], np.int64)
                pos = extra > 0
                docs = np.concatenate([docs, side[pos]])
                ints = np.concatenate([ints, extra[pos]])
                order = np.lexsort((docs, -ints))[:k]
                docs, ints = docs[order], ints[order]
            out.append([self._hit(qv, int(d), int(s), matched_words, edits)
                        for d, s in zip(docs, ints, strict=True)])
            if progress is not None:
                progress(1)
        return out

    def _masks(self, filters: dict | None, edits: CompiledEdits):
        """The kernel's doc mask (filters, deletions, edited products left out) and the
        edited products that pass the filters, scored beside the walk."""
        mask = self.index.mask_for(self.filter_bitmap(filters))
        side = np.zeros(0, np.int64)
        if edits.overlay:
            full = mask.copy() if mask.size else np.ones(self.index.n_docs, np.uint8)
            odocs = np.array(sorted(edits.overlay), np.int64)
            odocs = odocs[odocs < self.index.n_docs]
            side = odocs[full[odocs] == 1]
            full[odocs] = 0
            mask = full
        return mask, side

    def _locate(self, doc: int) -> tuple[Segment, int]:
        for seg in self.index.segments:
            if seg.doc_base <= doc < seg.doc_base + seg.n_docs:
                return seg, doc - seg.doc_base
        raise KeyError(doc)

    def doc_codes(self, doc: int, term_ids: np.ndarray, edits=None) -> np.ndarray:
        """The title codes of `doc` for the given terms (0 where absent): the stored ones,
        or the edited ones where an operator set them (edits: CompiledEdits)."""
        seg, local = self._locate(doc)
        out = np.zeros(len(term_ids), np.int64)
        over = edits.overlay.get(doc, {}) if edits is not None else {}
        for j, t in enumerate(np.asarray(term_ids).tolist()):
            if t in over:
                out[j] = over[t]
            elif 0 <= t < self.index.n_terms:
                a, b = int(seg.indptr[t]), int(seg.indptr[t + 1])
                p = a + int(np.searchsorted(seg.docs[a:b], local))
                if p < b and seg.docs[p] == local:
                    out[j] = seg.impacts[p]
        return out

    def _contributions(self, qv: SparseVector, doc: int, edits=None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """The doc's codes for the query's terms, and each term's integer contribution."""
        dcodes = self.doc_codes(doc, qv.ids, edits)
        return dcodes, qv.codes.astype(np.int64) * dcodes

    def item(self, doc: int) -> dict:
        seg, local = self._locate(doc)
        return self.stores[seg.uid].item(local)

    def item_by_id(self, item_id: str) -> dict:
        doc = self.id_map().get(item_id)
        if doc is None:
            raise InputError(f"unknown id {item_id!r}")
        return self.item(doc)

    def _hit(self, qv: SparseVector, doc: int, score_int: int, n_words: int, edits=None) -> Hit:
        item = self.item(doc)
        _, contrib = self._contributions(qv, doc, edits)
        return make_hit(qv, item, contrib, score_int, self.index.scale, n_words)

    def query_vectors(self, queries: Sequence[str], edits: CompiledEdits | None = None
                      ) -> list[SparseVector]:
        """The queries' vectors as search scores them: encoded, the word edits applied."""
        edits = edits if edits is not None else self.journal_edits()
        return [edits.words.apply(qv) for qv in self.model.encode(list(queries), "query")]

    def explain(self, query: str, item_id: str, edits: CompiledEdits | None = None,
                qv: SparseVector | None = None) -> Explanation:
        """The query–item score as the index computes it, word by word. `qv`: the query's
        vector from `query_vectors(.., edits)`, when the caller explains many items of it."""
        item = self.item_by_id(item_id)
        edits = edits if edits is not None else self.journal_edits()
        qv = qv if qv is not None else self.query_vectors([query], edits)[0]
        dcodes, contrib = self._contributions(qv, self.id_map()[item_id], edits)
        return make_explanation(self.model, query, item["title"], qv, dcodes, contrib,
                                self.index.scale)

    def stats(self) -> dict:
        self.refresh()
        st = self.index.stats()
        disk = sum(_size(p) for p in self.path.iterdir())
        return {**st, "bytes_on_disk": disk, "model_id": self.index.meta.get("model_id"),
                "filter_fields": sorted(set().union(*(s.fields() for s in self.stores.values())))}


def _size(p: Path) -> int:
    try:
        return p.stat().st_size if p.is_file() else 0
    except FileNotFoundError:  # removed meanwhile by a writer's clean-up
        return 0


def validate_items(items: Iterable[dict]) -> list[dict]:
    """Items checked as the catalogue reader checks them (deepbow/readers.py); ids unique."""
    out, seen = [], set()
    for n, it in enumerate(items):
        it = check_item(it, f"item {n}")
        if it["id"] in seen:
            raise InputError(f"item {n}: duplicate id {it['id']!r}")
        seen.add(it["id"])
        out.append(it)
    return out


def given_codes(codes, items: Sequence[dict], model):
    """Codes computed outside this process, checked: one row per item, a column per term of
    the model, 8-bit."""
    from scipy import sparse

    if not sparse.issparse(codes) or codes.shape != (len(items), model.vocab.size) \
            or codes.dtype != np.uint8:
        raise InputError(f"codes must be a uint8 sparse matrix of {len(items)} rows × "
                         f"{model.vocab.size} terms, got {getattr(codes, 'dtype', '?')} "
                         f"{getattr(codes, 'shape', type(codes).__name__)}")
    return sparse.csr_matrix(codes)


def encode_items(model, items: Sequence[dict], batch_size: int, progress=None):
    """Title codes of the items as a CSR matrix (one row per item), encoded in batches."""
    from scipy import sparse

    parts = []
    for a in range(0, len(items), batch_size):
        chunk = items[a:a + batch_size]
        parts.append(model.encode_csr([it["title"] for it in chunk], batch_size=256))
        if progress is not None:
            progress(len(chunk))
    if not parts:
        return sparse.csr_matrix((0, model.vocab.size), dtype=np.uint8)
    return sparse.vstack(parts, format="csr").astype(np.uint8)
