"""Shared pieces of the numba kernels, and the plain numpy references the tests check them by.

Postings are CSR over terms: for term t, docs[indptr[t]:indptr[t+1]] (increasing doc numbers)
and impacts[...] (uint8). Queries are term ids with integer codes. Scores are exact integers
Σ code × impact, so every algorithm returns bit-identical results, ties broken by doc number
(lower first). The search kernel itself (block-max MaxScore) is in kernels_blockmax.py; here
are its heap of the k best, the galloping search it moves cursors with, and the exhaustive
references (`taat_scores_ref`, `topk_ref`) that `InvertedIndex.brute_force` and the tests use.
`allowed` is a uint8 mask over doc numbers (deleted documents and filters folded in); an empty
mask allows everything.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def taat_scores_ref(indptr, docs, impacts, q_terms, q_codes, n_docs):
    """Dense integer scores of every document, term at a time (the exhaustive reference)."""
    acc = np.zeros(n_docs, np.int64)
    for t, c in zip(q_terms, q_codes, strict=True):
        sl = slice(indptr[t], indptr[t + 1])
        np.add.at(acc, docs[sl], np.int64(c) * impacts[sl].astype(np.int64))
    return acc


@njit(cache=True, nogil=True)
def _worse(s1, d1, s2, d2):
    """Is (s1, d1) ranked below (s2, d2)? Higher score first, then lower doc number."""
    return s1 < s2 or (s1 == s2 and d1 > d2)


@njit(cache=True, nogil=True)
def _sift_down(hs, hd, n, i):
    while True:
        left = 2 * i + 1
        if left >= n:
            return
        m = left
        right = left + 1
        if right < n and _worse(hs[right], hd[right], hs[left], hd[left]):
            m = right
        if _worse(hs[m], hd[m], hs[i], hd[i]):
            hs[m], hs[i] = hs[i], hs[m]
            hd[m], hd[i] = hd[i], hd[m]
            i = m
        else:
            return


@njit(cache=True, nogil=True)
def _sift_up(hs, hd, i):
    while i > 0:
        parent = (i - 1) // 2
        if _worse(hs[i], hd[i], hs[parent], hd[parent]):
            hs[i], hs[parent] = hs[parent], hs[i]
            hd[i], hd[parent] = hd[parent], hd[i]
            i = parent
        else:
            return


@njit(cache=True, nogil=True)
def _sorted_heap(hs, hd, n):
    """The heap's n entries best first (score descending, then doc number ascending), by
    popping the worst to the back; hs and hd are used up."""
    out_d = np.empty(n, np.int64)
    out_s = np.empty(n, np.int64)
    m = n
    while m > 0:
        m -= 1
        out_s[m] = hs[0]
        out_d[m] = hd[0]
        hs[0] = hs[m]
        hd[0] = hd[m]
        _sift_down(hs, hd, m, 0)
    return out_d, out_s


def topk_ref(acc, k, allowed):
    """Reference: sort all positive allowed scores by (score desc, doc asc)."""
    d = np.nonzero(acc > 0)[0]
    if allowed.shape[0] > 0:
        d = d[allowed[d] != 0]
    order = np.lexsort((d, -acc[d]))[:k]
    return d[order].astype(np.int64), acc[d][order].astype(np.int64)


@njit(cache=True, nogil=True)
def _advance(docs, lo, hi, target):
    """First position in docs[lo:hi] with doc >= target (galloping, then binary search)."""
    if lo >= hi or docs[lo] >= target:
        return lo
    step = 1
    prev = lo
    cur = lo + 1
    while cur < hi and docs[cur] < target:
        prev = cur
        step *= 2
        cur = lo + step
    if cur > hi:
        cur = hi
    # docs[prev] < target; answer in (prev, cur]
    a, b = prev + 1, cur
    while a < b:
        m = (a + b) // 2
        if docs[m] < target:
            a = m + 1
        else:
            b = m
    return a


@njit(cache=True, nogil=True, inline="always")
def _min_head(docs, pos, stop, first, nq, none):
    """The smallest current doc of lists first..nq-1 (a list j is spent at stop[j]), or none."""
    d = none
    for j in range(first, nq):
        if pos[j] < stop[j] and docs[pos[j]] < d:
            d = docs[pos[j]]
    return d
