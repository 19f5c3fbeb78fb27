"""Weight editing: the journal, its replay, edits applied to search and explain, undo, crash
recovery, concurrent writers, export/import and compaction."""

from __future__ import annotations

import json
import multiprocessing as mp

import numpy as np
import pytest

from index.catalogue import Catalogue
from index.editor import append_edit, journal_of
from index.edits import replay
from index.journal import EditError
from tests.conftest import ITEMS


def ranking(cat, q, k=10):
    return [(h.id, h.score) for h in cat.search(q, k)]


def brute_with_explain(cat, q):
    """Every item's score from explain (which reads the same edits), ranked."""
    s = [(it["id"], cat.explain(q, it["id"]).score) for it in ITEMS]
    return sorted([x for x in s if x[1] > 0], key=lambda x: (-x[1], x[0]))


def assert_search_is_explain(cat, q):
    hits = ranking(cat, q)
    want = brute_with_explain(cat, q)
    assert sorted(hits, key=lambda x: (-x[1], x[0])) == want
    for item_id, score in hits:
        ex = cat.explain(q, item_id)
        assert ex.score == score
        assert ex.score == pytest.approx(sum(r.contribution for r in ex.rows), abs=1e-12)


def test_set_weight_changes_score_exactly_as_explain_says(cat):
    q = "华为手机"
    before = dict(ranking(cat, q))
    ex = cat.explain(q, "a2")
    row = next(r for r in ex.rows if r.word == "手机")
    rec = cat.editor.set_weight("a2", "手机", row.title_weight * 3, reason="test", query=q)
    assert rec["figures"]["weight_before"] == pytest.approx(row.title_weight)
    assert [h["id"] for h in rec["figures"]["before"]] == list(before)
    after = dict(ranking(cat, q))
    ex2 = cat.explain(q, "a2")
    row2 = next(r for r in ex2.rows if r.word == "手机")
    assert row2.title_weight == pytest.approx(3 * row.title_weight, rel=0.02)
    assert after["a2"] == pytest.approx(before["a2"] + row2.contribution - row.contribution,
                                        abs=1e-12)
    assert [h["id"] for h in rec["figures"]["after"]] == list(after)
    assert_search_is_explain(cat, q)


def test_set_adds_a_word_the_title_lacks(cat):
    assert "a6" not in dict(ranking(cat, "手机"))
    cat.editor.set_weight("a6", "手机", 0.5)
    assert "a6" in dict(ranking(cat, "手机"))
    assert_search_is_explain(cat, "手机")


def test_scale_ban_link_and_undo_restore_exact_scores(cat):
    q = "罗技鼠标"
    base = ranking(cat, q)
    r1 = cat.editor.scale("鼠标", 2.0)
    boosted = dict(ranking(cat, q))
    assert boosted["a5"] > dict(base)["a5"]
    assert_search_is_explain(cat, q)
    r2 = cat.editor.ban("罗技")
    assert all(r.word != "罗技" for r in cat.explain(q, "a4").rows)
    assert_search_is_explain(cat, q)
    cat.editor.undo(r2["seq"])
    cat.editor.undo(r1["seq"])
    assert ranking(cat, q) == base
    # undo of an undo puts the edit back
    u = cat.editor.log()[-1]
    cat.editor.undo(u["seq"])
    assert ranking(cat, q) == list(boosted.items())
    with pytest.raises(EditError, match="already undone"):
        cat.editor.undo(r2["seq"])
    # a link: 手机 in the query also matches 充电宝 in titles
    before = dict(ranking(cat, "手机"))
    assert "a7" not in before
    rec = cat.editor.link("手机", "充电宝", 0.5)
    assert "a7" in dict(ranking(cat, "手机"))
    assert any(r.word == "充电宝" and r.query_expanded for r in cat.explain("手机", "a7").rows)
    assert_search_is_explain(cat, "手机")
    cat.editor.unlink("手机", "充电宝")
    assert dict(ranking(cat, "手机")) == before
    cat.editor.undo(rec["seq"])


def test_bad_edits_are_refused_and_change_nothing(cat):
    q = "华为手机"
    base = ranking(cat, q)
    bad = [lambda: cat.editor.set_weight("nope", "手机", 1.0),
           lambda: cat.editor.set_weight("a1", "手机", float("nan")),
           lambda: cat.editor.set_weight("a1", "手机", -1),
           lambda: cat.editor.set_weight("a1", "手机", 1e9),
           lambda: cat.editor.scale("手机", float("inf")),
           lambda: cat.editor.scale("从来没有的词语", 2.0),
           lambda: cat.editor.link("手机", "手机"),
           lambda: cat.editor.unlink("手机", "鼠标"),
           lambda: cat.editor.undo(99),
           lambda: cat.editor.pin("手机", "colour", "红", s=1.0),
           lambda: cat.editor.pin("手机", "product", "手机"),
           lambda: cat.editor.rule("手机", "brand", "sometimes")]
    for fn in bad:
        with pytest.raises(EditError):
            fn()
    assert cat.editor.log() == [] and ranking(cat, q) == base
    cat.editor.scale("从来没有的词语", 2.0, create=True)  # explicit create: allowed


