"""The edit journal read as the user may have left it: records without arguments, with a
weight that is not a number, out of order; a value JSON cannot hold; ids with tabs."""

from __future__ import annotations

import json
import math

import pytest

from index.catalogue import Catalogue
from index.editor import journal_of
from index.journal import EditError
from tests.conftest import ITEMS, write_jsonl
from tests.reliability.conftest import clean_error

GOOD = {"v": 1, "seq": 1, "op": "ban", "args": {"word": "包邮"}, "by": "ann", "ts": "t"}
BAD_RECORDS = {
    "no args": ({"v": 1, "seq": 2, "op": "ban", "by": "x"}, "without an op, a seq and its args"),
    "args a list": ({**GOOD, "seq": 2, "args": ["包邮"]}, "must be an object"),
    "weight abc": ({**GOOD, "seq": 2, "op": "set",
                    "args": {"item": "a1", "word": "华为", "weight": "abc"}},
                   "weight must be a number, got 'abc'"),
    "weight true": ({**GOOD, "seq": 2, "op": "set",
                     "args": {"item": "a1", "word": "华为", "weight": True}},
                    "weight must be a number"),
    "factor too big": ({**GOOD, "seq": 2, "op": "scale", "args": {"word": "x", "factor": 1e9}},
                       "finite number in [0, 1000]"),
    "unknown op": ({**GOOD, "seq": 2, "op": "explode"}, "unknown edit 'explode'"),
    "unknown argument": ({**GOOD, "seq": 2, "args": {"word": "x", "evil": 1}},
                         "takes no argument evil"),
    "seq repeated": ({**GOOD}, "seq 1 does not follow 1"),
    "seq a string": ({**GOOD, "seq": "2"}, "without an op, a seq"),
    "undo of a later edit": ({**GOOD, "seq": 2, "op": "undo", "args": {"target": 5}},
                             "not an earlier edit"),
    "by a number": ({**GOOD, "seq": 2, "by": 5}, "'by' must be a string"),
    "figures a list": ({**GOOD, "seq": 2, "figures": [1]}, "'figures' must be an object"),
    "another version": ({**GOOD, "seq": 2, "v": 2}, "format version 2"),
    "a multi-line reason": ({**GOOD, "seq": 2, "op": "rule",
                             "args": {"category": "a\nb", "type": "brand", "mode": "ignore"}},
                            "one-line string"),
}


@pytest.mark.parametrize("case", BAD_RECORDS)
def test_a_bad_journal_record_is_an_error_naming_its_line(cat, cli, case):
    record, message = BAD_RECORDS[case]
    write_jsonl(cat.path / "edits.jsonl", [GOOD, record])
    where = f"{cat.path / 'edits.jsonl'}:2"
    with pytest.raises(EditError, match=message.replace("[", r"\[").replace("]", r"\]")):
        journal_of(cat.path).read()
    clean_error(cli("search", cat.path, "华为手机"), where, message)
    clean_error(cli("weights", "log", cat.path), where, message)
    clean_error(cli("weights", "ban", cat.path, "正品"), where)
    before = (cat.path / "edits.jsonl").read_bytes()
    clean_error(cli("weights", "import", cat.path, cat.path / "edits.jsonl"), where)
    assert (cat.path / "edits.jsonl").read_bytes() == before


def test_nan_or_infinity_is_never_written_to_the_journal(cat):
    from index.editor import append_edit

    for bad in (math.inf, math.nan):
        with pytest.raises(EditError, match="not saved"):
            append_edit(cat.editor.journal, "ban", {"word": "包邮"}, figures={"x": bad})
    assert not (cat.path / "edits.jsonl").exists() or cat.editor.log() == []
    for _ in range(2):  # a word scaled 1000× twice is the most: the product stays bounded
        cat.editor.scale("包邮", 1000.0)
    with pytest.raises(EditError, match="at most 1e\\+06"):
        cat.editor.scale("包邮", 1000.0)
    json.loads((cat.path / "edits.jsonl").read_text().splitlines()[-1])  # readable JSON


