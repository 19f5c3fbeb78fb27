"""numba kernels over flat posting arrays, each with a plain numpy twin (`*_ref`) for tests.

Postings are CSR over terms: for term t, docs[indptr[t]:indptr[t+1]] (increasing doc numbers)
and impacts[...] (uint8). Queries are term ids with integer codes. Scores are exact integers
Σ code × impact, so every algorithm here returns bit-identical results, ties broken by doc number
(lower first).

`maxscore_topk` is MaxScore (Turtle & Flood 1995) over windows of documents, as Lucene's
MaxScoreBulkScorer does: query terms are sorted by their upper bound (code × the term's largest
impact); the terms whose bounds together cannot beat the current k-th score are "non-essential":
a document is only considered when it appears in an essential list, and its non-essential
postings are looked up by galloping search only while they can still lift it above the
threshold. Dense windows add the essential lists term at a time into a small accumulator instead
of merging them document by document (4-5x faster on the heaviest queries). Exact, and far fewer
postings touched than term-at-a-time.
`allowed` is a uint8 mask over doc numbers (deleted documents and filters folded in); an empty
mask allows everything.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def taat_scores(indptr, docs, impacts, q_terms, q_codes, n_docs):
    """Dense integer scores of every document (term-at-a-time accumulator)."""
    acc = np.zeros(n_docs, np.int64)
    for j in range(q_terms.shape[0]):
        t = q_terms[j]
        c = np.int64(q_codes[j])
        for p in range(indptr[t], indptr[t + 1]):
            acc[docs[p]] += c * impacts[p]
    return acc


def taat_scores_ref(indptr, docs, impacts, q_terms, q_codes, n_docs):
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
    order = np.argsort(-hs[:n], kind="mergesort")  # stable: equal scores keep doc order
    out_d = hd[:n][order]
    out_s = hs[:n][order]
    # equal scores must be by increasing doc number
    i = 0
    while i < n:
        j = i
        while j + 1 < n and out_s[j + 1] == out_s[i]:
            j += 1
        if j > i:
            out_d[i:j + 1] = np.sort(out_d[i:j + 1])
        i = j + 1
    return out_d, out_s


@njit(cache=True, nogil=True)
def topk_from_scores(acc, k, allowed):
    """Top-k (doc, score) of a dense score array, score > 0, allowed docs only."""
    hs = np.empty(max(k, 1), np.int64)
    hd = np.empty(max(k, 1), np.int64)
    n = 0
    use_mask = allowed.shape[0] > 0
    for d in range(acc.shape[0]):
        s = acc[d]
        if s <= 0 or (use_mask and allowed[d] == 0):
            continue
        if n < k:
            hs[n] = s
            hd[n] = d
            _sift_up(hs, hd, n)
            n += 1
        elif _worse(hs[0], hd[0], s, d):
            hs[0] = s
            hd[0] = d
            _sift_down(hs, hd, n, 0)
    return _sorted_heap(hs, hd, n)


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


WINDOW = 8192  # documents per window: its accumulator (64 KB) stays in L2
TAAT_DENSITY = 8  # a window is scored term at a time when postings × (lists - 1) × this ≥ WINDOW


@njit(cache=True, nogil=True)
def maxscore_topk(indptr, docs, impacts, max_impact, q_terms, q_codes, k, allowed,
                  window=WINDOW):
    """Exact top-k by windowed MaxScore; returns (doc numbers, integer scores) best first.

    Query terms are sorted by upper bound (code × the term's largest impact); lists 0..ne-1,
    whose bounds together cannot beat the k-th score theta, are non-essential. The documents
    are walked in windows of `window` numbers starting at the smallest essential doc. In a
    window where the essential postings are dense (and more than one list is essential) they
    are added term at a time into a small accumulator, which is then scanned in doc order
    (no merge of several lists per doc); in a sparse window, or with a single essential list,
    the window's postings are merged document at a time. Either way a doc is a candidate only
    if its essential score plus every non-essential bound can beat theta (one comparison), and
    each candidate then looks up its non-essential postings (galloping search) only while they
    can still lift it above theta. The essential set shrinks as theta rises, between windows.
    """
    nq = q_terms.shape[0]
    hs = np.empty(max(k, 1), np.int64)
    hd = np.empty(max(k, 1), np.int64)
    if nq == 0 or k <= 0:
        return hd[:0], hs[:0]
    ub = np.empty(nq, np.int64)
    for j in range(nq):
        ub[j] = np.int64(q_codes[j]) * max_impact[q_terms[j]]
    order = np.argsort(ub, kind="mergesort")
    codes = np.empty(nq, np.int64)
    pos = np.empty(nq, np.int64)
    end = np.empty(nq, np.int64)
    wend = np.empty(nq, np.int64)
    cum = np.empty(nq + 1, np.int64)  # cum[j]: the most lists 0..j-1 can add to a doc
    cum[0] = 0
    for j in range(nq):
        t = q_terms[order[j]]
        codes[j] = q_codes[order[j]]
        cum[j + 1] = cum[j] + ub[order[j]]
        pos[j] = indptr[t]
        end[j] = indptr[t + 1]
    acc = np.zeros(window, np.int64)
    cand_d = np.empty(window, np.int64)
    cand_s = np.empty(window, np.int64)
    use_mask = allowed.shape[0] > 0
    n = 0
    theta = np.int64(0)  # once the heap is full a doc must score > theta to enter
    ne = 0  # lists 0..ne-1 are non-essential
    big = np.iinfo(np.int64).max
    while True:
        base = _min_head(docs, pos, end, ne, nq, big)
        if base == big:
            break
        lim = base + window
        count = 0
        top = base
        for j in range(ne, nq):
            e = _advance(docs, pos[j], end[j], lim)
            wend[j] = e
            count += e - pos[j]
            if e > pos[j] and docs[e - 1] >= top:
                top = docs[e - 1] + 1
        # candidates: docs whose essential score s can beat theta with every non-essential
        # bound (s > lo), in increasing doc order
        lo = theta - cum[ne] if n == k else np.int64(0)
        nc = 0
        if ne == nq - 1 or count * (nq - ne - 1) * TAAT_DENSITY < window:
            while True:  # document at a time over this window's essential postings
                d = _min_head(docs, pos, wend, ne, nq, big)
                if d == big:
                    break
                s = np.int64(0)
                for j in range(ne, nq):
                    if pos[j] < wend[j] and docs[pos[j]] == d:
                        s += codes[j] * impacts[pos[j]]
                        pos[j] += 1
                if s > lo and (not use_mask or allowed[d] != 0):
                    cand_d[nc] = d
                    cand_s[nc] = s
                    nc += 1
        else:
            for j in range(ne, nq):  # term at a time into the window's accumulator
                c = codes[j]
                for p in range(pos[j], wend[j]):
                    acc[docs[p] - base] += c * impacts[p]
                pos[j] = wend[j]
            for o in range(top - base):
                s = acc[o]
                acc[o] = 0
                if s > lo and (not use_mask or allowed[base + o] != 0):
                    cand_d[nc] = base + o
                    cand_s[nc] = s
                    nc += 1
        for i in range(nc):
            d = cand_d[i]
            s = cand_s[i]
            full = n == k
            for j in range(ne - 1, -1, -1):
                if full and s + cum[j + 1] <= theta:
                    break
                p = _advance(docs, pos[j], end[j], d)
                pos[j] = p
                if p < end[j] and docs[p] == d:
                    s += codes[j] * impacts[p]
            if n < k:
                hs[n] = s
                hd[n] = d
                _sift_up(hs, hd, n)
                n += 1
                if n == k:
                    theta = hs[0]
            elif s > theta:  # an equal score loses: its doc number is above the heap's
                hs[0] = s
                hd[0] = d
                _sift_down(hs, hd, n, 0)
                theta = hs[0]
        if n == k:
            while ne < nq and cum[ne + 1] <= theta:
                ne += 1
    return _sorted_heap(hs, hd, n)


@njit(cache=True, nogil=True)
def batch_maxscore_topk(indptr, docs, impacts, max_impact, q_ptr, q_terms, q_codes, k, allowed):
    """Many queries (flat terms with a pointer array, as bm25s does); results padded with -1."""
    nq = q_ptr.shape[0] - 1
    out_d = np.full((nq, k), -1, np.int64)
    out_s = np.zeros((nq, k), np.int64)
    for i in range(nq):
        d, s = maxscore_topk(indptr, docs, impacts, max_impact, q_terms[q_ptr[i]:q_ptr[i + 1]],
                             q_codes[q_ptr[i]:q_ptr[i + 1]], k, allowed)
        out_d[i, : d.shape[0]] = d
        out_s[i, : s.shape[0]] = s
    return out_d, out_s