def test_journal_survives_a_torn_write(cat):
    cat.editor.scale("鼠标", 2.0)
    scores = ranking(cat, "鼠标")
    with open(cat.editor.journal.path, "ab") as fh:
        fh.write(b'{"v": 1, "seq": 2, "op": "ban", "ar')  # the crash: half a line
    assert ranking(cat, "鼠标") == scores  # the torn line is ignored
    rec = cat.editor.ban("罗技")
    assert rec["seq"] == 2  # and cut off by the next append
    lines = cat.editor.journal.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(json.loads(x) for x in lines)


def test_journal_versions_and_corruption(tmp_path):
    p = tmp_path / "edits.jsonl"
    rec = {"seq": 1, "op": "ban", "args": {"word": "x"}}
    p.write_text(json.dumps({**rec, "v": 2}) + "\n")
    with pytest.raises(EditError, match="format version 2"):
        journal_of(p).read()
    p.write_text(json.dumps(rec) + "\n")
    with pytest.raises(EditError, match="format version None"):
        journal_of(p).read()
    p.write_text("not json\n" + json.dumps({**rec, "v": 1}) + "\n")
    with pytest.raises(EditError, match="edits.jsonl:1"):
        journal_of(p).read()


def _writer(path: str, word: str, n: int) -> None:
    j = journal_of(path)
    for i in range(n):
        append_edit(j, "scale", {"word": word, "factor": 1.0 + i / 100}, by=word)


@pytest.mark.slow
def test_concurrent_writers_do_not_corrupt_the_journal(tmp_path):
    path = str(tmp_path / "edits.jsonl")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in ("甲", "乙", "丙")]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    recs = journal_of(path).read()
    assert len(recs) == 120 and [r["seq"] for r in recs] == list(range(1, 121))
    assert replay(recs).scales["甲"] == pytest.approx(np.prod([1 + i / 100 for i in range(40)]))


def test_export_import_on_a_fresh_copy_gives_identical_scores(cat, tiny_model, tmp_path):
    ed = cat.editor
    ed.set_weight("a3", "华为", 0.01, by="ann", reason="not a phone")
    r = ed.scale("防摔", 0.5)
    ed.link("手机", "充电宝", 0.3)
    ed.undo(r["seq"])
    ed.pin("*手机*", "product", "手机壳", s=0.0)
    ed.rule("手机", "brand", "must_match")
    out = tmp_path / "review.jsonl"
    assert ed.export(out) == 6
    fresh = Catalogue.build(tiny_model, ITEMS, tmp_path / "fresh")
    recs = fresh.editor.import_(out)
    assert len(recs) == 6 and recs[0]["imported"]["by"] == "ann"
    for q in ("华为手机", "手机", "鼠标", "防摔"):
        assert ranking(fresh, q) == ranking(cat, q)
    assert fresh.editor.diff(cat.editor.journal.path) == {"only_here": [], "only_there": []}
    fresh.editor.ban("鼠标")
    assert fresh.editor.diff(cat.editor.journal.path)["only_here"] == ["scale 鼠标 × 0"]


def test_edits_apply_in_another_process_view_at_once(cat, tiny_model):
    other = Catalogue.open(cat.path, tiny_model)  # a second handle, as a server would hold
    base = ranking(other, "鼠标")
    cat.editor.ban("鼠标")
    assert ranking(other, "鼠标") != base


def test_compact_folds_item_edits_and_keeps_the_journal(cat):
    q = "华为手机"
    w = cat.editor.current_weight("a2", "手机")
    rec = cat.editor.set_weight("a2", "手机", 2 * w)
    edited = ranking(cat, q)
    cat.compact()
    assert cat.journal_edits().overlay == {}  # now in the postings
    assert ranking(cat, q) == edited
    assert len(cat.editor.log()) == 1
    reopened = Catalogue.open(cat.path, cat.model)
    assert ranking(reopened, q) == edited
    reopened.editor.undo(rec["seq"])  # the original weight comes back from the manifest
    restored = ranking(reopened, q)
    assert "a2" not in dict(restored) or dict(restored)["a2"] < dict(edited)["a2"]
    reopened.compact()
    assert ranking(reopened, q) == restored
    assert_search_is_explain(reopened, q)


