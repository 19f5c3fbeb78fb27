"""Block-max MaxScore over windows of documents: the index's exact top-k kernel.

Postings as in kernels.py, plus block-max metadata: each term's list is cut into blocks of
BLOCK postings (the last one shorter), and for each block the doc number of its last posting
(`blk_last`, int32) and its largest impact (`blk_max`, uint8); a term's blocks are
bptr[t]..bptr[t+1]-1 and block i of term t starts at posting indptr[t] + i × BLOCK, so a block's
first doc is read from the postings themselves. About 5 bytes per 64 postings (0.1 B/posting).

The walk is MaxScore (Turtle & Flood 1995) over windows of documents, as Lucene's
MaxScoreBulkScorer does: theta is the score a doc must beat to enter the top k; a set of
"non-essential" lists whose upper bounds (code × the term's largest impact) sum to at most
theta cannot lift a doc absent from every other list above it, so documents are taken only from
the essential lists, and each candidate looks up the non-essential ones only while they can
still lift it above theta. Within a window the essential lists are added term at a time into
an accumulator (a two-level bitset marks the touched slots, so the scan in doc order costs
what was touched); a single essential list is read directly. Windows start at 8,192 documents
and double up to SPAN_MAX; the scratch arrays are reused across queries (`workspace`). On top
of that:
* theta starts above 0: if k docs of one list have an impact >= v, k docs score at least
  code × v (counted on the short lists, `_seed`), so the first windows already prune;
* the partition is chosen by cost, not by bound alone (`_partition`): MaxScore's smallest
  bounds first, or the lists with the most postings per unit of bound (a frequent word with a
  middling weight), whichever leaves fewer essential postings. A non-essential list that is
  short next to the lookups it would take (by the lookups per essential posting seen so far)
  is *read* instead: its postings in the window are added to the docs the essential lists
  touched, since a read posting costs about 2 ns and a lookup into a long list cache misses.
  On DeepBoW vectors, whose impacts sit near 255 so that bounds hardly differ, this walks the
  rare words and reads or looks up the frequent ones. It is redone between windows whenever
  theta has risen, and once after the first window (when the lookup rate is known);
* a candidate is checked against each non-essential list's block maximum before the postings
  are touched (block-max MaxScore): the block cursor moves over the small metadata arrays, and
  only a candidate that can still beat theta with that block's bound gallops inside the block.
Exact: every skipped doc provably scores at most theta, and docs are taken in increasing doc
order, so an equal score loses to the heap's (lower-numbered) docs.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros  # an LLVM cttz intrinsic

from index.kernels import _advance, _min_head, _sift_down, _sift_up, _sorted_heap

BLOCK = 64  # postings per block of the block-max metadata
WINDOW = 8192  # documents in the first window
@njit(cache=True, nogil=True)
def block_maxima(indptr, docs, impacts):
    """(bptr int64, blk_last int32, blk_max uint8) of CSR-over-terms postings."""
    n_terms = indptr.shape[0] - 1
    bptr = np.zeros(n_terms + 1, np.int64)
    for t in range(n_terms):
        bptr[t + 1] = bptr[t] + (indptr[t + 1] - indptr[t] + BLOCK - 1) // BLOCK
    blk_last = np.empty(bptr[n_terms], np.int32)
    blk_max = np.zeros(bptr[n_terms], np.uint8)
    for t in range(n_terms):
        g = bptr[t]
        for a in range(indptr[t], indptr[t + 1], BLOCK):
            b = min(a + BLOCK, indptr[t + 1])
            m = impacts[a]
            for p in range(a + 1, b):
                if impacts[p] > m:
                    m = impacts[p]
            blk_max[g] = m
            blk_last[g] = docs[b - 1]
            g += 1
    return bptr, blk_last, blk_max


def block_maxima_ref(indptr, docs, impacts):
    """numpy twin of block_maxima."""
    lens = np.diff(np.asarray(indptr, np.int64))
    nb = (lens + BLOCK - 1) // BLOCK
    bptr = np.concatenate([[0], np.cumsum(nb)]).astype(np.int64)
    starts = np.concatenate([np.arange(indptr[t], indptr[t + 1], BLOCK)
                             for t in range(len(lens))] + [np.zeros(0, np.int64)])
    starts = starts.astype(np.int64)
    ends = np.minimum(starts + BLOCK, np.repeat(np.asarray(indptr[1:], np.int64), nb))
    blk_max = (np.maximum.reduceat(impacts, starts) if starts.size else np.zeros(0, np.uint8))
    return bptr, np.asarray(docs)[ends - 1].astype(np.int32), blk_max.astype(np.uint8)


@njit(cache=True, nogil=True)
def _fill(order, ub, pos, end, theta, in_n):
    """Lists join the non-essential set in `order` while their bounds fit under theta;
    returns the postings left to the essential ones."""
    total = np.int64(0)
    cost = np.int64(0)
    for i in range(order.shape[0]):
        j = order[i]
        in_n[j] = total + ub[j] <= theta
        if in_n[j]:
            total += ub[j]
        else:
            cost += end[j] - pos[j]
    return cost


@njit(cache=True, nogil=True)
def _sort_by(order, key):
    """order = 0..n-1 sorted by (key, index): a Shell sort for a query's few lists (numba's
    own argsort takes half a minute to compile)."""
    n = order.shape[0]
    for i in range(n):
        order[i] = i
    gap = 1
    while gap * 3 + 1 < n:
        gap = gap * 3 + 1
    while gap > 0:
        for i in range(gap, n):
            v = order[i]
            j = i
            while j >= gap and (key[order[j - gap]] > key[v] or
                                (key[order[j - gap]] == key[v] and order[j - gap] > v)):
                order[j] = order[j - gap]
                j -= gap
            order[j] = v
        gap //= 3


@njit(cache=True, nogil=True)
def _partition(ub, pos, end, theta, ordr, cum, work, key, flags, rate):
    """Choose the non-essential lists (bounds summing to <= theta) leaving the fewest essential
    postings: the smallest bounds first (MaxScore), or the most postings per bound first.
    Non-essential lists with few postings next to the lookups they would take (the essential
    postings times `rate`, the lookups per essential posting so far) are read (their postings
    added to docs the essential lists found) rather than looked up per candidate. Fills ordr
    (the looked-up lists by increasing bound, the read ones, then the essential ones) and cum
    (cum[i]: the bounds of ordr[0..i-1] summed); returns (looked-up count, non-essential
    count).
    work (3 × nq int64), key (nq float64) and flags (2 × nq bool) are scratch."""
    nq = ub.shape[0]
    by_ub, by_key, by_len = work[0], work[1], work[2]
    in_n, alt = flags[0], flags[1]
    _sort_by(by_ub, ub)
    for j in range(nq):
        key[j] = -(end[j] - pos[j]) / max(ub[j], 1)
    _sort_by(by_key, key)
    cost = _fill(by_ub, ub, pos, end, theta, in_n)
    alt_cost = _fill(by_key, ub, pos, end, theta, alt)
    if alt_cost < cost:
        for j in range(nq):
            in_n[j] = alt[j]
        cost = alt_cost
    # a short non-essential list costs more probed than walked: most essential docs would
    # look it up, while walking it costs its own few postings
    for j in range(nq):
        key[j] = end[j] - pos[j]
    _sort_by(by_len, key)
    for i in range(nq):
        j = by_len[i]
        if in_n[j] and ub[j] > 0 and (end[j] - pos[j]) <= WALK_SHORT * cost:
            in_n[j] = False
            cost += end[j] - pos[j]
    walk = alt  # non-essential lists short enough to read rather than look up
    npr = 0
    for j in range(nq):
        walk[j] = False
        if in_n[j]:
            if (end[j] - pos[j]) <= WALK_NON_ESSENTIAL * rate * cost:
                walk[j] = True
            else:
                npr += 1
    a = 0
    b = npr
    m = nq - 1
    for i in range(nq):  # by increasing bound: the looked-up ones keep that order
        j = by_ub[i]
        if not in_n[j]:
            ordr[m] = j
            m -= 1
        elif walk[j]:
            ordr[b] = j
            b += 1
        else:
            ordr[a] = j
            a += 1
    cum[0] = 0
    for i in range(npr):
        cum[i + 1] = cum[i] + ub[ordr[i]]
    return npr, b


WALK_SHORT = 0.25  # a non-essential list this short next to the essential postings: essential
WALK_NON_ESSENTIAL = 4.0  # read a non-essential list up to this × its expected lookups long
SPAN_MAX = 1 << 16  # the longest window, in documents (the workspace's size)
SEED_MAX = 16384  # lists up to this long are counted for the starting threshold


@njit(cache=True, nogil=True)
def _seed(docs, impacts, codes, ub, pos, end, k, allowed):
    """A starting threshold: if k allowed docs of one list have impact >= v, k docs score at
    least code × v, so a doc scoring less cannot be in the top k. Counted (a histogram of
    the 8-bit impacts) over lists of at most SEED_MAX postings, largest bound first, skipping
    a list whose bound cannot raise it and stopping a count once k postings hold the list's
    largest impact; returns that bound - 1 (a doc must score more than it)."""
    hist = np.zeros(256, np.int64)
    theta = np.int64(0)
    use_mask = allowed.shape[0] > 0
    order = np.empty(ub.shape[0], np.int64)
    _sort_by(order, -ub)
    for i in range(codes.shape[0]):
        j = order[i]
        if ub[j] - 1 <= theta:
            break
        if end[j] - pos[j] < k or end[j] - pos[j] > SEED_MAX:
            continue
        top = ub[j] // codes[j]
        hist[:] = 0
        for p in range(pos[j], end[j]):
            if not use_mask or allowed[docs[p]] != 0:
                hist[impacts[p]] += 1
                if impacts[p] == top and hist[top] >= k:
                    break
        seen = 0
        for v in range(255, 0, -1):
            seen += hist[v]
            if seen >= k:
                theta = max(theta, codes[j] * v - 1)
                break
    return theta


@njit(cache=True, nogil=True)
def _permute(ordr, a, tmp):
    for i in range(ordr.shape[0]):
        tmp[i] = a[ordr[i]]
    a[:] = tmp


def workspace(size: int = SPAN_MAX) -> tuple:
    """The scratch arrays of blockmax_topk for windows of up to `size` documents: an
    accumulator and a bit per slot (zero on entry, left zero), and candidate arrays. One per
    thread, reused across queries, so that no query pays for clearing half a megabyte."""
    return (np.zeros(size, np.int64), np.zeros((size + 63) >> 6, np.uint64),
            np.zeros((size + 4095) >> 12, np.uint64), np.empty(size, np.int64),
            np.empty(size, np.int64))


@njit(cache=True, nogil=True)
def blockmax_topk(indptr, docs, impacts, max_impact, bptr, blk_last, blk_max, q_terms, q_codes,
                  k, allowed, acc, touched, summary, cand_d, cand_s, window=WINDOW):
    """Exact top-k by block-max MaxScore over windows; (doc numbers, integer scores), best
    first, ties by doc number. Unknown terms and codes <= 0 match nothing. The first window
    spans `window` documents, each next one twice as many up to the workspace's size (see
    `workspace`). Lists 0..ne-1 are non-essential (bounds by increasing size, cum[i] the sum
    of the first i), ne..nq-1 essential; the per-list arrays are kept in that order."""
    hs = np.empty(max(k, 1), np.int64)
    hd = np.empty(max(k, 1), np.int64)
    n_terms = indptr.shape[0] - 1
    nq = 0
    for j in range(q_terms.shape[0]):
        if 0 <= q_terms[j] < n_terms and q_codes[j] > 0:
            nq += 1
    if nq == 0 or k <= 0:
        return hd[:0], hs[:0]
    codes = np.empty(nq, np.int64)
    ub = np.empty(nq, np.int64)
    pos = np.empty(nq, np.int64)
    end = np.empty(nq, np.int64)
    pst = np.empty(nq, np.int64)  # the list's first posting
    bcur = np.empty(nq, np.int64)  # its block cursor (non-essential lists)
    bfirst = np.empty(nq, np.int64)
    bend = np.empty(nq, np.int64)
    j = 0
    for i in range(q_terms.shape[0]):
        t = q_terms[i]
        if not (0 <= t < n_terms and q_codes[i] > 0):
            continue
        codes[j] = q_codes[i]
        ub[j] = codes[j] * max_impact[t]
        pos[j] = indptr[t]
        pst[j] = indptr[t]
        end[j] = indptr[t + 1]
        bcur[j] = bptr[t]
        bfirst[j] = bptr[t]
        bend[j] = bptr[t + 1]
        j += 1
    wend = np.empty(nq, np.int64)
    ordr = np.empty(nq, np.int64)
    cum = np.zeros(nq + 1, np.int64)
    work = np.empty((3, nq), np.int64)  # _partition's scratch
    key = np.empty(nq, np.float64)
    flags = np.empty((2, nq), np.bool_)
    one = np.uint64(1)
    use_mask = allowed.shape[0] > 0
    n = 0
    # a doc must score > theta to be in the top k: k docs of one list alone already reach
    # theta + 1 (the lists short enough to count)
    theta = _seed(docs, impacts, codes, ub, pos, end, k, allowed)
    parted = np.int64(-1)  # theta at the last partition
    npr = 0  # lists 0..npr-1 are looked up per candidate, npr..ne-1 read, ne..nq-1 essential
    n_read = 0  # essential postings read so far, and the lookups their candidates took
    n_looks = 0
    ne = 0
    big = np.iinfo(np.int64).max
    lim = 0
    span = min(window, acc.shape[0])
    first = True
    while True:
        if theta > parted:
            parted = theta
            rate = n_looks / (n_read + 1.0)
            npr, ne = _partition(ub, pos, end, theta, ordr, cum, work, key, flags, rate)
            for a in (codes, ub, pos, end, pst, bcur, bfirst, bend):
                _permute(ordr, a, wend)
            for j in range(ne, nq):  # every doc below lim is decided
                pos[j] = _advance(docs, pos[j], end[j], lim)
        base = _min_head(docs, pos, end, ne, nq, big)
        if base == big:
            break
        lim = base + span
        for j in range(ne, nq):
            wend[j] = _advance(docs, pos[j], end[j], lim)
        lo = theta - cum[npr]
        nc = 0
        for j in range(ne, nq):
            n_read += wend[j] - pos[j]
        if ne == nq - 1 and npr == ne:  # one list to read: each posting is a doc
            c = codes[ne]
            for p in range(pos[ne], wend[ne]):
                s = c * impacts[p]
                if s > lo and (not use_mask or allowed[docs[p]] != 0):
                    cand_d[nc] = docs[p]
                    cand_s[nc] = s
                    nc += 1
            pos[ne] = wend[ne]
        else:
            for j in range(ne, nq):  # term at a time into the window's accumulator
                c = codes[j]
                for p in range(pos[j], wend[j]):
                    o = docs[p] - base
                    acc[o] += c * impacts[p]
                    touched[o >> 6] |= one << np.uint64(o & 63)
                    summary[o >> 12] |= one << np.uint64((o >> 6) & 63)
                pos[j] = wend[j]
            for j in range(npr, ne):  # read lists: only docs an essential list has
                c = codes[j]
                p = _advance(docs, pos[j], end[j], base)
                while p < end[j] and docs[p] < lim:
                    o = docs[p] - base
                    if acc[o] != 0:
                        acc[o] += c * impacts[p]
                    p += 1
                pos[j] = p
            for si in range((span + 4095) >> 12):  # the touched slots, in doc order
                sw = summary[si]
                summary[si] = 0
                while sw != 0:
                    wi = si * 64 + np.int64(trailing_zeros(sw))
                    sw &= sw - one
                    w = touched[wi]
                    touched[wi] = 0
                    while w != 0:
                        o = wi * 64 + np.int64(trailing_zeros(w))
                        w &= w - one
                        s = acc[o]
                        acc[o] = 0
                        if s > lo and (not use_mask or allowed[base + o] != 0):
                            cand_d[nc] = base + o
                            cand_s[nc] = s
                            nc += 1
        if first:  # partition again with the first window's lookup rate
            parted = -1
            first = False
        span = min(span * 2, acc.shape[0])
        for i in range(nc):
            d = cand_d[i]
            s = cand_s[i]
            j = npr - 1  # the looked-up lists, largest bound first
            while j >= 0:
                if s + cum[j + 1] <= theta:
                    break
                g = bcur[j]
                if g < bend[j] and blk_last[g] < d:  # the first block ending at or after d
                    g = _advance(blk_last, g + 1, bend[j], d)
                bcur[j] = g
                if g < bend[j]:
                    if s + codes[j] * blk_max[g] + cum[j] <= theta:
                        break
                    bs = pst[j] + (g - bfirst[j]) * BLOCK
                    if docs[bs] <= d:
                        n_looks += 1
                        p = _advance(docs, max(pos[j], bs), min(bs + BLOCK, end[j]), d)
                        pos[j] = p
                        if docs[p] == d:
                            s += codes[j] * impacts[p]
                    elif pos[j] < bs:
                        pos[j] = bs
                j -= 1
            if j >= 0 or s <= theta:  # an equal score loses: its doc number is higher
                continue
            if n < k:
                hs[n] = s
                hd[n] = d
                _sift_up(hs, hd, n)
                n += 1
                if n == k:
                    theta = hs[0]
            else:
                hs[0] = s
                hd[0] = d
                _sift_down(hs, hd, n, 0)
                theta = hs[0]
    return _sorted_heap(hs, hd, n)


@njit(cache=True, nogil=True)
def batch_topk(indptr, docs, impacts, max_impact, bptr, blk_last, blk_max, q_ptr, q_terms,
               q_codes, k, allowed, acc, touched, summary, cand_d, cand_s):
    """blockmax_topk for many queries in one call (flat terms and codes with a pointer array,
    as bm25s passes them), so a thread runs a whole chunk without the GIL; rows are padded
    with doc -1 and score 0."""
    nq = q_ptr.shape[0] - 1
    kk = max(k, 0)
    out_d = np.full((nq, kk), -1, np.int64)
    out_s = np.zeros((nq, kk), np.int64)
    for i in range(nq):
        a, b = q_ptr[i], q_ptr[i + 1]
        d, s = blockmax_topk(indptr, docs, impacts, max_impact, bptr, blk_last, blk_max,
                             q_terms[a:b], q_codes[a:b], k, allowed, acc, touched, summary,
                             cand_d, cand_s)
        out_d[i, : d.shape[0]] = d
        out_s[i, : s.shape[0]] = s
    return out_d, out_s
