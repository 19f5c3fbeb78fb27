"""A searchable product catalogue: a DeepBoW model + an inverted index + the items themselves.

Takes text, returns hits. The directory holds the index (see index.inverted) plus, per segment,
the items as JSONL with a byte-offset array (a hit's title is read on demand, nothing is parsed
at load), the item ids, and filter bitmaps for each string field (field=value → docs), stored
as serialized roaring bitmaps. The manifest records the model id: opening with another model
is refused, since its term ids and weights would not match.

Scores are the index's integer scores times the two scales, the same numbers `deepbow score` and
`deepbow explain` compute for a pair; `explain` here reads the title weights from the postings,
so it always agrees with the ranking.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyroaring import BitMap

from deepbow.errors import InputError
from deepbow.fileio import atomic_open, dir_lock
from deepbow.sparse import SparseVector
from index.inverted import IndexFileError, InvertedIndex, Segment

FILTER_MAX_LEN = 64
INDEX_BATCH = 2048


@dataclass
class Hit:
    id: str
    score: float
    title: str
    fields: dict
    matched: list[tuple[str, float]] = field(default_factory=list)  # (word, contribution)

    def to_json(self) -> dict:
        return {"id": self.id, "score": self.score, "title": self.title, **self.fields,
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
    def write(folder: Path, uid: str, items: Sequence[dict]) -> None:
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


class Catalogue:
    def __init__(self, path: Path, index: InvertedIndex, model) -> None:
        self.path = Path(path)
        self.index = index
        self.model = model
        self.stores = {s.uid: SegmentStore(self.path, s.uid) for s in index.segments}
        self._id_map: dict[str, int] | None = None
        self._editor = None
        self.version = 0  # bumped by every change of the postings (edits recompile on it)
        self.ebrm = None  # an EBRM model, attached for entity views (attach_ebrm)

    @property
    def editor(self):
        """The weight editor of this catalogue (index/editor.py); its journal is
        `<index>/edits.jsonl`, applied to every search and explain."""
        if self._editor is None:
            from index.editor import Editor

            self._editor = Editor(self)
        return self._editor

    def edits(self):
        return self.editor.compiled()

    # -- building and opening ---------------------------------------------------------------
    @classmethod
    def build(cls, model, items: Iterable[dict], out: str | Path, overwrite: bool = False,
              batch_size: int = INDEX_BATCH, progress: Callable[[int], None] | None = None
              ) -> Catalogue:
        """Encode every title and write a new index directory (temp dir, then rename)."""
        out = Path(out)
        if out.exists() and not overwrite:
            raise IndexFileError(f"{out} exists: refusing to overwrite it (use --overwrite)")
        items = validate_items(items)
        codes = encode_items(model, items, batch_size, progress)
        index = InvertedIndex.from_csr(codes, scale=model.scales["title"])
        index.meta = {"model_id": model.model_id}
        uid = index.segments[0].uid

        def write_items(folder: Path) -> list[str]:
            SegmentStore.write(folder, uid, items)
            journal = out / "edits.jsonl"
            if journal.is_file():  # a rebuild keeps the operators' edits (not checksummed:
                shutil.copy2(journal, folder / journal.name)  # the journal grows)
            return SegmentStore(folder, uid).names()

        index.save(out, overwrite=overwrite, write_extra=write_items)
        return cls.open(out, model)

    @classmethod
    def open(cls, path: str | Path, model=None, mmap: bool = True,
             verify: bool = False) -> Catalogue:
        """Open an index directory; `model` defaults to the shipped one and must match."""
        import deepbow

        path = Path(path)
        index = InvertedIndex.load(path, mmap=mmap, verify=verify)
        model = model or deepbow.load()
        want = index.meta.get("model_id")
        if want != model.model_id:
            raise IndexFileError(f"{path}: built with model {want}, but the model given is "
                                 f"{model.model_id}; rebuild the index or pass --model")
        if index.n_terms != model.vocab.size:
            raise IndexFileError(f"{path}: {index.n_terms} terms, the model has "
                                 f"{model.vocab.size}")
        return cls(path, index, model)

    # -- live changes -----------------------------------------------------------------------
    def id_map(self) -> dict[str, int]:
        if self._id_map is None:
            m: dict[str, int] = {}
            for seg in self.index.segments:
                for i, x in enumerate(self.stores[seg.uid].ids()):
                    if seg.doc_base + i not in self.index.deleted:
                        m[x] = seg.doc_base + i
            self._id_map = m
        return self._id_map

    def add(self, items: Iterable[dict], progress=None, replace: bool = False) -> int:
        """Add items; an id already present is refused unless `replace` (that is update)."""
        items = validate_items(items)
        with dir_lock(self.path):
            ids = self.id_map()
            clash = [it["id"] for it in items if it["id"] in ids]
            if clash and not replace:
                raise InputError(f"ids already in the index: {clash[:5]} (use update)")
            if clash:
                self.index.delete([ids[x] for x in clash])
            self._add_segment(items, encode_items(self.model, items, INDEX_BATCH, progress))
            self._write_manifest()
        return len(items)

    def _add_segment(self, items: list[dict], codes) -> None:
        """Postings (a CSR of title codes, one row per item) and items as a new segment."""
        nums = self.index.add(codes)
        if len(nums):
            uid = self.index.segments[-1].uid
            SegmentStore.write(self.path, uid, items)
            self.stores[uid] = SegmentStore(self.path, uid)
            ids = self.id_map()
            for it, num in zip(items, nums.tolist(), strict=True):
                ids[it["id"]] = num

    def update(self, items: Iterable[dict], progress=None) -> int:
        return self.add(items, progress, replace=True)

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        with dir_lock(self.path):
            m = self.id_map()
            unknown = [x for x in ids if x not in m]
            if unknown:
                raise InputError(f"unknown ids: {unknown[:5]}")
            self.index.delete([m.pop(x) for x in ids])
            self._write_manifest()
        return len(ids)

    def compact(self) -> None:
        """Fold segments, deletions and per-item weight edits into one segment (no
        re-encoding). The journal is kept: the folded edits are recorded in the manifest, so an
        undo later restores the word's original weight."""
        with dir_lock(self.path):
            self._fold_item_edits()
            alive = [it for seg in self.index.segments
                     for i, it in enumerate(self.stores[seg.uid].items())
                     if seg.doc_base + i not in self.index.deleted]
            self.index.compact()
            uid = self.index.segments[0].uid
            SegmentStore.write(self.path, uid, alive)
            self.stores = {uid: SegmentStore(self.path, uid)}
            self._id_map = None
            self._write_manifest()

    def doc_vector(self, doc: int) -> dict[int, int]:
        """Every stored (term id → code) of one doc, read back from the postings."""
        seg, local = self._locate(doc)
        pos = np.nonzero(np.asarray(seg.docs) == local)[0]
        terms = np.searchsorted(np.asarray(seg.indptr), pos, side="right") - 1
        return {int(t): int(seg.impacts[p]) for t, p in zip(terms, pos, strict=True)}

    def _fold_item_edits(self) -> None:
        from scipy import sparse

        edits = self.edits()
        if not edits.overlay:
            return
        folded = dict(self.index.meta.get("folded_edits", {}))
        vocab = self.model.vocab
        by_doc_words = {}
        for (item, word), _ in edits.state.doc_weights.items():
            by_doc_words.setdefault(item, []).append(word)
        for key in folded:
            item, word = key.split("\t", 1)
            by_doc_words.setdefault(item, []).append(word)
        docs, rows, items = [], [], []
        for doc, over in sorted(edits.overlay.items()):
            if doc in self.index.deleted:
                continue
            vec = self.doc_vector(doc)
            item = self.item(doc)
            for word in set(by_doc_words.get(item["id"], ())):
                t = vocab.word_id(word)
                if t not in over:
                    continue
                key = f"{item['id']}\t{word}"
                original = folded.get(key, {}).get("original", vec.get(t, 0))
                if over[t] == original:
                    folded.pop(key, None)
                else:
                    folded[key] = {"code": over[t], "original": original}
                vec[t] = over[t]
            vec = {t: c for t, c in vec.items() if c > 0}
            docs.append(doc)
            items.append(item)
            rows.append(vec)
        n = self.index.n_terms
        indptr = np.cumsum([0] + [len(r) for r in rows])
        cols = np.array([t for r in rows for t in sorted(r)], np.int64)
        vals = np.array([r[t] for r in rows for t in sorted(r)], np.uint8)
        self.index.delete(docs)
        self._add_segment(items, sparse.csr_matrix((vals, cols, indptr), shape=(len(rows), n)))
        self.index.meta["folded_edits"] = folded

    def _write_manifest(self) -> None:
        self.version += 1
        names = [n for s in self.index.segments for n in self.stores[s.uid].names()]
        self.index.write_into(self.path, {"files": names})

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
               matched_words: int = 3, edits=None) -> list[Hit]:
        return self.batch_search([query], k, filters, matched_words, edits=edits)[0]

    def batch_search(self, queries: Sequence[str], k: int = 10, filters: dict | None = None,
                     matched_words: int = 3, progress=None, edits=None) -> list[list[Hit]]:
        """Exact top-k with the edit journal applied (edits: a CompiledEdits to use instead,
        e.g. to preview an edit). Products with per-item edits are scored beside the walk."""
        edits = edits if edits is not None else self.edits()
        mask = self.index.mask_for(self.filter_bitmap(filters))
        side = np.zeros(0, np.int64)
        if edits.overlay:
            full = mask.copy() if mask.size else np.ones(self.index.n_docs, np.uint8)
            odocs = np.array(sorted(edits.overlay), np.int64)
            odocs = odocs[odocs < self.index.n_docs]
            side = odocs[full[odocs] == 1]
            full[odocs] = 0
            mask = full
        qvecs = self.model.encode(list(queries), "query")
        out = []
        for qv in qvecs:
            qv = edits.edit_query(qv)
            docs, ints = self.index.search_codes(qv.ids, qv.codes, k, mask=mask)
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
        for j, t in enumerate(np.asarray(term_ids).tolist()):
            if 0 <= t < self.index.n_terms:
                a, b = int(seg.indptr[t]), int(seg.indptr[t + 1])
                p = a + int(np.searchsorted(seg.docs[a:b], local))
                if p < b and seg.docs[p] == local:
                    out[j] = seg.impacts[p]
        over = edits.overlay.get(doc) if edits is not None else None
        if over:
            for j, t in enumerate(np.asarray(term_ids).tolist()):
                if t in over:
                    out[j] = over[t]
        return out

    def _contributions(self, qv: SparseVector, doc: int, edits=None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """The doc's codes for the query's terms, and each term's integer contribution."""
        dcodes = self.doc_codes(doc, qv.ids, edits)
        return dcodes, qv.codes.astype(np.int64) * dcodes

    def item(self, doc: int) -> dict:
        seg, local = self._locate(doc)
        return self.stores[seg.uid].item(local)

    def _hit(self, qv: SparseVector, doc: int, score_int: int, n_words: int, edits=None) -> Hit:
        item = self.item(doc)
        scale = qv.scale * self.index.scale
        _, contrib = self._contributions(qv, doc, edits)
        order = np.argsort(-contrib, kind="stable")[:n_words]
        matched = [(qv.words[i], float(contrib[i] * scale)) for i in order if contrib[i] > 0]
        fields = {k: v for k, v in item.items() if k not in ("id", "title")}
        return Hit(item["id"], score_int * scale, item["title"], fields, matched)

    def explain(self, query: str, item_id: str):
        """The query–item score as the index computes it, word by word."""
        from deepbow.encoder import Explanation, MatchRow

        doc = self.id_map().get(item_id)
        if doc is None:
            raise InputError(f"unknown id {item_id!r}")
        edits = self.edits()
        qv = edits.edit_query(self.model.encode([query], "query")[0])
        dcodes, contrib = self._contributions(qv, doc, edits)
        scale = qv.scale * self.index.scale
        item = self.item(doc)
        rows = [MatchRow(qv.words[i], float(qv.weights[i]), float(dcodes[i] * self.index.scale),
                         float(contrib[i] * scale), bool(qv.expanded[i]), False)
                for i in np.nonzero(dcodes)[0]]
        rows.sort(key=lambda r: -r.contribution)
        score = int(contrib.sum()) * scale
        return Explanation(query, item["title"], score, int(self.model.label([score])[0]), rows,
                           qv, SparseVector(np.zeros(0, np.int32), np.zeros(0, np.int32)))

    # -- entities (EBRM) --------------------------------------------------------------------
    def attach_ebrm(self, model) -> None:
        """Give the catalogue an EBRM model for entity views and EBRM/hybrid reranking; the
        journal's pins and type rules apply to it."""
        self.ebrm = model

    def _ebrm(self, edits=None):
        if self.ebrm is None:
            raise InputError("no EBRM model attached to this catalogue (attach_ebrm)")
        self.ebrm.edits = (edits if edits is not None else self.edits()).state
        return self.ebrm

    def entity_explain(self, query: str, item_id: str):
        """EBRM's entity-by-entity view of one product, with the journal's pins and rules."""
        doc = self.id_map().get(item_id)
        if doc is None:
            raise InputError(f"unknown id {item_id!r}")
        item = self.item(doc)
        return self._ebrm().explain(query, item["title"], item_categories(item))

    def rerank(self, query: str, k: int = 10, scorer: str = "ebrm", hybrid=None,
               depth: int = 50, filters: dict | None = None, edits=None
               ) -> list[tuple[Hit, float]]:
        """DeepBoW retrieves `depth` candidates, then EBRM (or the hybrid) orders them:
        (hit, score) pairs, best first, ties by the retrieval order. edits: a CompiledEdits to
        use instead of the journal's (to preview an edit)."""
        hits = self.search(query, max(k, depth), filters, edits=edits)
        if scorer == "deepbow" or not hits:
            return [(h, h.score) for h in hits[:k]]
        model = self._ebrm(edits)
        try:
            scores = model.score(query, [h.title for h in hits],
                                 [item_categories({**h.fields}) for h in hits])
        finally:
            model.edits = self.edits().state
        if scorer == "hybrid":
            if hybrid is None:
                raise InputError("hybrid reranking needs a Hybrid (ebrm.hybrid.Hybrid)")
            scores = hybrid.combine([h.score for h in hits], scores)
        elif scorer != "ebrm":
            raise InputError(f"unknown scorer {scorer!r}: use deepbow, ebrm or hybrid")
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))[:k]
        return [(hits[i], float(scores[i])) for i in order]

    def stats(self) -> dict:
        st = self.index.stats()
        disk = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        return {**st, "bytes_on_disk": disk, "model_id": self.index.meta.get("model_id"),
                "filter_fields": sorted(set().union(*(s.fields() for s in self.stores.values())))}


def item_categories(item: dict) -> list[str]:
    """An item's categories for the type rules: its "category" field (a string or a list)."""
    v = item.get("category", [])
    return [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]


def validate_items(items: Iterable[dict]) -> list[dict]:
    out, seen = [], set()
    for n, it in enumerate(items):
        if not isinstance(it, dict) or not isinstance(it.get("title"), str) or "id" not in it:
            raise InputError(f'item {n}: needs "id" and a string "title"')
        it = {**it, "id": str(it["id"])}
        if it["id"] in seen:
            raise InputError(f"item {n}: duplicate id {it['id']!r}")
        seen.add(it["id"])
        out.append(it)
    return out


def encode_items(model, items: Sequence[dict], batch_size: int, progress=None):
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
