"""InvertedIndex: exactness, live changes against a brute-force model, filters, disk format."""

import json
import os
import shutil

import numpy as np
import pytest
from pyroaring import BitMap
from scipy import sparse

from index.inverted import IndexFileError, InvertedIndex


def random_docs(rng, n_docs, n_terms=60, density=0.1):
    m = sparse.random(n_docs, n_terms, density=density, format="csr",
                      random_state=int(rng.integers(2**31)))
    m.data = rng.integers(1, 256, len(m.data)).astype(np.uint8)
    return m


class BruteForce:
    """The model the index must agree with: a list of code rows and a deleted set."""

    def __init__(self, n_terms):
        self.rows = sparse.csr_matrix((0, n_terms), dtype=np.int64)
        self.deleted = set()

    def add(self, m):
        self.rows = sparse.vstack([self.rows, m.astype(np.int64)], format="csr")

    def top(self, t, c, k, allowed=None):
        q = np.zeros(self.rows.shape[1], np.int64)
        q[t] = c
        s = self.rows @ q
        ok = [d for d in range(len(s)) if s[d] > 0 and d not in self.deleted
              and (allowed is None or d in allowed)]
        ok.sort(key=lambda d: (-s[d], d))
        return [d for d in ok[:k]], [int(s[d]) for d in ok[:k]]


def check(index, model, rng, allowed=None, n_queries=20):
    for _ in range(n_queries):
        t = rng.choice(index.n_terms, int(rng.integers(1, 6)), replace=False)
        c = rng.integers(1, 4096, len(t))
        k = int(rng.integers(1, 15))
        d, s = index.search_codes(t, c, k, allowed)
        want_d, want_s = model.top(t, c, k, allowed)
        assert d.tolist() == want_d
        assert s.tolist() == want_s


def test_search_is_exact_and_scaled():
    rng = np.random.default_rng(0)
    w = sparse.random(300, 50, density=0.1, format="csr", random_state=3)
    before = w.copy()
    index = InvertedIndex.from_csr(w)
    assert (w != before).nnz == 0  # the caller's matrix is left alone
    t = np.array([1, 5, 9])
    wq = np.array([0.5, 1.0, 0.25])
    d, s = index.search(t, wq, k=10)
    _, codes, qscale = index.quantize_query(t, wq)
    bd, bs = index.brute_force(t, codes, 10)
    np.testing.assert_array_equal(d, bd)
    np.testing.assert_allclose(s, bs * qscale * index.scale)
    dense = w.toarray()[:, t] @ wq  # the float dot product agrees up to quantisation
    assert np.abs(dense[d] - s).max() < 0.02 * dense.max()
    assert rng is not None


def test_add_delete_update_compact_sequence():
    rng = np.random.default_rng(7)
    index = InvertedIndex.from_csr(random_docs(rng, 120), scale=1.0)
    model = BruteForce(60)
    model.add(random_docs(np.random.default_rng(7), 120))
    check(index, model, rng)
    for step in range(12):
        op = step % 4
        if op == 0:
            m = random_docs(rng, int(rng.integers(1, 30)))
            nums = index.add(m)
            model.add(m)
            assert nums[0] == model.rows.shape[0] - m.shape[0]
        elif op == 1:
            victims = rng.choice(index.n_docs, 10, replace=False)
            index.delete(victims)
            model.deleted |= set(victims.tolist())
        elif op == 2:  # update = delete + add
            victim = int(rng.integers(index.n_docs))
            index.delete([victim])
            model.deleted.add(victim)
            m = random_docs(rng, 1)
            index.add(m)
            model.add(m)
        else:
            mapping = index.compact()
            keep = [d for d in range(model.rows.shape[0]) if d not in model.deleted]
            assert [int(mapping[d]) for d in keep] == list(range(len(keep)))
            model.rows = model.rows[keep]
            model.deleted = set()
            assert len(index.segments) == 1
        check(index, model, rng)
    assert index.n_alive == model.rows.shape[0] - len(model.deleted)


def test_filters_apply_inside_the_search():
    rng = np.random.default_rng(3)
    m = random_docs(rng, 200)
    index = InvertedIndex.from_csr(m, scale=1.0)
    model = BruteForce(60)
    model.add(m)
    allowed = BitMap(rng.choice(200, 40, replace=False).tolist())
    check(index, model, rng, allowed=allowed)
    index.delete([int(x) for x in list(allowed)[:5]])
    model.deleted |= set(list(allowed)[:5])
    check(index, model, rng, allowed=allowed)
    # a filter still returns k hits when k allowed documents match
    t = np.arange(60)
    d, _ = index.search_codes(t, np.ones(60, np.int64), k=10, allowed=allowed)
    assert len(d) == min(10, len(model.top(t, np.ones(60), 1000, allowed)[0]))
    assert set(d.tolist()) <= set(allowed)


