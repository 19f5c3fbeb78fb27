"""The inverted index: segments of CSR-over-terms postings, deletions and filters as bitmaps.

Model-agnostic: documents are numbered 0..n_docs-1 in the order they were added; weights are
8-bit impacts on one scale (weight = impact × scale). A query is term ids with weights (quantised
to 12-bit codes) or with codes already; scores are exact integers times the two scales, so the
top-k is identical to a brute-force dot product over the same codes, ties broken by doc number.

Live changes: `add` appends a segment, `delete` sets bits in a pyroaring bitmap that the kernels
see as a mask (so k results come back whatever was deleted), `compact` folds all into one.

Search is block-max MaxScore (index/kernels_blockmax.py) per segment; `batch_search` can run
chunks of queries on several threads, the kernel releasing the GIL.

On disk: a directory with manifest.json and plain .npy arrays (mmap-able). Segment files are
immutable and named by the segment's uid, so a change writes only new files and then replaces
manifest.json atomically (`commit`): a crash at any point leaves the previous manifest, which
names only complete files. A first build goes to a temp directory renamed into place (`save`).
Format version 2 adds each segment's block-max arrays (bptr, blk_last, blk_max); a version-1
index is still read, its block maxima computed at load (0.3 s per 30M postings).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from pyroaring import BitMap
from scipy import sparse

from deepbow.fileio import dir_lock, file_lock, staged_dir
from deepbow.sparse import QUERY_MAX_CODE, TITLE_MAX_CODE
from index import kernels, kernels_blockmax, query_arrays
from index.folder import check_replaceable, listed_files, prune
from index.integrity import (
    DTYPES,
    FORMAT,
    FORMAT_VERSION,
    V1_ARRAYS,
    IndexFileError,
    check_arrays,
    check_deleted,
    check_files,
    check_manifest,
    read_index_manifest,
)
from index.segment import Segment

ARRAYS = tuple(DTYPES)  # a segment's arrays, one .npy file each (V1_ARRAYS before version 2)
BATCH_CHUNK = 64  # queries per kernel call in batch_search
_SCRATCH = threading.local()  # each thread's kernel workspace, reused across queries
__all__ = ["FORMAT", "FORMAT_VERSION", "IndexFileError", "InvertedIndex", "Segment",
           "read_index_manifest"]


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}  # batch_search's threads
_POOLS_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """A process-wide pool of `threads` threads, kept across batches so each thread's kernel
    workspace stays allocated and warm (2 threads: 1.89-1.95x one thread on the DeepBoW-like
    1M corpus, against 1.65-1.86x with a pool made per batch). Keyed by process id too: a
    forked child has none of its parent's threads."""
    key = (os.getpid(), threads)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ThreadPoolExecutor(threads, "deepbow-search")
        return pool


def _workspace() -> tuple:
    ws = getattr(_SCRATCH, "ws", None)
    if ws is None:
        ws = _SCRATCH.ws = kernels_blockmax.workspace()
    return ws


