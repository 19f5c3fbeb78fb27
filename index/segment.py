"""A segment of the inverted index: CSR-over-terms postings of a run of documents, with the
block-max metadata the search kernel skips by (index/kernels_blockmax.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from index import kernels_blockmax


@dataclass
class Segment:
    """Postings of documents doc_base .. doc_base + n_docs - 1 (local numbers in `docs`)."""

    indptr: np.ndarray  # int64, n_terms + 1
    docs: np.ndarray  # int32, local doc numbers, increasing within a term
    impacts: np.ndarray  # uint8
    max_impact: np.ndarray  # uint8, n_terms
    n_docs: int
    doc_base: int
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # block-max metadata (kernels_blockmax): computed from the postings unless given
    bptr: np.ndarray | None = None  # int64, n_terms + 1
    blk_last: np.ndarray | None = None  # int32, the last doc of each block
    blk_max: np.ndarray | None = None  # uint8, the largest impact of each block

    def __post_init__(self) -> None:
        if self.bptr is None or self.blk_last is None or self.blk_max is None:
            self.bptr, self.blk_last, self.blk_max = kernels_blockmax.block_maxima(
                self.indptr, self.docs, self.impacts)

    def top_k(self, t: np.ndarray, c: np.ndarray, k: int, mask: np.ndarray, ws: tuple):
        """This segment's exact top-k (local doc numbers, integer scores); mask is over the
        segment's docs or empty."""
        return kernels_blockmax.blockmax_topk(self.indptr, self.docs, self.impacts,
                                              self.max_impact, self.bptr, self.blk_last,
                                              self.blk_max, t, c, k, mask, *ws)

    def batch_top_k(self, q_ptr, t, c, k: int, mask: np.ndarray, ws: tuple):
        """top_k of many queries (flat terms/codes, q_ptr): (n, k) arrays padded with -1."""
        return kernels_blockmax.batch_topk(self.indptr, self.docs, self.impacts,
                                           self.max_impact, self.bptr, self.blk_last,
                                           self.blk_max, q_ptr, t, c, k, mask, *ws)

    def file(self, name: str) -> str:
        return f"seg-{self.uid}.{name}.npy"

    @classmethod
    def from_codes(cls, codes: sparse.csr_matrix, doc_base: int) -> Segment:
        csc = sparse.csc_matrix(codes)
        csc.sort_indices()
        indptr = csc.indptr.astype(np.int64)
        impacts = csc.data.astype(np.uint8)
        max_impact = np.zeros(codes.shape[1], np.uint8)
        nonempty = np.diff(indptr) > 0
        if impacts.size:
            max_impact[nonempty] = np.maximum.reduceat(impacts, indptr[:-1][nonempty])
        return cls(indptr, csc.indices.astype(np.int32), impacts, max_impact, codes.shape[0],
                   doc_base)

    def to_codes(self) -> sparse.csr_matrix:
        n_terms = len(self.indptr) - 1
        csc = sparse.csc_matrix((np.asarray(self.impacts), np.asarray(self.docs),
                                 np.asarray(self.indptr)), shape=(self.n_docs, n_terms))
        return csc.tocsr()

    @property
    def n_postings(self) -> int:
        return int(self.indptr[-1])