def test_empty_query_and_empty_index():
    index = InvertedIndex.from_csr(sparse.csr_matrix((0, 10), dtype=np.float32))
    d, s = index.search([1, 2], [0.5, 0.5], k=5)
    assert len(d) == 0 and len(s) == 0
    index = InvertedIndex.from_csr(random_docs(np.random.default_rng(0), 20, 10))
    d, s = index.search([], [], k=5)
    assert len(d) == 0
    d, s = index.search([3, 999], [1.0, 1.0], k=5)  # unknown term ids match nothing
    assert len(d) == len(index.search([3], [1.0], k=5)[0])
    with pytest.raises(ValueError, match="finite"):
        index.search([1], [float("nan")])


def test_save_mmap_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    index = InvertedIndex.from_csr(random_docs(rng, 150), scale=0.5)
    index.add(random_docs(rng, 10))
    index.delete([3, 151])
    index.save(tmp_path / "ix")
    loaded = InvertedIndex.load(tmp_path / "ix", mmap=True, verify=True)
    assert loaded.n_docs == 160 and len(loaded.deleted) == 2 and loaded.scale == 0.5
    for _ in range(20):
        t = rng.choice(60, 4, replace=False)
        c = rng.integers(1, 4096, 4)
        a = index.search_codes(t, c, 10)
        b = loaded.search_codes(t, c, 10)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(IndexFileError, match="exists"):
        index.save(tmp_path / "ix")
    index.save(tmp_path / "ix", overwrite=True)


@pytest.fixture
def saved(tmp_path):
    index = InvertedIndex.from_csr(random_docs(np.random.default_rng(2), 100), scale=1.0)
    index.save(tmp_path / "ix")
    return tmp_path / "ix"


def test_truncated_file_is_refused(saved):
    f = next(saved.glob("seg-*.docs.npy"))
    f.write_bytes(f.read_bytes()[:-16])
    with pytest.raises(IndexFileError,
                       match=r"seg-\w+.docs.npy: 2\d+ bytes, manifest says \d+ \(truncated"):
        InvertedIndex.load(saved)


def test_tampered_file_is_found_by_verify(saved):
    f = next(saved.glob("seg-*.impacts.npy"))
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    InvertedIndex.load(saved)  # same size: a plain load cannot tell
    with pytest.raises(IndexFileError, match=r"seg-\w+.impacts.npy: checksum mismatch"):
        InvertedIndex.load(saved, verify=True)


def test_unknown_version_is_refused(saved):
    m = json.loads((saved / "manifest.json").read_text())
    m["format_version"] = 7
    (saved / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFileError, match="format_version 7 is not supported"):
        InvertedIndex.load(saved)


def test_interrupted_save_keeps_the_old_index(saved, monkeypatch):
    old = InvertedIndex.load(saved, mmap=False)
    new = InvertedIndex.from_csr(random_docs(np.random.default_rng(9), 10), scale=1.0)

    def boom(*a, **k):
        raise KeyboardInterrupt("crash mid-write")

    monkeypatch.setattr("index.inverted.InvertedIndex.write_into",
                        lambda self, folder, extra=None: boom())
    with pytest.raises(KeyboardInterrupt):
        new.save(saved, overwrite=True)
    monkeypatch.undo()
    again = InvertedIndex.load(saved, verify=True)
    assert again.n_docs == old.n_docs
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]


def test_commit_writes_only_changes_and_survives_a_crash(saved, monkeypatch):
    index = InvertedIndex.load(saved, mmap=False)
    first = {p.name: p.stat().st_mtime_ns for p in saved.glob("seg-*")}
    index.add(random_docs(np.random.default_rng(4), 5))
    index.delete([0, 1])
    index.commit(saved)
    again = InvertedIndex.load(saved, verify=True)
    assert again.n_docs == 105 and len(again.deleted) == 2
    for name, mtime in first.items():  # the first segment's files were not rewritten
        assert (saved / name).stat().st_mtime_ns == mtime
    # a crash before the manifest swap leaves the last committed state
    import deepbow.fileio

    real = deepbow.fileio.atomic_open

    def failing(path, *a, **k):
        if str(path).endswith("manifest.json"):
            raise OSError("disk full")
        return real(path, *a, **k)

    monkeypatch.setattr(deepbow.fileio, "atomic_open", failing)
    again.delete([5])
    with pytest.raises(OSError):
        again.commit(saved)
    monkeypatch.undo()
    last = InvertedIndex.load(saved, verify=True)
    assert len(last.deleted) == 2


def test_missing_index(tmp_path):
    with pytest.raises(IndexFileError, match="no index directory"):
        InvertedIndex.load(tmp_path / "none")
    shutil.copytree(tmp_path, tmp_path / "empty", dirs_exist_ok=True)
    with pytest.raises(IndexFileError, match="no manifest.json"):
        InvertedIndex.load(tmp_path / "empty")