def test_weights_cli(cat, tiny_model_dir, tmp_path):
    from click.testing import CliRunner

    from cli.main import main

    run = CliRunner().invoke
    ix = str(cat.path)
    m = ["--model", str(tiny_model_dir)]
    r = run(main, ["weights", "show", ix, "a1", *m])
    assert r.exit_code == 0 and "手机" in r.output
    r = run(main, ["weights", "scale", ix, "手机", "3", "--query", "手机", "--reason", "boost",
                   "--by", "ann", *m])
    assert r.exit_code == 0, r.output
    assert "#1 scale 手机 × 3" in r.output and "by ann" in r.output and "before → after" in r.output
    r = run(main, ["weights", "ban", ix, "从来没有的词语", *m])
    assert r.exit_code != 0 and "not a word of the model's vocabulary" in r.output
    r = run(main, ["weights", "set", ix, "a9", "手机", "1", *m])
    assert r.exit_code != 0 and "unknown item id" in r.output
    r = run(main, ["weights", "undo", ix, "1", *m])
    assert r.exit_code == 0 and "undo #1" in r.output
    r = run(main, ["weights", "log", ix, *m])
    assert "(undone)" in r.output and "#2 undo #1" in r.output
    out = tmp_path / "j.jsonl"
    r = run(main, ["weights", "export", ix, str(out), *m])
    assert r.exit_code == 0 and len(out.read_text().splitlines()) == 2
    r = run(main, ["weights", "diff", ix, str(out), *m])
    assert "same effect" in r.output
    for cmd in ("show", "set", "scale", "ban", "link", "unlink", "pin", "rule", "log", "undo",
                "export", "import", "diff"):
        assert run(main, ["weights", cmd, "--help"]).exit_code == 0
    assert run(main, ["studio", "--help"]).exit_code == 0


def test_entity_pins_and_rules_change_ebrm_scores(cat, tiny_ebrm_dir):
    from ebrm.model import EBRM
    from index.editor import Editor
    from index.rerank import Reranker

    rr = Reranker(cat, EBRM.load(tiny_ebrm_dir, cache=None))
    editor = Editor(cat, rr)
    q = "华为手机"
    ex = rr.entity_explain(q, "a1")
    prod = next(r for r in ex.rows if r.type == "product" and not r.candidate)
    rec = editor.pin(q, "product", prod.text, s=0.0, query=q, reason="test")
    assert rec["figures"]["scorer"] == "ebrm"
    pinned = rr.entity_explain(q, "a1")
    row = next(r for r in pinned.rows if r.text == prod.text and r.type == "product")
    assert row.pinned and row.s == 0.0 and pinned.score < ex.score
    cat.editor.undo(rec["seq"])
    assert rr.entity_explain(q, "a1").score == pytest.approx(ex.score, abs=1e-12)
    # a glob pattern pins every matching query
    cat.editor.pin("*手机", "product", prod.text, s=0.0)
    assert rr.entity_explain("小米手机", "a1").sat < 0.5
    # type rules: ignore drops brands from the logic, must_match makes a conflict fatal
    other = rr.entity_explain(q, "a2")  # 小米: another brand
    cat.editor.rule("*", "brand", "ignore")
    ignored = rr.entity_explain(q, "a2")
    assert ignored.ok >= other.ok and "ignored (rule)" in ignored.to_text()
    cat.editor.rule("*", "brand", "must_match")
    fatal = rr.entity_explain(q, "a2")
    assert fatal.sat <= other.sat * (1 + 1e-9) and "must-match" in fatal.to_text()


def test_weights_show_entities(cat, tiny_model_dir, tiny_ebrm_dir, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli.main import main

    monkeypatch.setenv("DEEPBOW_CACHE", str(tmp_path / "cache"))
    cat.editor.pin("华为手机", "brand", "华为", c=0.0)
    r = CliRunner().invoke(main, ["weights", "show", str(cat.path), "a1", "华为手机",
                                  "--entities", "--model", str(tiny_model_dir),
                                  "--ebrm-model", str(tiny_ebrm_dir)])
    assert r.exit_code == 0, r.output
    assert "EBRM score" in r.output and "[pinned]" in r.output


def test_journal_applies_to_pair_scoring_and_explain(cat, tiny_model_dir, tmp_path):
    from click.testing import CliRunner

    import deepbow
    from cli.main import main

    m = deepbow.load(tiny_model_dir)
    q, t = "华为手机", "华为新款手机防摔"
    base = m.score(q, [t])[0]
    cat.editor.ban("华为")
    edits = deepbow.read_edits(cat.path)
    banned = m.score(q, [t], edits)[0]
    assert banned < base and banned == pytest.approx(cat.explain(q, "a1").score, abs=1e-12)
    assert all(r.word != "华为" for r in m.explain(q, t, edits).rows)
    assert m.score_pairs([(q, t)], edits=edits)[0] == banned
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(json.dumps({"query": q, "title": t}, ensure_ascii=False) + "\n")
    out = tmp_path / "o.jsonl"
    r = CliRunner().invoke(main, ["score", "--pairs", str(pairs), "--out", str(out), "--model",
                                  str(tiny_model_dir), "--edits", str(cat.path)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["score"] == pytest.approx(banned, abs=1e-6)


def test_a_rebuild_keeps_the_journal(cat, tiny_model):
    cat.editor.ban("鼠标")
    again = Catalogue.build(tiny_model, ITEMS, cat.path, overwrite=True)
    assert len(again.editor.log()) == 1 and "a5" not in dict(ranking(again, "鼠标"))
