"""EBRM: tagger decoding, lexicon, QE cache, soft-logic scoring, explain, hybrid, model files.

A tiny EBRM is trained here on synthetic titles whose entities are known (brand + filler +
product + filler), with the real training code, in a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepbow.errors import InputError, ModelFileError
from deepbow.readers import Pair
from ebrm.cache import QECache
from ebrm.lexicon import Entity, Lexicon
from ebrm.model import EBRM, EntityTable
from ebrm.tagger import ALLOWED, END_OK, N_TAGS, START_OK, TAGS, spans_from_tags, viterbi
from tests.conftest import FILLERS, synthetic_gold


@pytest.fixture(scope="module")
def tiny(tiny_ebrm_dir):
    return EBRM.load(tiny_ebrm_dir, cache=None), tiny_ebrm_dir


# -- tagger decoding ------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(0, 10_000))
def test_viterbi_always_gives_valid_bioes(n, seed):
    logp = np.random.default_rng(seed).normal(size=(n, N_TAGS))
    path = viterbi(logp)
    assert len(path) == n and START_OK[path[0]] and END_OK[path[-1]]
    assert all(ALLOWED[a, b] for a, b in zip(path, path[1:], strict=False))
    ents = spans_from_tags("x" * n, path)
    n_open = sum(TAGS[t][0] in "BS" for t in path)
    assert len(ents) == n_open  # every entity opened is closed


def test_spans_from_tags():
    tags = [TAGS.index(t) for t in ("B-brand", "E-brand", "O", "S-product", "B-model",
                                    "I-model", "E-model")]
    ents = spans_from_tags("华为新机x12", tags)
    assert [(e.type, e.text, e.start, e.end) for e in ents] == [
        ("brand", "华为", 0, 2), ("product", "机", 3, 4), ("model", "x12", 4, 7)]


def test_lexicon_longest_match():
    lex = Lexicon(["手机", "手机壳", "鼠标垫"], ["华为", "手机"])
    ents = lex.longest_match("华为手机壳鼠标垫")
    assert [(e.type, e.text, e.start) for e in ents] == [
        ("brand", "华为", 0), ("product", "手机壳", 2), ("product", "鼠标垫", 5)]
    assert lex.words["手机"] == "product"  # listed as both: read as a product
    f = lex.features("华为手机壳")
    assert f.shape == (5, 8) and f[:, 4].sum() == 1 and f[2, 0] == 1


# -- the tiny model ---------------------------------------------------------------------------
def test_tagger_finds_synthetic_entities(tiny):
    model, _ = tiny
    gold = synthetic_gold(7, 40)
    pred = model.tagger.tag([t for t, _, _ in gold])
    from ebrm.tagger import entity_prf

    f1 = entity_prf([g for _, g, _ in gold], pred)["all"][2]
    assert f1 > 0.8, f1


def test_scores_follow_the_logic(tiny):
    model, _ = tiny
    s = model.score("华为手机", ["华为新款手机防摔", "小米新款手机防摔", "华为新款手机壳防摔",
                              "罗技正品鼠标垫包邮"])
    assert s[0] > s[1] > s[3] and s[0] > s[2], s
    assert np.all((s >= 0) & (s <= 2))


def test_explain_equals_score(tiny):
    model, _ = tiny
    title = "华为新款手机防摔"
    ex = model.explain("华为手机", title)
    assert ex.score == pytest.approx(model.score("华为手机", [title])[0], abs=1e-12)
    assert ex.score == pytest.approx(ex.sat * (1 + ex.ok), abs=1e-12)
    from ebrm.soft_logic import soft_and, soft_or

    prods = [r.s * r.weight for r in ex.rows if r.type == "product"]
    assert ex.sat == pytest.approx(soft_or(np.array(prods), model.family), abs=1e-9)
    parts = [1 - r.weight * (1 - r.c) for r in ex.rows
             if not (r.candidate and r.type == "product")]
    if ex.present is not None:  # the query's brand must be among the title's brands
        parts.append(ex.present)
    assert ex.ok == pytest.approx(soft_and(np.array(parts), model.family), abs=1e-9)
    assert {r.type for r in ex.rows} >= {"brand", "product"}


def test_bad_input(tiny):
    model, _ = tiny
    with pytest.raises(InputError, match="empty title"):
        model.explain("手机", "  ")
    with pytest.raises(InputError, match="empty query"):
        model.score("", ["华为手机"])
    m = EBRM(model.tagger, model.qe, model.manifest)
    m.tagger = type("NoEntities", (), {"tag": lambda self, texts, **kw: [[] for _ in texts]})()
    ex = m.explain("手机", "!!!")  # a title in which nothing is tagged
    assert ex.score == 0 and ex.rows == [] and "no product entity" in ex.notes[0]
    assert "(no entities found in the title)" in ex.to_text()
    assert model.score("手机", []).shape == (0,)
    import deepbow

    with pytest.raises(InputError, match="unknown scorer"):
        deepbow.load_scorer("bm42")


def test_table_scoring_matches_training_forward(tiny):
    """The numpy soft logic at inference and the torch one used in fine-tuning agree."""
    import torch

    from ebrm.train import qi_forward

    model, path = tiny
    model = EBRM.load(path, cache=None)
    # training reads the logic without its query-side terms and title weights
    model.manifest.update(query_brand_presence=False, query_focus="full", product_backoff=0.0,
                          candidate_modifier_weight=1.0, secondary_product_weight=1.0)
    titles = ["华为新款手机防摔", "小米超薄鼠标垫夏季", "罗技2024耳机正品"]
    score, sat, ok = model.score_table("华为手机", model.table(titles))
    with torch.inference_mode():
        tsat, tok = qi_forward(model.qe, ["华为手机"] * 3, model.entities(titles), model.family,
                               model.gamma, model.brand_gamma)
    assert np.allclose(sat, tsat.numpy(), atol=1e-5) and np.allclose(ok, tok.numpy(), atol=1e-5)


def test_qi_scores_with_judgements_computed_once_are_the_same(tiny):
    """choose_logic runs the cross-encoder once (qi_judgements) for every logic setting: the
    scores are those of running it again for each."""
    from ebrm.train import QI_BATCH, qi_judgements, qi_scores

    model, _ = tiny
    titles = ["华为新款手机防摔", "小米超薄鼠标垫夏季", "罗技2024耳机正品", "手机壳", ""]
    pairs = [Pair(q, t, 0) for q in ("华为手机", "鼠标垫", "耳机 罗技") for t in titles]
    pairs = pairs * (QI_BATCH // len(pairs) + 1)  # two batches, the second partial
    lists = model.entities([p.title for p in pairs])
    judged = qi_judgements(model.qe, pairs, lists)
    assert len(judged) == 2
    for family, gamma, brand_gamma in [("product", 1.0, None), ("godel", 0.5, 1.0),
                                       ("lukasiewicz", 2.0, 0.5)]:
        assert np.array_equal(qi_scores(model.qe, pairs, lists, family, gamma, brand_gamma),
                              qi_scores(model.qe, pairs, lists, family, gamma, brand_gamma,
                                        judged))


def test_entity_table_padding_is_neutral():
    t = EntityTable([[Entity("brand", "a")], [], [Entity("product", "p"), Entity("brand", "a")]])
    assert t.keys == [("brand", "a"), ("product", "p")]
    assert t.prod.shape == (3, 1) and t.prod[0, 0] == 2 and t.prod[2, 0] == 1


# -- cache --------------------------------------------------------------------------------------
def test_cache_hits_and_persists(tiny, tmp_path):
    model, path = tiny
    db = tmp_path / "qe.sqlite"
    m = EBRM.load(path, cache=db)
    titles = ["华为新款手机防摔", "华为正品手机壳超薄", "小米新款手机防摔"]
    first = m.score("华为手机", titles)
    st1 = m.cache.stats()
    assert st1["misses"] > 0 and st1["hits"] == 0 and st1["entries"] == st1["misses"]
    calls = []
    orig = m.qe.predict
    m.qe.predict = lambda *a, **k: calls.append(1) or orig(*a, **k)
    again = m.score("华为手机", titles)
    assert not calls and np.array_equal(first, again) and m.cache.hits >= st1["misses"]
    m.cache.close()
    m2 = EBRM.load(path, cache=db)  # a new process: read from disk
    m2.qe.predict = lambda *a, **k: pytest.fail("cross-encoder ran on a warm cache")
    assert np.array_equal(m2.score("华为手机", titles), first)
    assert m2.cache.stats()["hit_rate"] == 1.0


def test_cache_shared_by_titles_with_the_same_entity(tiny):
    model, path = tiny
    m = EBRM.load(path, cache=None)
    titles = [f"华为{f}手机{g}" for f in FILLERS for g in FILLERS if f != g]
    m.score("华为手机", titles)
    # each entity judged once for the query (and once for its product word, which the
    # query focus asks about), however many titles share it
    asked = {"华为手机", *m.query_products("华为手机")}
    assert m.cache.misses == len(asked) * len(m.table(titles).keys) < len(titles)


def test_cache_invalidated_when_the_model_changes(tmp_path):
    db = tmp_path / "qe.sqlite"
    c = QECache(db, "model-a")
    c.store("手机", [(("product", "手机"), 0.9, 1.0)])
    c.close()
    c = QECache(db, "model-a")
    assert c.lookup("手机", [("product", "手机")])[0][0] == (0.9, 1.0)
    c.close()
    c = QECache(db, "model-b")
    assert c.invalidated and c.stats()["entries"] == 0
    assert c.lookup("手机", [("product", "手机")])[1] == [0]
    c.clear()
    assert c.stats()["entries"] == 0


# -- model files and hybrid ------------------------------------------------------------------
def test_save_load_round_trip_and_corruption(tiny, tmp_path):
    import shutil

    model, path = tiny
    titles = ["华为新款手机防摔", "小米超薄鼠标垫夏季"]
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    assert np.array_equal(EBRM.load(copy, cache=None).score("华为手机", titles),
                          model.score("华为手机", titles))
    with open(copy / "weights.npz", "r+b") as fh:
        fh.seek(100)
        fh.write(b"garbage")
    with pytest.raises(ModelFileError, match="checksum"):
        EBRM.load(copy, cache=None)
    with pytest.raises(ModelFileError, match="no EBRM model"):
        EBRM.load(tmp_path / "nowhere", cache=None)


def test_hybrid_combines_and_explains(tiny, tiny_model, tmp_path):
    from ebrm.config import HybridParams
    from ebrm.hybrid import Hybrid, fit_hybrid

    model, _ = tiny
    titles = ["华为新款手机防摔", "小米新款手机防摔", "华为新款手机壳防摔"]
    d, e = tiny_model.score("华为手机", titles), model.score("华为手机", titles)
    pairs = [Pair("华为手机", t, y) for t, y in zip(titles, [2, 1, 0], strict=True)]
    cfg = fit_hybrid(pairs, d, e, tiny_model.label(d), model.label(e))
    assert set(cfg["valid_gain_by_beta"]) == {str(b) for b in HybridParams().betas}
    model.manifest["hybrid"] = {**cfg, "deepbow_model_id": tiny_model.model_id}
    h = Hybrid(tiny_model, model)
    s = h.score("华为手机", titles)
    assert np.allclose(s, e + cfg["beta"] * d / cfg["deepbow_scale"])
    ex = h.explain("华为手机", titles[0])
    assert ex.score == pytest.approx(ex.ebrm.score + ex.beta * ex.deepbow.score / ex.deepbow_scale)
    model.manifest["hybrid"]["deepbow_model_id"] = "someone-else"
    with pytest.raises(ModelFileError, match="calibrated against"):
        Hybrid(tiny_model, model)
    del model.manifest["hybrid"]


# -- command line ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hybrid_dir(tiny, tiny_model, tmp_path_factory):
    """The tiny EBRM with a hybrid calibration against the tiny DeepBoW model."""
    from ebrm.hybrid import fit_hybrid

    model, _ = tiny
    titles = ["华为新款手机防摔", "小米新款手机防摔", "华为新款手机壳防摔", "罗技正品鼠标垫包邮"]
    d, e = tiny_model.score("华为手机", titles), model.score("华为手机", titles)
    pairs = [Pair("华为手机", t, y) for t, y in zip(titles, [2, 1, 0, 0], strict=True)]
    cfg = fit_hybrid(pairs, d, e, tiny_model.label(d), model.label(e))
    path = tmp_path_factory.mktemp("hyb") / "ebrm"
    model.save(path, extra={"hybrid": {**cfg, "deepbow_model_id": tiny_model.model_id}})
    return path


def test_cli_entities_explain_score_eval(hybrid_dir, tiny_model_dir, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from cli.main import main

    monkeypatch.setenv("DEEPBOW_CACHE", str(tmp_path / "cache"))
    run = CliRunner().invoke
    opts = ["--model", str(tiny_model_dir), "--ebrm-model", str(hybrid_dir)]
    r = run(main, ["entities", "华为新款手机防摔", "--ebrm-model", str(hybrid_dir), "--json"])
    assert r.exit_code == 0, r.output
    ents = json.loads(r.output.splitlines()[0])["entities"]
    assert {"type": "product", "text": "手机"} in [{k: e[k] for k in ("type", "text")}
                                                  for e in ents]
    r = run(main, ["explain", "华为手机", "华为新款手机防摔", "--scorer", "ebrm", *opts])
    assert r.exit_code == 0 and "must match (OR)" in r.output and "sat = OR" in r.output
    r = run(main, ["explain", "华为手机", "华为新款手机防摔", "--scorer", "hybrid", *opts])
    assert r.exit_code == 0 and "EBRM part" in r.output and "DeepBoW part" in r.output
    r = run(main, ["explain", "华为手机", "华为新款手机防摔", "--scorer", "bm42", *opts])
    assert r.exit_code != 0 and "unknown scorer" in r.output
    pairs = tmp_path / "pairs.jsonl"
    rows = [("华为手机", "华为新款手机防摔", 2, "ecom"),
            ("华为手机", "小米新款手机防摔", 1, "ecom"),
            ("华为手机", "华为新款手机壳防摔", 0, "ecom-hard"),
            ("手机", "罗技正品鼠标垫包邮", 0, "ecom"),
            ("手机", "小米正品手机超薄", 2, "ecom"),
            ("手机", "小米正品手机超薄", 0, "ecom-hard")]  # a hard negative tied with an exact
    pairs.write_text("".join(json.dumps({"query": q, "title": t, "label": y, "kind": k},
                                        ensure_ascii=False) + "\n" for q, t, y, k in rows),
                     encoding="utf-8")
    for scorer in ("ebrm", "hybrid"):
        out = tmp_path / f"{scorer}.jsonl"
        r = run(main, ["score", "--pairs", str(pairs), "--out", str(out), "--scorer", scorer,
                       *opts])
        assert r.exit_code == 0, r.output
        got = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(got) == len(rows) and all(g["label"] in (0, 1, 2) for g in got)
    r = run(main, ["eval", "--pairs", str(pairs), "--scorer", "all", "--json", *opts])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.splitlines()[0])["all"]
    assert set(res) == {"deepbow", "ebrm", "hybrid", "bm25"}
    assert "f1_label1" in res["ebrm"] and "auc_1v0" in res["ebrm"]
    assert res["deepbow"]["hard_neg_queries"] == 2 and "hard_neg_failures" not in res["deepbow"]
    r = run(main, ["eval", "--pairs", str(pairs), "--scorer", "all", "--json", "--failures",
                   *opts])
    res = json.loads(r.output.splitlines()[0])["all"]
    text = run(main, ["eval", "--pairs", str(pairs), "--scorer", "all", "--failures", *opts])
    for name, row in res.items():
        fails = row["hard_neg_failures"]
        assert len(fails) == round(2 * (1 - row["hard_neg_below_all"]))
        tied = [f for f in fails if f["query"] == "手机"]  # fails for every scorer: a tie
        assert len(tied) == 1 and tied[0]["hard"] == tied[0]["exact"]
        assert all(f["hard"]["score"] >= f["exact"]["score"] for f in fails)
        assert f"{name}: {len(fails)} of 2 queries" in text.output
    assert "手机\t" in text.output


def test_cli_cache_stats_warm_clear(tiny, tmp_path):
    import json

    from click.testing import CliRunner

    from cli.main import main

    _, path = tiny
    run = CliRunner().invoke
    db = tmp_path / "qe.sqlite"
    opts = ["--ebrm-model", str(path), "--cache", str(db)]
    (tmp_path / "q.txt").write_text("华为手机\n手机\n", encoding="utf-8")
    (tmp_path / "cat.jsonl").write_text(
        "".join(json.dumps({"id": str(i), "title": t}, ensure_ascii=False) + "\n"
                for i, t in enumerate(["华为新款手机防摔", "小米新款手机防摔", "罗技鼠标垫"])),
        encoding="utf-8")
    r = run(main, ["ebrm", "cache", "warm", "--queries", str(tmp_path / "q.txt"),
                   "--titles", str(tmp_path / "cat.jsonl"), *opts])
    assert r.exit_code == 0 and "new QE judgements" in r.output, r.output
    r = run(main, ["ebrm", "cache", "stats", "--json", *opts])
    st = json.loads(r.output)
    assert st["queries"] == 2 and st["entries"] > 0 and st["bytes"] > 0
    r = run(main, ["ebrm", "cache", "clear", *opts])
    assert r.exit_code == 0
    r = run(main, ["ebrm", "cache", "stats", "--json", *opts])
    assert json.loads(r.output)["entries"] == 0


def test_query_brand_must_be_present_when_asked(tiny):
    _, path = tiny
    m = EBRM.load(path, cache=None)
    if "华为" not in m.query_brands("华为手机"):
        pytest.skip("the tiny tagger finds no brand in this query")
    titles = ["华为新款手机防摔", "新款手机防摔包邮"]  # the second names no brand at all
    m.manifest["query_brand_presence"] = False
    _, _, ok_off = m.score_table("华为手机", m.table(titles))
    m.manifest["query_brand_presence"] = True
    _, _, ok_on = m.score_table("华为手机", m.table(titles))
    assert ok_on[1] < 0.5 <= ok_off[1] and ok_on[0] == pytest.approx(ok_off[0], abs=0.05)
    ex = m.explain("华为手机", titles[1])
    assert ex.query_brands == ["华为"] and ex.present is not None and ex.present < 0.5
    assert "brand present" in ex.to_text()
    _, _, ok_q = m.score_table("手机", m.table(titles))  # no brand asked: no such term
    assert m.brand_presence("手机", m.table(titles), np.ones(3)) is None and ok_q[1] > 0.5


def test_words_besides_product_reads_the_brand_of_a_short_query():
    from ebrm.model import words_besides_product

    ents = [Entity("product", "开衫", 3, 5)]
    assert words_besides_product("贵人鸟开衫", ents) == ["贵人鸟"]
    ents = [Entity("product", "led", 3, 6), Entity("misc", "海尔", 0, 2)]
    assert words_besides_product("海尔 led", ents) == ["海尔"]
    # the last product is the head; a one-character rest or no product names nothing
    ents = [Entity("product", "手机", 0, 2), Entity("product", "壳", 2, 3, 1.0, True)]
    assert words_besides_product("手机壳", ents) == ["手机"]
    assert words_besides_product("陕 胶囊", [Entity("product", "胶囊", 2, 4)]) == []
    assert words_besides_product("华为", [Entity("brand", "华为", 0, 2)]) == []
    # an uncertain product candidate is not taken for the head
    assert words_besides_product("小米手机", [Entity("product", "手机", 2, 4, 0.3, True)]) == []


def test_text_presence_needs_the_query_brand_in_the_title(tiny):
    _, path = tiny
    m = EBRM.load(path, cache=None)
    m.manifest.update({"query_brand_presence": "text", "query_brand_fallback": True})
    brands = m.query_brands("华为手机")
    if not brands:
        pytest.skip("the tiny tagger finds neither a brand nor a product in this query")
    titles = ["华为新款手机防摔", "新款手机防摔包邮", "小米新款手机防摔"]
    table = m.table(titles)
    assert table.texts == titles
    c = np.append(m.qe_scores("华为手机", table.keys)[1], 1.0)
    assert m.brand_presence("华为手机", table, c).tolist() == [1.0, 0.0, 0.0]
    _, _, ok = m.score_table("华为手机", table)
    assert ok[1] == ok[2] == 0.0
    ex = m.explain("华为手机", titles[2])
    assert ex.present == 0.0 and "occurs in the title's text" in ex.to_text()
    assert any("not in the title" in n for n in ex.notes)
    with pytest.raises(ValueError, match="texts"):
        EntityTable([[], []], texts=["only one"])
    bare = EntityTable(m.entities(titles))
    with pytest.raises(ValueError, match="without the titles' texts"):
        m.brand_presence("华为手机", bare, c)


def test_product_backoff_keeps_a_missed_product_above_unrelated_titles(tiny):
    _, path = tiny
    m = EBRM.load(path, cache=None)
    if "手机" not in m.query_products("手机"):
        pytest.skip("the tiny tagger finds no product word in this query")
    titles = ["新款手机防摔包邮", "罗技正品鼠标垫包邮"]
    m.manifest["family"] = "product"  # (under Gödel's max a weak literal may change nothing)
    m.manifest["product_backoff"] = 0.0
    _, sat_off, _ = m.score_table("手机", m.table(titles))
    assert m.explain("手机", titles[1]).backoff is None
    m.manifest["product_backoff"] = 0.1
    _, sat_on, _ = m.score_table("手机", m.table(titles))
    # OR (the model's t-norm family) with 0.1 · [the query's product word is in the title]
    from ebrm.soft_logic import soft_or

    assert sat_on[0] == pytest.approx(soft_or(np.array([sat_off[0], 0.1]), m.family))
    assert sat_on[0] > sat_off[0]
    assert sat_on[1] == pytest.approx(sat_off[1])
    ex = m.explain("手机", titles[0])
    assert ex.backoff == pytest.approx(0.1) and "back-off" in ex.to_text()
    assert ex.to_json()["query_products"] == ["手机"]
    assert m.explain("手机", titles[1]).backoff == 0.0


def test_tags_do_not_depend_on_batch_neighbours(tiny):
    model, _ = tiny
    short = "华为手机"
    longer = ["罗技正品鼠标垫包邮新款大号加厚游戏桌垫", "小米新款手机防摔保护壳全包软壳"]
    assert model.tagger.tag([short])[0] == model.tagger.tag([*longer, short])[2]
    import torch

    t = model.tagger
    with torch.inference_mode():
        one = t.net(*t.batch([short]))[0]
        many = t.net(*t.batch([*longer, short]))[2, :len(short)]
    assert torch.allclose(one, many, atol=1e-5)  # padding is packed away, not read


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(alphabet="ab手机壳 ", max_size=8), max_size=8),
       words=st.lists(st.text(alphabet="ab手机壳", max_size=3), max_size=3))
def test_table_containing_agrees_with_a_plain_loop(texts, words):
    from deepbow.text import normalize

    t = EntityTable([[] for _ in texts], texts=texts)
    want = [any(w and w in normalize(x) for w in words) for x in texts]
    assert t.containing(words).tolist() == want


def test_or_weights_main_product_and_modifiers():
    from ebrm.table import main_products, or_weights

    # 游泳潜水套手机防水袋: 手机 (an untagged candidate) qualifies 防水袋, which the title sells
    ents = [Entity("product", "潜水套", 2, 5), Entity("product", "手机", 5, 7, 1.0, True),
            Entity("product", "防水袋", 7, 10), Entity("product", "套装", 10, 12)]
    assert main_products(ents) == {"防水袋"}  # bundle words are never the main product
    w = or_weights(ents, gamma=0.0, modifier=0.0, secondary=0.7)
    assert w == [0.7, 0.0, 1.0, 0.7]
    assert or_weights(ents, gamma=0.0) == [1.0, 1.0, 1.0, 1.0]  # the options off
    # a product word ending like the main one is the main one (智能手机 sells 手机)
    ents = [Entity("product", "手机", 0, 2), Entity("product", "智能手机", 4, 8)]
    assert or_weights(ents, secondary=0.5) == [1.0, 1.0]


def test_query_focus_asks_satisfies_of_the_product_words(tiny):
    model, path = tiny
    m = EBRM.load(path, cache=None)
    keys = m.table(["华为新款手机防摔", "罗技正品鼠标垫超薄"]).keys
    q = "新款华为手机"
    full = m.with_logic(query_focus="full").qe_scores(q, keys)
    focus = m.with_logic(query_focus="product")
    s, c = focus.qe_scores(q, keys)
    products = focus.query_products(q)
    assert products and np.allclose(s, np.max([focus._judge(p, keys)[:, 0] for p in products], 0))
    assert np.allclose(c, full[1])  # no-conflict is still asked of the whole query


def test_graded_brand_presence_is_the_share_of_the_words_found(tiny):
    model, path = tiny
    m = EBRM.load(path, cache=None).with_logic(query_brand_presence="share",
                                                query_brand_fallback=True)
    titles = ["华为新款手机防摔", "华为手机", "小米新款手机"]
    t = m.table(titles)
    q = "新款 防摔 手机"  # no brand: the words besides its product word must be there
    assert sorted(m.query_brands(q)) == ["新款", "防摔"]
    present = m.brand_presence(q, t, np.ones(len(t.keys) + 1))
    assert present.tolist() == [1.0, 0.0, 0.5]


def test_ebrm_finetune_refuses_too_few_pairs_before_loading(tmp_path):
    from ebrm.config import EbrmConfig
    from ebrm.train import train_on_pairs

    with pytest.raises(InputError, match="give --valid"):
        train_on_pairs(tmp_path / "no-model", [Pair("华为手机", "华为手机壳", 0)], None,
                       EbrmConfig(), tmp_path / "out", log=lambda s: None)
