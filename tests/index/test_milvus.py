"""Serving from Milvus (index/milvus.py, index/milvus_catalogue.py): the local index's results.

Each test builds a small local catalogue with the tiny model, exports it into a milvus-lite
file and compares: ids, scores (bit-identical: both are integers times the same two scales),
matched words, filters, deletes, updates, word edits and per-item edits. Needs the `scale`
extra (pymilvus, milvus-lite 2.5); skipped without it.
"""

import random

import pytest

from index.catalogue import Catalogue
from tests.conftest import BRANDS, FILLERS, PRODUCTS

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

import index.milvus as mv  # noqa: E402  (after the skips: needs the scale extra)
import index.milvus_catalogue as mc  # noqa: E402

QUERIES = [b + p for b in BRANDS[:3] for p in PRODUCTS] + PRODUCTS + FILLERS[:3] + ["篮球"]


def items(n: int = 160, seed: int = 5) -> list[dict]:
    """Synthetic titles with many exact duplicates: ties everywhere, the hard case."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        b, p = rng.choice(BRANDS), rng.choice(PRODUCTS)
        words = [b, *rng.sample(FILLERS, rng.randint(0, 2)), p]
        out.append({"id": f"i{i}", "title": "".join(words), "brand": b, "product": p,
                    "tags": rng.sample(FILLERS, 2)})
    out[0]["brand"] = 'qu"o\\te\nnew'  # a value Milvus expressions cannot spell
    return out


@pytest.fixture
def pair(tiny_model, tmp_path):
    cat = Catalogue.build(tiny_model, items(), tmp_path / "ix")
    mix = mc.export_catalogue(cat, str(tmp_path / "m.db"), "c")
    served = mc.MilvusCatalogue(mix, tiny_model)
    yield cat, served
    served.close()


def same(cat, served, k=10, filters=None, queries=QUERIES, edits=None, local_edits=None):
    for q in queries:
        want = [(h.id, h.score, h.matched, h.title, h.fields)
                for h in cat.search(q, k, filters, edits=local_edits)]
        got = [(h.id, h.score, h.matched, h.title, h.fields)
               for h in served.search(q, k, filters, edits=edits)]
        assert got == want, q


@pytest.mark.parametrize("k", [1, 3, 10, 200])
def test_same_top_k_as_the_local_index(pair, k):
    same(*pair, k=k)


def test_ties_resolved_exactly_with_no_margin(pair, tiny_model):
    cat, served = pair
    for q in QUERIES:
        qv = tiny_model.encode([q], "query")[0]
        docs, ints = cat.index.search_codes(qv.ids, qv.codes, 5)
        [r] = served.index.search_codes([(qv.ids, qv.codes, qv.scale)], 5, margin=0)
        assert r.docs.tolist() == docs.tolist() and r.ints.tolist() == ints.tolist()
    assert served.index.uncertain == 0 and served.index.widened > 0  # ties made it ask again


def test_batch_search_and_explain(pair):
    cat, served = pair
    for threads in (1, 3):
        assert [[h.id for h in hs] for hs in served.batch_search(QUERIES, 10, batch=7,
                                                                 threads=threads)] == \
            [[h.id for h in hs] for hs in cat.batch_search(QUERIES, 10)]
    for q in ("华为手机", "鼠标垫"):
        for item in ("i0", "i7", "i42"):
            a, b = cat.explain(q, item), served.explain(q, item)
            assert (a.score, a.label, a.rows, a.title) == (b.score, b.label, b.rows, b.title)


@pytest.mark.parametrize("filters", [
    {"brand": ["华为"]}, {"brand": ["华为", "罗技"]}, {"brand": ["华为"], "product": ["手机"]},
    {"tags": ["包邮"]}, {"tags": ["包邮", "正品"], "brand": ["小米"]}, {"brand": ['qu"o\\te\nnew']},
    {"brand": []}, {"colour": ["红"]}, {"brand": ["没有"]}])
def test_filters(pair, filters):
    same(*pair, filters=filters)


def test_delete_update_and_add_mirrored(pair, tiny_model):
    cat, served = pair
    top = [h.id for h in cat.search("华为手机", 10)]
    cat.delete(top[:3])
    assert mc.mirror(cat, served.index, top[:3]) == (0, 3)
    same(cat, served)
    changed = [{"id": top[3], "title": "罗技鼠标垫", "brand": "罗技", "product": "鼠标垫"},
               {"id": "new1", "title": "华为手机正品", "brand": "华为", "product": "手机"}]
    cat.update(changed)
    assert mc.mirror(cat, served.index, [it["id"] for it in changed]) == (2, 0)
    same(cat, served)
    same(cat, served, filters={"brand": ["罗技"]})
    assert served.index.count() == cat.index.n_alive


def test_word_ban_scale_and_link(pair, tiny_model):
    cat, served = pair
    cat.editor.ban("华为")
    cat.editor.scale("手机", 0.5)
    cat.editor.link("鼠标", "鼠标垫", 0.7)
    edits = mc.journal_word_edits(cat.path, tiny_model.vocab)
    same(cat, served, edits=edits)
    assert not any("华为" == w for h in served.search("华为手机", 10, edits=edits)
                   for w, _ in h.matched)
    for item in ("i1", "i9"):
        assert served.explain("华为鼠标", item, edits).score == cat.explain("华为鼠标", item).score


def test_per_item_weights_upserted_and_undone(pair, tiny_model):
    cat, served = pair
    last = cat.search("小米手机", 10)[-1].id
    rec = cat.editor.set_weight(last, "手机", 250 * cat.index.scale)
    cat.editor.set_weight("i3", "小米", 100 * cat.index.scale, create=True)
    assert mc.sync_item_edits(cat, served.index) == 2
    same(cat, served)
    assert served.search("小米手机", 1)[0].id == cat.search("小米手机", 1)[0].id
    cat.editor.undo(rec["seq"])
    mc.sync_item_edits(cat, served.index, cat.journal_edits(), cat.editor.log())
    same(cat, served)


def test_export_carries_item_edits_and_skips_deleted(tiny_model, tmp_path):
    cat = Catalogue.build(tiny_model, items(60), tmp_path / "ix")
    cat.editor.set_weight("i5", "手机", 250 * cat.index.scale)
    cat.delete(["i6"])
    with mc.export_catalogue(cat, str(tmp_path / "e.db"), "c") as mix:
        served = mc.MilvusCatalogue(mix, tiny_model)
        assert mix.count() == 59
        same(cat, served)


def test_load_vectors_from_parquet(tiny_model, tmp_path):
    pytest.importorskip("pyarrow")
    from index.catalogue import INDEX_BATCH, encode_items
    from index.vectors import write_vectors

    its = items(120)
    cat = Catalogue.build(tiny_model, its, tmp_path / "ix")
    codes = encode_items(tiny_model, its, INDEX_BATCH)
    write_vectors(its, codes, tmp_path / "v.parquet", tiny_model.model_id,
                  tiny_model.scales["title"])
    with mc.load_vectors(tmp_path / "v.parquet", str(tmp_path / "v.db"), "c",
                         model=tiny_model) as mix:
        same(cat, mc.MilvusCatalogue(mix, tiny_model), filters={"tags": ["新款"]})
        same(cat, mc.MilvusCatalogue(mix, tiny_model))


def test_refusals(pair, tiny_model, tmp_path):
    cat, served = pair
    with pytest.raises(mv.MilvusError, match="36 characters"):
        mv.check_uri(str(tmp_path / ("x" * 40 + ".db")))
    with pytest.raises(mv.MilvusError, match="ending in .db"):
        mv.check_uri(str(tmp_path / "m.sqlite"))
    uri = str(tmp_path / "m.db")
    with pytest.raises(mv.MilvusError, match="exists"):
        mc.export_catalogue(cat, uri, "c")
    with pytest.raises(mv.MilvusError, match="no collection"):
        mv.MilvusIndex.open(uri, "nope")
    served.index.meta.model_id = "other"
    with pytest.raises(mv.MilvusError, match="model"):
        mc.MilvusCatalogue(served.index, tiny_model)
    served.index.meta.model_id = tiny_model.model_id
    with pytest.raises(mv.MilvusError, match="not a filter field"):
        served.index.upsert([999], [{"id": "z", "title": "手机", "colour": "红"}],
                            cat.index.segments[0].to_codes()[:1])


def test_filter_tokens():
    assert mv.filter_token("华为") == "华为"
    for odd in ('a"b', "a\\b", "a\nb", "h:x", "a'b"):
        tok = mv.filter_token(odd)
        assert tok.startswith("h:") and len(tok) == 34
    assert mv.filter_token("a\nb") != mv.filter_token("a\nc")