def test_batch_search_on_threads_equals_search():
    rng = np.random.default_rng(11)
    index = InvertedIndex.from_csr(random_docs(rng, 300), scale=0.5)
    index.add(random_docs(rng, 40))  # two segments: per-segment lists merged
    index.delete([0, 5, 310])
    queries = [(rng.choice(60, int(rng.integers(0, 6)), replace=False),
                rng.uniform(0.1, 2.0, 6)) for _ in range(150)]
    queries = [(t, w[:len(t)]) for t, w in queries]
    allowed = BitMap(rng.choice(340, 200, replace=False).tolist())
    for flt in (None, allowed):
        want = [index.search(t, w, 7, flt) for t, w in queries]
        for threads in (1, 2, 3):
            got = index.batch_search(queries, 7, flt, threads=threads)
            assert len(got) == len(want)
            for (d1, s1), (d2, s2) in zip(got, want, strict=True):
                np.testing.assert_array_equal(d1, d2)
                np.testing.assert_array_equal(s1, s2)
    assert index.batch_search([], 5, threads=2) == []
    with pytest.raises(ValueError, match="threads"):
        index.batch_search(queries, 5, threads=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_batch_threads_are_kept_and_a_forked_child_makes_its_own():
    from index import inverted

    rng = np.random.default_rng(3)
    index = InvertedIndex.from_csr(random_docs(rng, 200), scale=0.5)
    queries = [(np.array([1, 2, 3]), np.array([1.0, 0.5, 0.2]))] * 20
    want = index.batch_search(queries, 5)
    index.batch_search(queries, 5, threads=2)
    pool = inverted._pool(2)
    index.batch_search(queries, 5, threads=2)
    assert inverted._pool(2) is pool  # kept across batches
    pid = os.fork()
    if pid == 0:  # the child: the parent's pool has no threads here; a new one must serve
        ok = [d.tolist() for d, _ in index.batch_search(queries, 5, threads=2)] == \
            [d.tolist() for d, _ in want] and inverted._pool(2) is not pool
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_version_1_index_is_read_and_upgraded(tmp_path, monkeypatch):
    """A version-1 index (no block-max files) loads with its block maxima computed, searches
    the same, and a commit writes the block files and version 2."""
    import index.inverted as inv

    rng = np.random.default_rng(8)
    index = InvertedIndex.from_csr(random_docs(rng, 200), scale=1.0)
    monkeypatch.setattr(inv, "ARRAYS", inv.V1_ARRAYS)
    monkeypatch.setattr(inv, "FORMAT_VERSION", 1)
    index.save(tmp_path / "v1")
    monkeypatch.undo()
    assert json.loads((tmp_path / "v1" / "manifest.json").read_text())["format_version"] == 1
    assert not list((tmp_path / "v1").glob("seg-*.blk_max.npy"))
    old = InvertedIndex.load(tmp_path / "v1", verify=True)
    seg, new = old.segments[0], index.segments[0]
    for name in ("bptr", "blk_last", "blk_max"):
        np.testing.assert_array_equal(getattr(seg, name), getattr(new, name))
    t, c = np.array([1, 4, 8]), np.array([300, 20, 4000])
    np.testing.assert_array_equal(old.search_codes(t, c, 10)[0], index.search_codes(t, c, 10)[0])
    old.delete([3])
    old.commit(tmp_path / "v1")
    m = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    assert m["format_version"] == 2
    assert list((tmp_path / "v1").glob("seg-*.blk_max.npy"))
    assert InvertedIndex.load(tmp_path / "v1", verify=True).n_alive == 199


def test_stats_count_the_block_maxima():
    index = InvertedIndex.from_csr(random_docs(np.random.default_rng(1), 500), scale=1.0)
    st = index.stats()
    seg = index.segments[0]
    assert st["bytes"] == sum(np.asarray(getattr(seg, n)).nbytes for n in
                              ("indptr", "docs", "impacts", "max_impact", "bptr", "blk_last",
                               "blk_max"))
    assert len(seg.blk_max) == int(((np.diff(seg.indptr) + 63) // 64).sum())


def test_batch_quantisation_equals_quantize_query():
    from index import query_arrays

    rng = np.random.default_rng(5)
    queries = [(rng.choice(50, n, replace=False),
                rng.choice([0.0, 1e-9, 0.3, 7.5], n) * rng.random(n)) for n in
               rng.integers(0, 7, 200)]
    t, w, q_ptr = query_arrays.flatten(queries, np.float64)
    codes, qscale = query_arrays.quantize_flat(w, q_ptr)
    for i, (ti, wi) in enumerate(queries):
        want_t, want_c, want_q = InvertedIndex.quantize_query(ti, wi)
        np.testing.assert_array_equal(t[q_ptr[i]:q_ptr[i + 1]], want_t)
        np.testing.assert_array_equal(codes[q_ptr[i]:q_ptr[i + 1]], want_c)
        assert qscale[i] == want_q
    with pytest.raises(ValueError, match="differ in length"):
        query_arrays.flatten([([1, 2], [0.5])], np.float64)
    with pytest.raises(ValueError, match="finite"):
        InvertedIndex.from_csr(random_docs(rng, 10)).batch_search([([1], [np.inf])])