class InvertedIndex:
    def __init__(self, segments: list[Segment], n_terms: int, scale: float,
                 deleted: BitMap | None = None, meta: dict | None = None) -> None:
        self.segments = segments
        self.n_terms = n_terms
        self.scale = float(scale)
        self.deleted = deleted if deleted is not None else BitMap()
        self.meta = dict(meta or {})
        self._alive: np.ndarray | None = None

    # -- building ---------------------------------------------------------------------------
    @staticmethod
    def quantize_docs(matrix, scale: float | None = None) -> tuple[sparse.csr_matrix, float]:
        """8-bit codes of a docs × terms matrix: uint8 input is taken as codes already."""
        m = sparse.csr_matrix(matrix)
        if m.dtype == np.uint8:
            codes = m.copy()
            scale = 1.0 if scale is None else scale
        else:
            if m.nnz and m.data.min() < 0:
                raise ValueError("document weights must be non-negative")
            top = float(m.data.max()) if m.nnz else 1.0
            scale = scale or (top / TITLE_MAX_CODE if top > 0 else 1.0)
            data = np.clip(np.rint(m.data / scale), 0, TITLE_MAX_CODE).astype(np.uint8)
            # copies: eliminate_zeros works in place and must not touch the caller's matrix
            codes = sparse.csr_matrix((data, m.indices.copy(), m.indptr.copy()), shape=m.shape)
        codes.sum_duplicates()
        codes.eliminate_zeros()
        return codes, scale

    @classmethod
    def from_csr(cls, matrix, scale: float | None = None) -> InvertedIndex:
        """Rows = documents, columns = term ids. Float weights are quantised to 8 bits
        (scale = max / 255 unless given); a uint8 matrix is taken as codes on `scale`."""
        codes, scale = cls.quantize_docs(matrix, scale)
        return cls([Segment.from_codes(codes, 0)], codes.shape[1], scale)

    @property
    def n_docs(self) -> int:
        return sum(s.n_docs for s in self.segments)

    @property
    def n_alive(self) -> int:
        return self.n_docs - len(self.deleted)

    @property
    def n_postings(self) -> int:
        return sum(s.n_postings for s in self.segments)

    # -- live changes -----------------------------------------------------------------------
    def add(self, matrix) -> np.ndarray:
        """Append documents (same term space and scale); returns their doc numbers."""
        codes, _ = self.quantize_docs(matrix, self.scale)
        if codes.shape[1] != self.n_terms:
            raise ValueError(f"matrix has {codes.shape[1]} term columns, index has {self.n_terms}")
        base = self.n_docs
        if codes.shape[0]:
            self.segments.append(Segment.from_codes(codes, base))
            self._alive = None
        return np.arange(base, base + codes.shape[0], dtype=np.int64)

    def delete(self, doc_numbers) -> int:
        """Mark documents deleted; returns how many were newly deleted."""
        nums = np.asarray(doc_numbers, np.int64).ravel()
        if nums.size and (nums.min() < 0 or nums.max() >= self.n_docs):
            raise KeyError(f"doc numbers out of range 0..{self.n_docs - 1}")
        before = len(self.deleted)
        self.deleted.update(nums.astype(np.uint32).tolist())
        self._alive = None
        return len(self.deleted) - before

    def compact(self) -> np.ndarray:
        """Fold all segments into one without the deleted documents.

        Returns old → new doc numbers (-1 for deleted), for the caller's id maps."""
        keep = self.alive_mask().astype(bool)
        mapping = np.full(self.n_docs, -1, np.int64)
        mapping[keep] = np.arange(int(keep.sum()))
        rows = [s.to_codes() for s in self.segments]
        allc = sparse.vstack(rows, format="csr") if rows else sparse.csr_matrix(
            (0, self.n_terms), dtype=np.uint8)
        allc = allc[keep]
        self.segments = [Segment.from_codes(sparse.csr_matrix(allc, dtype=np.uint8), 0)]
        self.deleted = BitMap()
        self._alive = None
        return mapping

    def alive_mask(self) -> np.ndarray:
        if self._alive is None or len(self._alive) != self.n_docs:
            mask = np.ones(self.n_docs, np.uint8)
            if len(self.deleted):
                mask[np.frombuffer(self.deleted.to_array(), np.uint32)] = 0
            self._alive = mask
        return self._alive

    def mask_for(self, allowed: BitMap | None) -> np.ndarray:
        """uint8 mask over doc numbers: alive and (if given) in `allowed`. Empty = all."""
        if allowed is None:
            return self.alive_mask() if len(self.deleted) else np.zeros(0, np.uint8)
        mask = np.zeros(self.n_docs, np.uint8)
        ids = np.frombuffer(allowed.to_array(), np.uint32)
        mask[ids[ids < self.n_docs]] = 1
        if len(self.deleted):
            mask &= self.alive_mask()
        return mask

    # -- search -----------------------------------------------------------------------------
    @staticmethod
    def quantize_query(term_ids, weights) -> tuple[np.ndarray, np.ndarray, float]:
        t = np.asarray(term_ids, np.int64).ravel()
        w = np.asarray(weights, np.float64).ravel()
        if t.shape != w.shape:
            raise ValueError("term_ids and weights differ in length")
        if w.size and (not np.all(np.isfinite(w)) or w.min() < 0):
            raise ValueError("query weights must be finite and non-negative")
        top = float(w.max()) if w.size else 0.0
        qscale = top / QUERY_MAX_CODE if top > 0 else 1.0
        codes = np.rint(w / qscale).astype(np.int32)
        return t, codes, qscale

    def search(self, term_ids, weights, k: int = 10, allowed: BitMap | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k (doc numbers, float scores), best first, ties by doc number."""
        t, codes, qscale = self.quantize_query(term_ids, weights)
        docs, ints = self.search_codes(t, codes, k, allowed)
        return docs, ints * (qscale * self.scale)

    def search_codes(self, term_ids, codes, k: int = 10, allowed: BitMap | None = None,
                     mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k with integer query codes: (doc numbers, integer scores). Unknown term
        ids and codes <= 0 match nothing (the kernel skips them)."""
        t = np.ascontiguousarray(term_ids, np.int64)
        c = np.ascontiguousarray(codes, np.int64)
        if t.shape != c.shape:
            raise ValueError("term_ids and codes differ in length")
        if mask is None:
            mask = self.mask_for(allowed)
        if k <= 0 or t.size == 0 or not self.segments:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ws = _workspace()
        if len(self.segments) == 1 and self.segments[0].doc_base == 0:
            return self.segments[0].top_k(t, c, k, mask, ws)
        parts = []
        for seg in self.segments:
            d, s = seg.top_k(t, c, k, self._segment_mask(mask, seg), ws)
            parts.append((d + seg.doc_base, s))
        return query_arrays.merge_topk(parts, k)

    @staticmethod
    def _segment_mask(mask: np.ndarray, seg: Segment) -> np.ndarray:
        return mask[seg.doc_base:seg.doc_base + seg.n_docs] if mask.size else mask

    def batch_search(self, queries: list[tuple], k: int = 10, allowed: BitMap | None = None,
                     threads: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """search() for many (term_ids, weights) queries, in order, with the same results.
        The mask is built once; queries go to the kernel in chunks (one call per chunk and
        segment, quantised together), and with threads > 1 the chunks run on that many
        threads: the kernel releases the GIL, so they use as many cores."""
        return self._batch(queries, k, self.mask_for(allowed), threads, weighted=True)

    def batch_search_codes(self, queries: list[tuple], k: int = 10,
                           allowed: BitMap | None = None, mask: np.ndarray | None = None,
                           threads: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """search_codes() for many (term_ids, codes) queries, in order (see batch_search)."""
        if mask is None:
            mask = self.mask_for(allowed)
        return self._batch(queries, k, mask, threads, weighted=False)

    def _batch(self, queries: list[tuple], k: int, mask: np.ndarray, threads: int,
               weighted: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        n = len(queries)
        step = max(1, min(BATCH_CHUNK, -(-n // (threads * 4))))  # several chunks a thread
        chunks = [queries[a:a + step] for a in range(0, n, step)]

        def run(chunk):
            return self._search_chunk(chunk, k, mask, weighted)

        if threads == 1 or len(chunks) <= 1:
            parts = [run(ch) for ch in chunks]
        else:
            parts = list(_pool(threads).map(run, chunks))
        return [r for part in parts for r in part]

    def _search_chunk(self, queries: list[tuple], k: int, mask: np.ndarray,
                      weighted: bool) -> list[tuple]:
        t, v, q_ptr = query_arrays.flatten(queries, np.float64 if weighted else np.int64)
        if weighted:
            c, qscale = query_arrays.quantize_flat(v, q_ptr)
        else:
            c, qscale = v, None
        empty = np.zeros(0, np.float64 if weighted else np.int64)
        if k <= 0 or not self.segments:
            return [(np.zeros(0, np.int64), empty) for _ in queries]
        ws = _workspace()
        per_seg = [(seg.doc_base, *seg.batch_top_k(q_ptr, t, c, k,
                                                   self._segment_mask(mask, seg), ws))
                   for seg in self.segments]
        if len(per_seg) == 1 and per_seg[0][0] == 0:
            _, d, s = per_seg[0]
            found = [(d[i, :m], s[i, :m]) for i, m in enumerate((d >= 0).sum(1).tolist())]
        else:
            found = []
            for i in range(len(queries)):
                parts = [(d[i][d[i] >= 0] + base, s[i][d[i] >= 0]) for base, d, s in per_seg]
                found.append(query_arrays.merge_topk(parts, k))
        if weighted:
            return [(d, s * (q * self.scale)) for (d, s), q in zip(found, qscale.tolist(),
                                                                    strict=True)]
        return found

    def brute_force(self, term_ids, codes, k: int = 10, allowed: BitMap | None = None):
        """The exhaustive reference: dense integer scores, then a full sort."""
        t = np.asarray(term_ids, np.int64)
        c = np.asarray(codes, np.int64)
        keep = (t >= 0) & (t < self.n_terms) & (c > 0)
        acc = np.zeros(self.n_docs, np.int64)
        for seg in self.segments:
            acc[seg.doc_base:seg.doc_base + seg.n_docs] = kernels.taat_scores_ref(
                seg.indptr, seg.docs, seg.impacts, t[keep], c[keep], seg.n_docs)
        return kernels.topk_ref(acc, k, self.mask_for(allowed))

    # -- disk -------------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False, extra: dict | None = None,
             write_extra=None, keep: Sequence[str] = ()) -> None:
        """Write a complete index into a temp directory beside `path`, then rename it.
        `write_extra(folder)` may first add files of the caller's and return their names;
        `keep` names files of the index being replaced to carry over (not checksummed: the
        edit journal grows). The index being replaced is locked meanwhile, and so is each
        kept file, so no writer's change to it is lost in the swap."""
        path = Path(path)
        check_replaceable(path, overwrite)
        with ExitStack() as locks:
            if path.is_dir():
                locks.enter_context(dir_lock(path))
                for name in keep:
                    locks.enter_context(file_lock(path / name))
            with staged_dir(path) as tmp:
                extra = dict(extra or {})
                if write_extra is not None:
                    extra["files"] = list(extra.get("files", [])) + list(write_extra(tmp))
                for name in keep:
                    if (path / name).is_file() and (path / name).stat().st_size:
                        shutil.copy2(path / name, tmp / name)
                self.write_into(tmp, extra)

    def commit(self, path: str | Path, extra: dict | None = None) -> None:
        """Write what `path` lacks (new segments, the deleted set), then swap manifest.json.
        An exclusive lock on `path/.lock` keeps two writers from interleaving."""
        with dir_lock(Path(path)):
            self.write_into(Path(path), extra)

    def write_into(self, folder: Path, extra: dict | None = None) -> dict:
        """Write missing segment files, the deletions and manifest.json (atomically, last),
        then remove files the new manifest no longer names. `extra` may hold "files":
        names of files the caller put in the folder (checksummed like ours) and any other
        keys to keep in the manifest. Returns the manifest."""
        from deepbow.fileio import atomic_open, sha256_file  # late: tests inject faults here

        folder = Path(folder)
        extra = dict(extra or {})
        old = listed_files(folder) or {}
        names: list[str] = []
        segs = []
        for seg in self.segments:
            for n in ARRAYS:
                fname = seg.file(n)
                if not (folder / fname).is_file() or fname not in old:
                    with atomic_open(folder / fname, "wb") as fh:
                        np.save(fh, np.asarray(getattr(seg, n)))
                names.append(fname)
            segs.append({"uid": seg.uid, "n_docs": seg.n_docs, "doc_base": seg.doc_base,
                         "n_postings": seg.n_postings})
        deleted_name = f"deleted-{uuid.uuid4().hex[:12]}.roar"
        with atomic_open(folder / deleted_name, "wb") as fh:
            fh.write(self.deleted.serialize())
        names += [deleted_name, *extra.pop("files", [])]
        files = {}
        for fname in names:
            info = old.get(fname)
            size = (folder / fname).stat().st_size
            if info is None or info.get("bytes") != size or fname == deleted_name:
                info = {"bytes": size, "sha256": sha256_file(folder / fname)}
            files[fname] = info
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "n_terms": self.n_terms, "n_docs": self.n_docs, "n_deleted": len(self.deleted),
                    "n_postings": self.n_postings, "impact_bits": 8, "scale": self.scale,
                    "segments": segs, "deleted": deleted_name, **self.meta, **extra,
                    "files": files}
        with atomic_open(folder / "manifest.json") as fh:
            json.dump(manifest, fh, ensure_ascii=False, indent=2, allow_nan=False)
        prune(folder, files)
        return manifest

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True, verify: bool = False,
             previous: InvertedIndex | None = None) -> InvertedIndex:
        """Open an index directory. The manifest's shape, every file's size and what the
        kernels rely on are always checked (index/integrity.py); `verify` also hashes every
        file (what `deepbow index verify` does). Segments of `previous` (an earlier view of the
        same directory) are reused: segment files are immutable, named by their uid."""
        path = Path(path)
        manifest = read_index_manifest(path)
        check_manifest(path / "manifest.json", manifest)
        check_files(path, manifest, verify)
        n_terms = manifest["n_terms"]
        known = {} if previous is None or verify or previous.n_terms != n_terms else \
            {(s.uid, s.doc_base, s.n_docs): s for s in previous.segments}
        segs = []
        try:
            names = ARRAYS if manifest["format_version"] >= 2 else V1_ARRAYS
            for sm in manifest["segments"]:
                seg = known.get((sm["uid"], sm["doc_base"], sm["n_docs"]))
                if seg is None:
                    arrays = {n: np.asarray(np.load(path / f"seg-{sm['uid']}.{n}.npy",
                                                    mmap_mode="r" if mmap else None,
                                                    allow_pickle=False)) for n in names}
                    check_arrays(arrays, sm["n_docs"], n_terms, str(path / f"seg-{sm['uid']}"))
                    seg = Segment(**arrays, n_docs=sm["n_docs"], doc_base=sm["doc_base"],
                                  uid=sm["uid"])
                segs.append(seg)
            deleted = BitMap.deserialize((path / manifest["deleted"]).read_bytes())
        except FileNotFoundError as e:
            raise IndexFileError(f"{path}: missing file {Path(e.filename).name}") from None
        except (ValueError, OSError, EOFError, IndexError) as e:
            raise IndexFileError(f"{path}: unreadable index ({e})") from None
        check_deleted(deleted, manifest["n_docs"], str(path / manifest["deleted"]))
        meta = {k: v for k, v in manifest.items()
                if k not in ("format", "format_version", "n_terms", "n_docs", "n_deleted",
                             "n_postings", "impact_bits", "scale", "segments", "files",
                             "deleted")}
        return cls(segs, n_terms, float(manifest["scale"]), deleted, meta)

    def stats(self) -> dict:
        nbytes = sum(np.asarray(getattr(s, n)).nbytes for s in self.segments for n in ARRAYS)
        return {"docs": self.n_docs, "alive": self.n_alive, "deleted": len(self.deleted),
                "terms": self.n_terms, "postings": self.n_postings,
                "segments": len(self.segments), "bytes": nbytes,
                "bytes_per_posting": nbytes / max(1, self.n_postings)}
