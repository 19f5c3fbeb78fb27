"""Damaged index files: a clear IndexFileError when the index is opened (so no kernel ever
reads out of bounds), through the CLI an `Error:` line and exit 1, never a traceback or a
segmentation fault."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from index.catalogue import Catalogue
from index.inverted import IndexFileError, InvertedIndex
from tests.conftest import write_jsonl
from tests.reliability.conftest import clean_error


def seg_file(ix, kind: str):
    uid = json.loads((ix / "manifest.json").read_text())["segments"][0]["uid"]
    return ix / f"seg-{uid}.{kind}"


def damage_array(ix, kind: str, change) -> None:
    """Rewrite one array with the same size and type, so only a content check can tell."""
    f = seg_file(ix, f"{kind}.npy")
    a = np.load(f)
    change(a)
    size = f.stat().st_size
    np.save(f, a)
    assert f.stat().st_size == size


DAMAGE = {
    "doc ids out of range": ("docs", lambda a: a.__setitem__(slice(0, 3), 10**6),
                             "doc numbers outside"),
    "negative doc ids": ("docs", lambda a: a.__setitem__(0, -5), "doc numbers outside"),
    "doc ids decreasing in a term": ("docs", lambda a: a.__setitem__(slice(None), a[::-1]),
                                     "do not increase within a term"),
    "indptr not monotone": ("indptr", lambda a: a.__setitem__(len(a) // 2, 10**9),
                            "term offsets are damaged"),
    "indptr not starting at 0": ("indptr", lambda a: a.__setitem__(0, 1),
                                 "term offsets are damaged"),
    "max_impact below the impacts": ("max_impact", lambda a: a.__setitem__(slice(None), 0),
                                     "does not match the impacts"),
    "max_impact above the impacts": ("max_impact", lambda a: a.__setitem__(slice(None), 255),
                                     "does not match the impacts"),
    "block offsets beyond the blocks": ("bptr", lambda a: a.__setitem__(-1, 10**9),
                                        "block offsets do not match"),
    "block offsets decreasing": ("bptr", lambda a: a.__setitem__(slice(1, None), 0),
                                 "block offsets do not match"),
    "a block's last doc wrong": ("blk_last", lambda a: a.__setitem__(0, 10**6),
                                 "blk_last.npy: does not match"),
    "a block's maximum wrong": ("blk_max", lambda a: a.__setitem__(slice(None), 0),
                                "blk_max.npy: does not match"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_corrupt_postings_are_refused_at_open_search_delete_and_verify(cat, tiny_model, cli,
                                                                       case):
    kind, change, message = DAMAGE[case]
    damage_array(cat.path, kind, change)
    with pytest.raises(IndexFileError, match=message):
        Catalogue.open(cat.path, tiny_model)
    with pytest.raises(IndexFileError, match=message):
        InvertedIndex.load(cat.path)
    clean_error(cli("search", cat.path, "华为手机"), message)
    clean_error(cli("index", "delete", cat.path, "a1"), message)  # before: a segfault
    clean_error(cli("search", cat.path, "华为手机"), message)
    clean_error(cli("index", "verify", cat.path), "checksum mismatch")


def test_a_version_1_index_is_checked_before_its_block_maxima_are_computed(cat, tiny_model):
    """Version 1 has no block-max arrays: load computes them with a kernel, which must never
    see damaged postings."""
    m = json.loads((cat.path / "manifest.json").read_text())
    uid = m["segments"][0]["uid"]
    for name in ("bptr", "blk_last", "blk_max"):
        del m["files"][f"seg-{uid}.{name}.npy"]
    m["format_version"] = 1
    (cat.path / "manifest.json").write_text(json.dumps(m))
    assert len(Catalogue.open(cat.path, tiny_model).search("华为手机")) > 0
    damage_array(cat.path, "indptr", lambda a: a.__setitem__(len(a) // 2, 10**9))
    with pytest.raises(IndexFileError, match="term offsets are damaged"):
        Catalogue.open(cat.path, tiny_model)


def test_a_reader_that_opened_before_the_damage_refuses_it_at_its_next_view(cat, tiny_model):
    """The check runs whenever a view is opened, so a long-lived reader is covered too."""
    other = Catalogue.open(cat.path, tiny_model)
    cat.add([{"id": "z1", "title": "华为手机"}])
    uid = cat.index.segments[-1].uid
    f = cat.path / f"seg-{uid}.docs.npy"
    a = np.load(f)
    a[:] = 10**6
    np.save(f, a)
    with pytest.raises(IndexFileError, match="doc numbers outside"):
        other.search("华为手机")


def test_deleted_set_beyond_the_documents_is_refused(cat, tiny_model):
    from pyroaring import BitMap

    m = json.loads((cat.path / "manifest.json").read_text())
    f = cat.path / m["deleted"]
    f.write_bytes(BitMap([10**6]).serialize())
    m["files"][m["deleted"]]["bytes"] = f.stat().st_size
    (cat.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexFileError, match="beyond the 7 docs"):
        Catalogue.open(cat.path, tiny_model)


@pytest.mark.parametrize("kind", ["items.jsonl", "offsets.npy", "filters.json"])
def test_same_size_garbage_in_item_files_is_a_clear_error(cat, cli, kind):
    f = seg_file(cat.path, kind)
    f.write_bytes(os.urandom(f.stat().st_size))
    searches = [cli("search", cat.path, "华为手机", "--json"),
                cli("search", cat.path, "华为手机", "--filter", "brand=华为"),
                cli("weights", "show", cat.path, "a1")]
    failed = [r for r in searches if r.exit_code != 0]
    assert failed, "garbage read as data"
    for r in failed:
        clean_error(r, f.name)
    clean_error(cli("index", "verify", cat.path), f"{f.name}: checksum mismatch")
    if kind == "filters.json":  # a compaction writes the filters afresh from the items
        assert cli("index", "compact", cat.path).exit_code == 0
        assert cli("index", "verify", cat.path).exit_code == 0
    else:
        clean_error(cli("index", "compact", cat.path), f.name)


def test_items_that_are_json_but_not_items_are_refused(cat, cli):
    f = seg_file(cat.path, "items.jsonl")
    text = f.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    bad = json.dumps([1] * 3)
    bad = bad + " " * (len(first.encode()) - len(bad.encode()))
    f.write_bytes(text.encode().replace(first.encode(), bad.encode(), 1))
    clean_error(cli("weights", "show", cat.path, "a1"), "item 0 is damaged")


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


MANIFESTS = {
    "files a list": (lambda m: m.__setitem__("files", list(m["files"])), "'files'"),
    "segments a string": (_set("segments", "abc"), "'segments' must be a list"),
    "a file without bytes": (lambda m: [v.pop("bytes") for v in m["files"].values()],
                             "'bytes'"),
    "a file without sha256": (lambda m: [v.pop("sha256") for v in m["files"].values()],
                              "sha256"),
    "n_terms a string": (_set("n_terms", "x"), "'n_terms'"),
    "n_docs negative": (_set("n_docs", -1), "'n_docs'"),
    "n_docs wrong": (_set("n_docs", 99), "segments hold 7 docs"),
    "scale a string": (_set("scale", "x"), "'scale'"),
    "scale zero": (_set("scale", 0), "'scale'"),
    "a segment without uid": (lambda m: m["segments"][0].pop("uid"), "uid"),
    "a uid that is a path": (lambda m: m["segments"][0].__setitem__("uid", "../../x"), "uid"),
    "a segment a list": (lambda m: m["segments"].__setitem__(0, [1]), "uid"),
    "doc_base a float": (lambda m: m["segments"][0].__setitem__("doc_base", 0.5), "doc_base"),
    "deleted missing": (lambda m: m.pop("deleted"), "'deleted'"),
    "deleted a path": (_set("deleted", "/etc/passwd"), "'deleted'"),
    "a file name with a slash": (lambda m: m["files"].__setitem__("../x", m["files"][
        m["deleted"]]), "not a file name"),
    "model_id a list": (_set("model_id", [1]), "model_id"),
    "folded_edits damaged": (_set("folded_edits", [{"item": 1}]), "folded_edits"),
    "a list": (None, "format is None"),
    "format_version a string": (_set("format_version", "1"), "format_version"),
}


@pytest.mark.parametrize("case", MANIFESTS)
def test_a_manifest_of_the_wrong_shape_is_refused_in_search_and_verify(cat, cli, case,
                                                                       tmp_path):
    change, message = MANIFESTS[case]
    write_jsonl(tmp_path / "new.jsonl", [{"id": "n1", "title": "华为手机"}])
    m = json.loads((cat.path / "manifest.json").read_text())
    if change is None:
        m = [m]
    else:
        change(m)
    (cat.path / "manifest.json").write_text(json.dumps(m))
    clean_error(cli("search", cat.path, "华为手机"), "manifest.json", message)
    clean_error(cli("index", "verify", cat.path), "manifest.json", message)
    clean_error(cli("index", "add", cat.path, tmp_path / "new.jsonl"), message)


def test_manifest_not_json_or_not_utf8(cat, cli):
    (cat.path / "manifest.json").write_bytes(b"\xff\xfe{")
    clean_error(cli("search", cat.path, "华为手机"), "corrupt manifest")
    (cat.path / "manifest.json").write_text("[" * 100000)
    clean_error(cli("index", "verify", cat.path), "corrupt manifest")


def test_a_missing_segment_file_is_named(cat, cli):
    seg_file(cat.path, "impacts.npy").unlink()
    clean_error(cli("search", cat.path, "华为手机"), "missing file", "impacts.npy")
