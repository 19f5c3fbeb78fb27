"""The peers of benchmarks/peers.py, each fed the same 8-bit impacts and integer query codes.

* PISA (pyterrier-pisa 0.4.9, the `bench` extra): the postings are written straight into PISA's
  binary collection (inv.docs / inv.freqs / inv.sizes, as its own toks indexer writes them, with
  the impact as the "frequency"); PISA then compresses them (block_simdbp) and builds its
  block-max data (fixed blocks of 64) when the first retriever opens the index. With the
  "quantized" scorer and weighted queries a document scores Σ query weight × impact, and
  pyterrier-pisa passes a weight as the term repeated that many times, so integer codes give
  exactly our scores. Queries go through `_pisathon.retrieve` (PISA's own loop over a batch,
  in C++), without pyterrier's DataFrames around it.
* Seismic (pyseismic-lsr, approximate): built from the same vectors (float32 values = impacts)
  with its default parameters; recall@k against the exhaustive top-k is what it trades.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np
from scipy import sparse

PISA_ALGORITHMS = ("maxscore", "block_max_wand", "block_max_maxscore")


@contextlib.contextmanager
def quiet():
    """PISA logs its build progress to file descriptors 1 and 2 with no switch to turn it off."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(null, fd)
    try:
        yield
    finally:
        for fd, old in zip((1, 2), saved, strict=True):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)


def term_names(n_terms: int) -> list[str]:
    """Zero-padded, so that PISA's sorted lexicon keeps our term order."""
    width = len(str(max(0, n_terms - 1)))
    return [f"{t:0{width}d}" for t in range(n_terms)]


def _u32(*parts) -> bytes:
    return np.concatenate([np.asarray(p, np.uint32).ravel() for p in parts]).tobytes()


def write_pisa_collection(docs: sparse.csr_matrix, path: Path) -> None:
    """PISA's binary collection of the docs × terms impacts (the toks indexer's output)."""
    from pyterrier_pisa import _pisathon

    path.mkdir(parents=True, exist_ok=True)
    csc = sparse.csc_matrix(docs)
    csc.sort_indices()
    lens = np.diff(csc.indptr)
    live = np.nonzero(lens)[0]  # terms with postings, in (zero-padded) name order
    names = term_names(docs.shape[1])
    n_docs = docs.shape[0]
    with open(path / "inv.docs", "wb") as fd, open(path / "inv.freqs", "wb") as ff:
        fd.write(_u32([1, n_docs]))
        for t in live:
            a, b = csc.indptr[t], csc.indptr[t + 1]
            fd.write(_u32([b - a], csc.indices[a:b]))
            ff.write(_u32([b - a], csc.data[a:b]))
    sizes = np.asarray(docs.sum(axis=1)).ravel()
    with open(path / "inv.sizes", "wb") as fs:
        fs.write(_u32([n_docs], sizes))
    (path / "fwd.documents").write_text("".join(f"{i}\n" for i in range(n_docs)))
    (path / "fwd.terms").write_text("".join(names[t] + "\n" for t in live))
    _pisathon.build_binlex(str(path / "fwd.documents"), str(path / "fwd.doclex"))
    _pisathon.build_binlex(str(path / "fwd.terms"), str(path / "fwd.termlex"))
    (path / "pt_meta.json").write_text('{"type": "sparse_index", "format": "pisa", '
                                       '"package_hint": "pyterrier-pisa", "stemmer": "none"}')


class Pisa:
    """A PISA index of the postings; `search(queries, algorithm, threads)` runs a batch."""

    def __init__(self, docs: sparse.csr_matrix, path: Path) -> None:
        from pyterrier_pisa import PisaIndex

        t = time.perf_counter()
        with quiet():
            write_pisa_collection(docs, path)
            self.index = PisaIndex(str(path), stemmer="none", threads=1)
            self.retriever = self.index.quantized(num_results=10, threads=1, toks_scale=1.0)
        self.build_s = time.perf_counter() - t  # collection + compression + block-max data
        self.names = term_names(docs.shape[1])
        self.path = path

    def index_bytes(self) -> int:
        """The compressed index and its block-max (wand) data, as PISA searches them."""
        return sum(p.stat().st_size for p in self.path.glob("quantized.*"))

    def prepare(self, queries) -> list:
        """Queries as pyterrier-pisa passes them: {term: weight}."""
        return [{self.names[t]: float(c) for t, c in zip(ts, cs, strict=True)}
                for ts, cs in queries]

    def search(self, prepared, k: int, algorithm: str, threads: int = 1):
        """PISA's batch retrieval (its loop, in C++); the doc numbers of each query's top k."""
        from pyterrier_pisa import _pisathon

        prepared = list(enumerate(prepared))
        n = len(prepared) * k
        qidx = np.empty(n, np.int32)
        docnos = np.empty(n, dtype=object)
        ranks = np.empty(n, np.int32)
        scores = np.empty(n, np.float32)
        size = _pisathon.retrieve(self.retriever._ctxt, algorithm, prepared, k=k,
                                  threads=threads, query_weighted=1, pretokenised=True,
                                  result_qidxs=qidx, result_docnos=docnos, result_ranks=ranks,
                                  result_scores=scores)
        out = [[] for _ in prepared]
        for q, d in zip(qidx[:size], docnos[:size], strict=True):
            out[q].append(int(d))
        return [np.asarray(x, np.int64) for x in out]


class Seismic:
    """A Seismic index of the same vectors (approximate search)."""

    def __init__(self, docs: sparse.csr_matrix, threads: int = 1) -> None:
        import seismic

        t = time.perf_counter()
        st = seismic.get_seismic_string()
        self.names = np.array(term_names(docs.shape[1]), dtype=st)
        data = docs.data.astype(np.float32)
        ds = seismic.SeismicDataset()
        for i in range(docs.shape[0]):
            a, b = docs.indptr[i], docs.indptr[i + 1]
            if b > a:
                ds.add_document(str(i), self.names[docs.indices[a:b]], data[a:b])
        with quiet():  # it prints its build steps
            self.index = seismic.SeismicIndex.build_from_dataset(ds, num_threads=threads)
        self.build_s = time.perf_counter() - t

    def search_one(self, q, k: int, query_cut: int = 20, heap_factor: float = 0.9):
        ts, cs = q
        res = self.index.search("q", self.names[ts], np.asarray(cs, np.float32), k,
                                query_cut, heap_factor)
        return np.array([int(r[2]) for r in res], np.int64)

    def search_batch(self, queries, k: int, query_cut: int = 20, heap_factor: float = 0.9,
                     threads: int = 1):
        ids = np.array([str(i) for i in range(len(queries))], dtype=self.names.dtype)
        comps = [self.names[ts] for ts, _ in queries]
        vals = [np.asarray(cs, np.float32) for _, cs in queries]
        res = self.index.batch_search(ids, comps, vals, k, query_cut, heap_factor,
                                      num_threads=threads)
        out = [np.zeros(0, np.int64)] * len(queries)
        for rr in res:  # each result names its query
            if rr:
                out[int(rr[0][0])] = np.array([int(r[2]) for r in rr], np.int64)
        return out
