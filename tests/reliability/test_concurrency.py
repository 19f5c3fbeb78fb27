"""Several processes writing one index at once (adds, deletes, updates, compactions, weight
edits and searches), and readers racing writers: every acknowledged change is there after,
`index verify` is clean, and no reader sees an error."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

import index.inverted
from index.catalogue import Catalogue
from index.editor import title_code
from tests.conftest import ITEMS
from tests.reliability import workers
from tests.reliability.conftest import orphan_files

N_PROCESSES, N_OPERATIONS = 4, 50


def expected_state(logs: list[list[dict]]) -> tuple[dict, list[dict]]:
    """Items (id → title) and acknowledged edits that the logs of the writers promise."""
    items = {it["id"]: it["title"] for it in ITEMS}
    edits = []
    for log in logs:
        for e in log:
            if e["op"] in ("add", "update"):
                items.update({it["id"]: it["title"] for it in e["items"]})
            elif e["op"] == "delete":
                del items[e["id"]]
            elif e["op"] in ("set", "scale"):
                edits.append(e)
    return items, edits


def check_every_acknowledged_change(cat: Catalogue, logs: list[list[dict]]) -> None:
    items, edits = expected_state(logs)
    got = {cat.item(d)["id"]: cat.item(d)["title"] for d in cat.id_map().values()}
    assert got == items
    journal = {r["seq"]: r for r in cat.editor.log()}
    assert len(journal) == len(edits)  # nothing lost, nothing appended without an answer
    for e in edits:
        assert (journal[e["seq"]]["op"], journal[e["seq"]]["args"]) == (e["op"], e["args"])
    last_set: dict = {}
    for e in sorted(edits, key=lambda e: e["seq"]):
        if e["op"] == "set":
            last_set[(e["args"]["item"], e["args"]["word"])] = e["args"]["weight"]
    for (item, word), weight in last_set.items():  # each in force, compactions or not
        if item in items:
            want = title_code(cat, weight) * cat.index.scale
            assert cat.editor.current_weight(item, word) == want or dict(
                (w, x) for w, x, _ in cat.editor.item_words(item)).get(word, 0.0) == want


@pytest.mark.slow
def test_writers_in_parallel_lose_no_acknowledged_change(cat, tiny_model, tiny_model_dir,
                                                        tmp_path):
    path = cat.path
    ctx = mp.get_context("spawn")
    logs = [tmp_path / f"w{i}.jsonl" for i in range(N_PROCESSES)]
    procs = [ctx.Process(target=workers.writer, args=(str(path), str(tiny_model_dir), i,
                                                      N_OPERATIONS, str(logs[i])))
             for i in range(N_PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * N_PROCESSES
    entries = [[json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
               for f in logs]
    errors = [e for log in entries for e in log if e["op"] == "error"]
    assert errors == []
    assert sum(len(log) for log in entries) == N_PROCESSES * N_OPERATIONS
    kinds = {e["op"] for log in entries for e in log}
    assert kinds >= {"add", "delete", "update", "compact", "set", "scale", "search"}
    cat = Catalogue.open(path, tiny_model, verify=True)
    check_every_acknowledged_change(cat, entries)
    assert orphan_files(path) == set()


def test_a_view_keeps_reading_after_a_compaction_removed_its_files(cat, tiny_model,
                                                                   monkeypatch):
    """A search that started on the old manifest (refresh already done) while a compaction
    removes that manifest's files: the view holds its files open."""
    cat.delete(["a7"])
    reader = Catalogue.open(cat.path, tiny_model)
    want = [(h.id, h.score, h.title) for h in reader.search("华为手机", k=5)]
    writer = Catalogue.open(cat.path, tiny_model)
    writer.compact()
    old = set(reader.stores)
    assert not any((cat.path / f"seg-{uid}.items.jsonl").exists() for uid in old)
    monkeypatch.setattr(reader, "refresh", lambda: None)  # the race: no reread in between
    assert [(h.id, h.score, h.title) for h in reader.search("华为手机", k=5)] == want
    assert reader.search("华为手机", filters={"brand": ["华为"]})
    monkeypatch.undo()
    assert [(h.id, h.score, h.title) for h in reader.search("华为手机", k=5)] == want
    assert set(reader.stores) != old


def test_an_open_that_races_a_compaction_starts_again_on_the_new_manifest(cat, tiny_model,
                                                                          monkeypatch):
    """The manifest is read, then a writer swaps it and removes the files it named: the
    reader finds a file missing, sees a new manifest, and opens that one instead."""
    cat.add([{"id": "b1", "title": "华为手机壳"}])
    real_load, raced = index.inverted.InvertedIndex.load, []

    def load_with_a_compaction_in_between(path, *a, **k):
        if not raced:
            raced.append(True)
            manifest = index.inverted.read_index_manifest(path)
            Catalogue.open(path, tiny_model).compact()
            monkeypatch.setattr(index.inverted, "read_index_manifest", lambda p: manifest)
            try:
                return real_load(path, *a, **k)
            finally:
                monkeypatch.undo()
        return real_load(path, *a, **k)

    monkeypatch.setattr(index.inverted.InvertedIndex, "load",
                        staticmethod(load_with_a_compaction_in_between))
    other = Catalogue.open(cat.path, tiny_model)
    assert raced and len(other.index.segments) == 1 and "b1" in other.id_map()
