"""Each numba kernel against its numpy twin, and block-max MaxScore against the exhaustive top-k."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from index import kernels
from index import kernels_blockmax as kb


def random_postings(rng, n_docs, n_terms, density, max_impact):
    m = sparse.random(n_docs, n_terms, density=density, format="csc",
                      random_state=int(rng.integers(2**31)))
    m.data = rng.integers(1, max_impact + 1, len(m.data)).astype(np.uint8)
    m.sort_indices()
    indptr = m.indptr.astype(np.int64)
    imp = m.data.astype(np.uint8)
    mx = np.array([imp[indptr[t]:indptr[t + 1]].max() if indptr[t + 1] > indptr[t] else 0
                   for t in range(n_terms)], np.uint8)
    return indptr, m.indices.astype(np.int32), imp, mx


def search(indptr, docs, imp, mx, qt, qc, k, allowed, window=kb.WINDOW, span=kb.SPAN_MAX):
    """blockmax_topk with fresh block maxima and workspace; checks the workspace is left clean."""
    ws = kb.workspace(span)
    got = kb.blockmax_topk(indptr, docs, imp, mx, *kb.block_maxima(indptr, docs, imp), qt, qc,
                           k, allowed, *ws, window)
    assert not ws[0].any() and not ws[1].any()
    return got


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**31), n_docs=st.integers(1, 400), n_terms=st.integers(1, 40),
       density=st.floats(0.0, 0.6), max_impact=st.sampled_from([1, 3, 255]),
       nq=st.integers(0, 10), k=st.integers(1, 25), masked=st.booleans(),
       window=st.sampled_from([1, 2, 16, 64, kb.WINDOW]), grow=st.sampled_from([1, 4, 1024]))
def test_blockmax_equals_exhaustive(seed, n_docs, n_terms, density, max_impact, nq, k, masked,
                                    window, grow):
    """Small windows (and workspaces) push the kernel across many window boundaries and
    partitions; impacts of 1 or 3 make ties everywhere; k often exceeds the matches."""
    rng = np.random.default_rng(seed)
    indptr, docs, imp, mx = random_postings(rng, n_docs, n_terms, density, max_impact)
    qt = rng.choice(n_terms, size=min(nq, n_terms), replace=False).astype(np.int64)
    qc = rng.integers(1, 4096, len(qt)).astype(np.int64)
    allowed = (rng.random(n_docs) < 0.6).astype(np.uint8) if masked else np.zeros(0, np.uint8)
    acc = kernels.taat_scores_ref(indptr, docs, imp, qt, qc, n_docs)
    want_d, want_s = kernels.topk_ref(acc, k, allowed)
    got_d, got_s = search(indptr, docs, imp, mx, qt, qc, k, allowed, window, window * grow)
    np.testing.assert_array_equal(got_d, want_d)
    np.testing.assert_array_equal(got_s, want_s)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), skew=st.sampled_from(["flat", "one-hot", "rare"]),
       k=st.sampled_from([1, 10, 100]), masked=st.booleans())
def test_blockmax_on_long_lists(seed, skew, k, masked):
    """Lists of hundreds of blocks, where the block maxima, the seeded threshold and the
    cost-based partition actually skip: frequent words with small codes and rare ones with
    large codes, impacts flat (DeepBoW-like), mostly small with rare peaks, or near-binary."""
    rng = np.random.default_rng(seed)
    n_docs, n_terms = 20_000, 12
    dens = np.geomspace(0.5, 0.0005, n_terms)
    m = sparse.csc_matrix((rng.random((n_docs, n_terms)) < dens).astype(np.uint8))
    m.sort_indices()
    size = m.nnz
    if skew == "flat":
        m.data = rng.integers(200, 256, size).astype(np.uint8)
    elif skew == "one-hot":
        m.data = np.where(rng.random(size) < 0.01, 255, rng.integers(1, 40, size)).astype(np.uint8)
    else:
        m.data = rng.integers(1, 3, size).astype(np.uint8)
    indptr, docs, imp = m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data
    mx = np.array([imp[indptr[t]:indptr[t + 1]].max(initial=0) for t in range(n_terms)],
                  np.uint8)
    qt = np.arange(n_terms, dtype=np.int64)
    qc = np.clip(np.rint(np.linspace(30, 4000, n_terms) * rng.uniform(0.5, 1, n_terms)), 1,
                 4095).astype(np.int64)
    allowed = (rng.random(n_docs) < 0.7).astype(np.uint8) if masked else np.zeros(0, np.uint8)
    acc = kernels.taat_scores_ref(indptr, docs, imp, qt, qc, n_docs)
    want_d, want_s = kernels.topk_ref(acc, k, allowed)
    got_d, got_s = search(indptr, docs, imp, mx, qt, qc, k, allowed)
    np.testing.assert_array_equal(got_d, want_d)
    np.testing.assert_array_equal(got_s, want_s)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n_docs=st.integers(1, 3000), n_terms=st.integers(1, 30),
       density=st.floats(0.0, 0.5), max_impact=st.sampled_from([1, 255]))
def test_block_maxima_equal_their_twin(seed, n_docs, n_terms, density, max_impact):
    rng = np.random.default_rng(seed)
    indptr, docs, imp, _ = random_postings(rng, n_docs, n_terms, density, max_impact)
    for got, want in zip(kb.block_maxima(indptr, docs, imp),
                         kb.block_maxima_ref(indptr, docs, imp), strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype


def test_ties_are_broken_by_doc_number():
    # every doc has the same single posting: all scores tie
    n = 50
    indptr = np.array([0, n], np.int64)
    docs = np.arange(n, dtype=np.int32)
    imp = np.full(n, 7, np.uint8)
    d, s = search(indptr, docs, imp, np.array([7], np.uint8), np.array([0]), np.array([3]), 5,
                  np.zeros(0, np.uint8))
    assert d.tolist() == [0, 1, 2, 3, 4]
    assert s.tolist() == [21] * 5


def test_unknown_terms_and_zero_codes_match_nothing():
    rng = np.random.default_rng(4)
    indptr, docs, imp, mx = random_postings(rng, 100, 5, 0.3, 255)
    none = np.zeros(0, np.uint8)
    want = search(indptr, docs, imp, mx, np.array([1, 2]), np.array([9, 4]), 10, none)
    got = search(indptr, docs, imp, mx, np.array([1, 7, -1, 2, 3]), np.array([9, 5, 5, 4, 0]),
                 10, none)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("target", [0, 1, 5, 6, 99, 1000])
def test_advance_finds_first_not_less(target):
    docs = np.array([1, 3, 5, 7, 9, 11, 50, 99, 100], np.int32)
    got = kernels._advance(docs, 0, len(docs), target)
    assert got == int(np.searchsorted(docs, target))


def test_batch_topk_pads_and_matches_single():
    rng = np.random.default_rng(1)
    indptr, docs, imp, mx = random_postings(rng, 200, 30, 0.2, 255)
    blocks = kb.block_maxima(indptr, docs, imp)
    queries = [rng.choice(30, 4, replace=False) for _ in range(5)] + [np.array([], np.int64)]
    q_ptr = np.cumsum([0] + [len(q) for q in queries]).astype(np.int64)
    q_terms = np.concatenate(queries).astype(np.int64)
    q_codes = np.full(len(q_terms), 100, np.int64)
    none = np.zeros(0, np.uint8)
    bd, bs = kb.batch_topk(indptr, docs, imp, mx, *blocks, q_ptr, q_terms, q_codes, 10, none,
                           *kb.workspace())
    for i, q in enumerate(queries):
        d, s = search(indptr, docs, imp, mx, q.astype(np.int64), np.full(len(q), 100, np.int64),
                      10, none)
        np.testing.assert_array_equal(bd[i, :len(d)], d)
        np.testing.assert_array_equal(bs[i, :len(s)], s)
        assert (bd[i, len(d):] == -1).all()