def test_many_scales_in_a_hand_written_journal_do_not_overflow(cat, tiny_model):
    write_jsonl(cat.path / "edits.jsonl", [
        {"v": 1, "seq": i, "op": "scale", "args": {"word": "手机", "factor": 1000.0},
         "by": "x"} for i in range(1, 120)])  # 1000^119 is inf as a float
    assert [h.id for h in cat.search("手机", k=3)]
    tiny_model.score("手机", ["华为手机"], edits=cat.journal_edits().state)


def test_a_weight_near_the_float_maximum_is_refused(cat, cli):
    clean_error(cli("weights", "set", cat.path, "a1", "华为", "1e308"),
                "above the largest title weight")
    clean_error(cli("weights", "set", cat.path, "a1", "华为", "inf"), "finite number")
    clean_error(cli("weights", "set", cat.path, "a1", "华为", "nan"), "finite number")
    assert cat.editor.log() == []


def test_ids_with_control_characters_are_refused_with_their_line(cli, tmp_path):
    (tmp_path / "c.tsv").write_text("a1\t华为手机\n", encoding="utf-8")
    write_jsonl(tmp_path / "c.jsonl", [ITEMS[0], {"id": "a\tb", "title": "小米手机"}])
    clean_error(cli("index", "build", tmp_path / "c.jsonl", "--out", tmp_path / "ix"),
                "c.jsonl:2", "control characters")
    (tmp_path / "c.tsv").write_text("a1\t华为手机\na\tb\t小米手机\n", encoding="utf-8")
    clean_error(cli("index", "build", tmp_path / "c.tsv", "--out", tmp_path / "ix"),
                "c.tsv:2", "3 tab-separated fields")
    assert not (tmp_path / "ix").exists()


@pytest.mark.parametrize("item_id", ["p 1", "商品#1", "a\\tb", "x" * 200])
def test_set_compact_undo_restores_the_original_weight(tiny_model, tmp_path, item_id):
    """The folded-edit keys are structural: any id round-trips through set, compact, undo."""
    items = [{**ITEMS[1], "id": item_id}, *ITEMS[2:]]
    cat = Catalogue.build(tiny_model, items, tmp_path / "ix")
    w = cat.editor.current_weight(item_id, "手机")
    rec = cat.editor.set_weight(item_id, "手机", w / 2)
    cat.compact()
    assert {x: y for x, y, _ in cat.editor.item_words(item_id)}["手机"] < w
    cat.editor.undo(rec["seq"])
    cat.compact()
    words = {x: y for x, y, _ in cat.editor.item_words(item_id)}
    assert words["手机"] == w
    assert Catalogue.open(cat.path, tiny_model, verify=True).folded_edits() == []


def test_folded_edits_of_the_older_form_are_read(cat, tiny_model):
    w = cat.editor.current_weight("a2", "手机")
    rec = cat.editor.set_weight("a2", "手机", w / 2)
    cat.compact()
    m = json.loads((cat.path / "manifest.json").read_text())
    [f] = m["folded_edits"]
    m["folded_edits"] = {f"{f['item']}\t{f['word']}": {"code": f["code"],
                                                       "original": f["original"]}}
    (cat.path / "manifest.json").write_text(json.dumps(m, ensure_ascii=False))
    cat = Catalogue.open(cat.path, tiny_model)
    assert cat.folded_edits() == [f]
    cat.editor.undo(rec["seq"])
    assert cat.editor.current_weight("a2", "手机") != w
    assert {x: y for x, y, _ in cat.editor.item_words("a2")}["手机"] == w


@pytest.mark.parametrize("change", ["update", "delete and add again"])
def test_a_weight_edit_stays_in_force_when_its_product_is_replaced_after_a_compaction(
        cat, change):
    """Found by the concurrency test: the compaction folded the edit into the product's
    postings; an update then replaced those postings, and the edit, still in the journal,
    had no effect any more."""
    def weight():
        return {w: x for w, x, _ in cat.editor.item_words("a2")}.get("手机")

    original = weight()
    rec = cat.editor.set_weight("a2", "手机", 0.5)
    edited = weight()
    cat.compact()
    if change == "update":
        cat.update([{**ITEMS[1]}])
    else:
        cat.delete(["a2"])
        cat.add([{**ITEMS[1]}])
    assert weight() == edited != original
    cat.compact()
    assert weight() == edited
    cat.editor.undo(rec["seq"])
    assert weight() == original
