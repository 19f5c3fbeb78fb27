"""An index's Milvus copy kept in step (index/milvus_link.py), the facade's Milvus calls and
the studio served from Milvus. Needs the `scale` extra (pymilvus, milvus-lite 2.5)."""

import json

import pytest

from index.catalogue import Catalogue
from index.editor import compile_edits
from index.edits import replay
from index.rerank import Reranker
from index.studio import Studio
from tests.index.test_milvus import items, same

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

import deepbow  # noqa: E402  (after the skips: needs the scale extra)
import index.milvus_link as ml  # noqa: E402
from index.milvus import MilvusError  # noqa: E402


@pytest.fixture
def linked(tiny_model, tmp_path):
    cat = Catalogue.build(tiny_model, items(), tmp_path / "ix")
    assert ml.export_linked(cat, str(tmp_path / "l.db"), "c") == 160
    return cat


def served(cat):
    return ml.open_linked(cat.path, cat.model)


def test_link_file(linked, tmp_path):
    link = json.loads((linked.path / "milvus.json").read_text())
    assert link["uri"] == str((tmp_path / "l.db").resolve()) and link["collection"] == "c"
    assert link["index_state"] == ml.index_state(linked.path) and link["journal_seq"] == 0
    with served(linked) as s:
        same(linked, s)
    (linked.path / "milvus.json").write_text("{oops")
    with pytest.raises(MilvusError, match="unreadable"):
        served(linked)
    (linked.path / "milvus.json").unlink()
    with pytest.raises(MilvusError, match="no Milvus copy"):
        served(linked)
    assert ml.sync(linked) is None


def test_changes_follow_by_id(linked):
    before = ml.index_state(linked.path)
    linked.add([{"id": "new", "title": "华为手机正品包邮", "brand": "华为", "product": "手机"}])
    assert "1 upserted, 0 deleted" in ml.sync(linked, ["new"], before)
    before = ml.index_state(linked.path)
    gone = [h.id for h in linked.search("华为手机", 3)]
    linked.delete(gone)
    assert "0 upserted, 3 deleted" in ml.sync(linked, gone, before)
    with served(linked) as s:
        same(linked, s)
        same(linked, s, filters={"brand": ["华为"]})
        assert s.index.count() == linked.index.n_alive


def test_unfollowed_change_and_compaction_export_again(linked):
    linked.update([{"id": "i3", "title": "罗技鼠标垫", "brand": "罗技"}])
    with pytest.raises(MilvusError, match="behind: the index changed.*sync-milvus"):
        served(linked)
    stale = ml.index_state(linked.path)
    linked.delete(["i4"])
    assert ml.sync(linked, ["i4"], stale).startswith("exported again")  # ids alone not enough
    linked.compact()
    assert ml.sync(linked).startswith("exported again")
    with served(linked) as s:
        same(linked, s)


def test_item_edits_follow_word_edits_need_nothing(linked):
    last = linked.search("小米手机", 10)[-1].id
    rec = linked.editor.set_weight(last, "手机", 250 * linked.index.scale)
    with pytest.raises(MilvusError, match="1 per-item weight edit"):
        served(linked)
    assert "1 edited item(s)" in ml.sync(linked)
    linked.editor.ban("小米")
    linked.editor.link("鼠标", "鼠标垫", 0.7)
    with served(linked) as s:
        same(linked, s)
    linked.editor.undo(rec["seq"])
    assert ml.sync(linked).endswith("1 edited item(s) rewritten")
    assert ml.sync(linked).endswith("in step")
    with served(linked) as s:
        same(linked, s)


def test_facade(linked, tiny_model, tmp_path):
    with deepbow.open_milvus(index=linked.path, model=tiny_model) as s:
        same(linked, s)
    linked.editor.ban("华为")
    with deepbow.open_milvus(str(tmp_path / "l.db"), "c", tiny_model, index=linked.path) as s:
        same(linked, s)  # the journal named by index= applies
    with deepbow.open_milvus(str(tmp_path / "l.db"), "c", tiny_model) as s:
        same(linked, s, local_edits=compile_edits(replay([]), linked))  # no journal: no edits
    cat = Catalogue.build(tiny_model, items(40), tmp_path / "ix2")
    assert deepbow.export_milvus(cat, str(tmp_path / "f.db"), "d") == 40
    cat.delete(["i1"])
    assert "exported again: 39" in deepbow.sync_milvus(cat)
    with pytest.raises(deepbow.InputError, match="collection"):
        deepbow.open_milvus(str(tmp_path / "f.db"), model=tiny_model)


def test_studio_from_milvus(linked, tiny_ebrm_dir, tmp_path):
    from ebrm.model import EBRM

    ebrm = EBRM.load(tiny_ebrm_dir, cache=None)
    local = Studio(linked, Reranker(linked, ebrm))
    with served(linked) as s:
        studio = Studio(linked, Reranker(s, ebrm), served=s, after_edit=lambda: ml.sync(linked))
        assert studio.info()["backend"] == "milvus"
        for scorer in ("deepbow", "ebrm"):
            assert studio.search("华为手机", 8, scorer) == local.search("华为手机", 8, scorer)
        last = studio.search("小米手机", 10)["hits"][-1]["id"]
        rec = studio.edit({"op": "set", "args": {"item": last, "word": "手机", "weight": 1.5}})
        assert "warning" not in rec
        assert studio.search("小米手机", 10) == local.search("小米手机", 10)
        studio.after_edit = lambda: (_ for _ in ()).throw(MilvusError("Milvus is gone"))
        rec = studio.undo({"seq": rec["seq"]})
        assert "recorded, but Milvus is gone" in rec["warning"]


def test_rebuild_keeps_the_link_and_exports_again(linked, tiny_model):
    Catalogue.build(tiny_model, items(90, seed=9), linked.path, overwrite=True)
    assert (linked.path / "milvus.json").is_file()
    with pytest.raises(MilvusError, match="behind"):
        served(linked)
    cat = Catalogue.open(linked.path, tiny_model)
    assert ml.sync(cat) == f"exported again: 90 items → c at {ml.read_link(cat.path).uri}"
    with served(cat) as s:
        same(cat, s)
