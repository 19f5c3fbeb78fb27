"""The model-aware index: text in, hits out; same numbers as pair scoring and explain."""

import json

import numpy as np
import pytest

from deepbow.errors import InputError
from index.catalogue import Catalogue
from index.inverted import IndexFileError
from tests.conftest import ITEMS


def brute(model, query, items):
    s = model.score(query, [it["title"] for it in items])
    order = sorted(range(len(items)), key=lambda i: (-s[i], i))
    return [(items[i]["id"], s[i]) for i in order if s[i] > 0]


@pytest.mark.parametrize("query", ["华为手机", "鼠标", "罗技 鼠标垫", "充电宝", "篮球"])
def test_search_equals_pair_scoring(cat, tiny_model, query):
    hits = cat.search(query, k=10)
    want = brute(tiny_model, query, ITEMS)
    assert [h.id for h in hits] == [i for i, _ in want]
    for h, (_, s) in zip(hits, want, strict=True):
        assert h.score == s  # bit-identical: integer codes on the same scales
        assert sum(c for _, c in h.matched) <= h.score + 1e-12


def test_explain_matches_the_index_and_pair_explain(cat, tiny_model):
    for q in ("华为手机", "罗技鼠标"):
        hits = {h.id: h.score for h in cat.search(q, k=10)}
        for it in ITEMS:
            ex = cat.explain(q, it["id"])
            pair = tiny_model.explain(q, it["title"])
            assert ex.score == hits.get(it["id"], 0.0) == pair.score
            assert ex.score == pytest.approx(sum(r.contribution for r in ex.rows), abs=1e-12)


def test_filters_and_live_changes(cat, tiny_model, tmp_path):
    by_id = {it["id"]: it for it in ITEMS}
    for q in ("华为手机", "罗技鼠标", "手机"):
        everything = [(h.id, h.score) for h in cat.search(q, k=10)]
        for flt in ({"brand": ["华为"]}, {"brand": ["华为", "罗技"]},
                    {"brand": ["华为"], "product": ["手机"]}):
            ok = [i for i, _ in everything
                  if all(by_id[i][f] in vals for f, vals in flt.items())]
            assert [h.id for h in cat.search(q, k=10, filters=flt)] == ok
        assert cat.search(q, filters={"brand": ["没有"]}) == []
    cat.delete(["a1"])
    assert "a1" not in {h.id for h in cat.search("华为手机", k=10)}
    cat.add([{"id": "b1", "title": "华为手机正品包邮", "brand": "华为"}])
    cat.update([{"id": "a2", "title": "耐克运动鞋", "brand": "耐克"}])
    reopened = Catalogue.open(tmp_path / "ix", tiny_model, verify=True)
    ids = [h.id for h in reopened.search("华为手机", k=10)]
    assert "b1" in ids and "a1" not in ids and "a2" not in ids
    live = [it for it in ITEMS if it["id"] not in ("a1", "a2")] + [
        {"id": "b1", "title": "华为手机正品包邮"}, {"id": "a2", "title": "耐克运动鞋"}]
    for q in ("华为手机", "运动鞋", "鼠标"):
        got = [(h.id, h.score) for h in reopened.search(q, k=20)]
        assert sorted(got) == sorted(brute(tiny_model, q, live))
    before = {q: [(h.id, h.score) for h in reopened.search(q, k=20)] for q in ("华为手机", "鼠标")}
    reopened.compact()
    again = Catalogue.open(tmp_path / "ix", tiny_model, verify=True)
    assert len(again.index.segments) == 1 and len(again.index.deleted) == 0
    for q, hits in before.items():
        assert [(h.id, h.score) for h in again.search(q, k=20)] == hits
    assert {h.id for h in again.search("华为手机", filters={"brand": ["华为"]})} <= {"a3", "b1"}


def test_bad_changes_are_refused(cat):
    with pytest.raises(InputError, match="unknown ids"):
        cat.delete(["nope"])
    with pytest.raises(InputError, match="already in the index"):
        cat.add([{"id": "a1", "title": "x"}])
    with pytest.raises(InputError, match="duplicate id"):
        cat.add([{"id": "z", "title": "x"}, {"id": "z", "title": "y"}])
    with pytest.raises(InputError, match='needs "id"'):
        cat.add([{"title": "x"}])


def test_build_refuses_existing_dir_and_other_model(cat, tiny_model, tmp_path):
    with pytest.raises(IndexFileError, match="refusing to overwrite"):
        Catalogue.build(tiny_model, ITEMS, tmp_path / "ix")
    m = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    m["model_id"] = "another"
    (tmp_path / "ix" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFileError, match="built with model another"):
        Catalogue.open(tmp_path / "ix", tiny_model)


def test_empty_catalogue_and_query(tiny_model, tmp_path):
    cat = Catalogue.build(tiny_model, [], tmp_path / "empty")
    assert cat.search("手机") == []
    cat2 = Catalogue.build(tiny_model, ITEMS, tmp_path / "ix2")
    assert cat2.search("") == []
    assert np.isfinite(cat2.stats()["bytes_per_posting"])


def test_precomputed_codes(tiny_model, tmp_path):
    """Codes computed elsewhere (on Ray) build the same index; wrong ones are refused."""
    from index.catalogue import INDEX_BATCH, encode_items

    codes = encode_items(tiny_model, ITEMS, INDEX_BATCH)
    cat = Catalogue.build(tiny_model, ITEMS[:5], tmp_path / "ix", codes=codes[:5])
    cat.add(ITEMS[5:], codes=codes[5:])
    cat.update(ITEMS[:1], codes=codes[:1])
    ref = Catalogue.build(tiny_model, ITEMS[1:] + ITEMS[:1], tmp_path / "ref")
    for q in ("华为手机", "罗技鼠标"):
        assert [(h.id, h.score) for h in cat.search(q)] == [(h.id, h.score)
                                                             for h in ref.search(q)]
    for bad in (codes[:2], codes[:1].astype(np.float32), codes[:1].toarray()):
        with pytest.raises(InputError, match="codes must be"):
            cat.add([{"id": "z", "title": "耳机"}], codes=bad)


def test_filter_bitmaps_decoded_once(cat):
    """A store decodes a field=value bitmap once; searches never change the shared copy."""
    store = cat.stores[cat.index.segments[0].uid]
    first = store.filter("brand", "华为")
    want = set(first)
    for flt in ({"brand": ["华为"]}, {"brand": ["华为", "罗技"]}):
        cat.search("手机", filters=flt)
    assert store.filter("brand", "华为") is first and set(first) == want


def test_explain_with_the_query_vector_given(cat):
    """The studio encodes a query once and explains every hit with it: the same rows."""
    cat.editor.scale("手机", 2.0)
    for q in ("华为手机", "罗技鼠标"):
        qv = cat.query_vectors([q])[0]
        for it in ITEMS:
            a, b = cat.explain(q, it["id"]), cat.explain(q, it["id"], qv=qv)
            assert (a.score, a.label, a.rows) == (b.score, b.label, b.rows)
