"""Each numba kernel against its numpy twin, and MaxScore against the exhaustive top-k."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from index import kernels


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


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31), n_docs=st.integers(1, 400), n_terms=st.integers(1, 40),
       density=st.floats(0.0, 0.6), max_impact=st.sampled_from([1, 3, 255]),
       nq=st.integers(0, 10), k=st.integers(1, 25), masked=st.booleans(),
       window=st.sampled_from([1, 2, 16, 64, kernels.WINDOW]))
def test_maxscore_equals_exhaustive(seed, n_docs, n_terms, density, max_impact, nq, k, masked,
                                    window):
    """Small windows push the kernel through both of its paths (term at a time in dense
    windows, document at a time in sparse ones) and across many window boundaries."""
    rng = np.random.default_rng(seed)
    indptr, docs, imp, mx = random_postings(rng, n_docs, n_terms, density, max_impact)
    qt = rng.choice(n_terms, size=min(nq, n_terms), replace=False).astype(np.int64)
    qc = rng.integers(1, 4096, len(qt)).astype(np.int64)
    allowed = (rng.random(n_docs) < 0.6).astype(np.uint8) if masked else np.zeros(0, np.uint8)
    acc = kernels.taat_scores(indptr, docs, imp, qt, qc, n_docs)
    np.testing.assert_array_equal(acc, kernels.taat_scores_ref(indptr, docs, imp, qt, qc, n_docs))
    want_d, want_s = kernels.topk_ref(acc, k, allowed)
    for got_d, got_s in (kernels.topk_from_scores(acc, k, allowed),
                         kernels.maxscore_topk(indptr, docs, imp, mx, qt, qc, k, allowed,
                                               window)):
        np.testing.assert_array_equal(got_d, want_d)
        np.testing.assert_array_equal(got_s, want_s)


def test_ties_are_broken_by_doc_number():
    # every doc has the same single posting: all scores tie
    n = 50
    indptr = np.array([0, n], np.int64)
    docs = np.arange(n, dtype=np.int32)
    imp = np.full(n, 7, np.uint8)
    d, s = kernels.maxscore_topk(indptr, docs, imp, np.array([7], np.uint8),
                                 np.array([0]), np.array([3]), 5, np.zeros(0, np.uint8))
    assert d.tolist() == [0, 1, 2, 3, 4]
    assert s.tolist() == [21] * 5


@pytest.mark.parametrize("target", [0, 1, 5, 6, 99, 1000])
def test_advance_finds_first_not_less(target):
    docs = np.array([1, 3, 5, 7, 9, 11, 50, 99, 100], np.int32)
    got = kernels._advance(docs, 0, len(docs), target)
    assert got == int(np.searchsorted(docs, target))


def test_batch_search_pads_and_matches_single():
    rng = np.random.default_rng(1)
    indptr, docs, imp, mx = random_postings(rng, 200, 30, 0.2, 255)
    queries = [rng.choice(30, 4, replace=False) for _ in range(5)] + [np.array([], np.int64)]
    q_ptr = np.cumsum([0] + [len(q) for q in queries]).astype(np.int64)
    q_terms = np.concatenate(queries).astype(np.int64)
    q_codes = np.full(len(q_terms), 100, np.int64)
    bd, bs = kernels.batch_maxscore_topk(indptr, docs, imp, mx, q_ptr, q_terms, q_codes, 10,
                                         np.zeros(0, np.uint8))
    for i, q in enumerate(queries):
        d, s = kernels.maxscore_topk(indptr, docs, imp, mx, q.astype(np.int64),
                                     np.full(len(q), 100, np.int64), 10, np.zeros(0, np.uint8))
        np.testing.assert_array_equal(bd[i, :len(d)], d)
        assert (bd[i, len(d):] == -1).all()
