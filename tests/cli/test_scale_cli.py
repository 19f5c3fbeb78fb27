"""The scale commands through click: export-milvus, search/explain --backend milvus, changes
followed, encode-catalogue, load-milvus, sync-milvus, and --ray (slow). Needs the `scale`
extra; the usage errors that need none of it run without."""

import json

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.conftest import ITEMS
from tests.index.test_shards import catalogue


@pytest.fixture
def run(tiny_model_dir):
    runner = CliRunner()

    def invoke(*args, ok=True):
        r = runner.invoke(main, [*args, "--model", str(tiny_model_dir)],
                          catch_exceptions=False)
        assert (r.exit_code == 0) == ok, r.output
        return r

    return invoke


@pytest.fixture
def built(run, tmp_path):
    cat = tmp_path / "cat.jsonl"
    cat.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n"
                           for it in catalogue(120)), encoding="utf-8")
    run("index", "build", str(cat), "--out", str(tmp_path / "ix"))
    return tmp_path / "ix"


def hits(run, *args):
    return [json.loads(line) for line in run("search", *args, "--json").output.splitlines()]


def test_usage_errors(run, built, tmp_path):
    assert "--ray took" in run("index", "build", "--ray", str(tmp_path / "cat.jsonl"),
                               "--out", str(tmp_path / "o"), ok=False).output
    assert "give INDEX_DIR" in run("search", "--backend", "milvus", str(built), "华为手机",
                                   ok=False).output
    assert "--backend milvus needs" in run("search", "--backend", "milvus", "华为手机",
                                           ok=False).output
    assert "go with --backend milvus" in run("search", str(built), "手机", "--collection", "c",
                                             ok=False).output
    assert "TITLE or --item" in run("explain", "华为手机", ok=False).output
    assert "--item needs --index" in run("explain", "华为手机", "--item", "i1", ok=False).output
    assert "no Milvus copy" in run("index", "sync-milvus", str(built), ok=False).output


def test_serve_from_milvus_and_follow_changes(run, built, tmp_path):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    db, ix = str(tmp_path / "m.db"), str(built)
    assert "exported 120 items" in run("index", "export-milvus", ix, "--uri", db,
                                       "--collection", "c").output
    for q in ("华为手机", "鼠标垫"):
        local = hits(run, ix, q, "-k", "20")
        assert local == hits(run, "--index", ix, "--backend", "milvus", q, "-k", "20")
        assert local == hits(run, "--backend", "milvus", "--uri", db, "--collection", "c", q,
                             "-k", "20")
    local = run("explain", "华为手机", "--item", "i7", "--index", ix, "--json").output
    assert local == run("explain", "华为手机", "--item", "i7", "--index", ix, "--backend",
                        "milvus", "--json").output
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps(ITEMS[0], ensure_ascii=False) + "\n", encoding="utf-8")
    assert "1 upserted" in run("index", "add", ix, str(more)).output
    assert "1 deleted" in run("index", "delete", ix, "i3").output
    top = hits(run, ix, "小米手机", "-k", "10")[0]["hits"][-1]["id"]
    assert "1 edited item" in run("weights", "set", ix, top, "手机", "1.5").output
    run("weights", "ban", ix, "华为")
    assert "exported again" in run("index", "compact", ix).output
    for q in ("华为手机", "小米手机"):
        assert hits(run, ix, q) == hits(run, "--index", ix, "--backend", "milvus", q)
    queries = tmp_path / "q.txt"
    queries.write_text("华为手机\n鼠标垫\n", encoding="utf-8")
    assert run("search", ix, "--queries", str(queries)).output == run(
        "search", "--index", ix, "--backend", "milvus", "--queries", str(queries),
        "--threads", "2").output
    assert run("search", "--backend", "milvus", "--uri", db, "--collection", "c", "--edits", ix,
               "--queries", str(queries)).output == run("search", ix, "--queries",
                                                        str(queries)).output


def test_unfollowed_change_then_sync(run, built, tmp_path, tiny_model):
    pytest.importorskip("milvus_lite")
    import deepbow

    ix = str(built)
    run("index", "export-milvus", ix, "--uri", str(tmp_path / "m.db"), "--collection", "c")
    deepbow.open_index(built, tiny_model).delete(["i1"])  # from Python, without a sync
    assert "behind" in run("search", "--index", ix, "--backend", "milvus", "手机",
                           ok=False).output
    assert "exported again: 119" in run("index", "sync-milvus", ix).output
    assert hits(run, ix, "手机") == hits(run, "--index", ix, "--backend", "milvus", "手机")


def test_encode_catalogue_and_load_milvus(run, built, tmp_path):
    pytest.importorskip("pyarrow")
    pytest.importorskip("milvus_lite")
    from index.vectors import read_vectors

    out = tmp_path / "v.parquet"
    assert "encoded 120 items" in run("encode-catalogue", str(tmp_path / "cat.jsonl"),
                                      "--out", str(out)).output
    assert "exists" in run("encode-catalogue", str(tmp_path / "cat.jsonl"), "--out", str(out),
                           ok=False).output
    _, table = read_vectors(out, verify=True)
    assert table.column("id").to_pylist() == [f"i{i}" for i in range(120)]
    db = str(tmp_path / "v.db")
    assert "loaded 120 items" in run("index", "load-milvus", str(out), "--uri", db,
                                     "--collection", "v").output
    assert hits(run, str(built), "华为手机") == hits(run, "--backend", "milvus", "--uri", db,
                                                  "--collection", "v", "华为手机")


@pytest.mark.slow
def test_build_and_add_on_ray_are_bit_identical(run, tmp_path, tiny_model):
    pytest.importorskip("ray")
    from index.catalogue import Catalogue

    items = catalogue(120)
    shards = tmp_path / "shards"
    shards.mkdir()
    for name, part in (("a.jsonl", items[:50]), ("b.jsonl", items[50:100])):
        (shards / name).write_text("".join(json.dumps(it, ensure_ascii=False) + "\n"
                                           for it in part), encoding="utf-8")
    more = tmp_path / "c.jsonl"
    more.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items[100:]),
                    encoding="utf-8")
    for out, ray in (("p", []), ("r", ["--ray", "--ray-actors", "2"])):
        run("index", "build", str(shards), "--out", str(tmp_path / out), *ray)
        run("index", "add", str(tmp_path / out), str(more), *ray)
    p, r = (Catalogue.open(tmp_path / x, tiny_model) for x in "pr")
    assert p.id_map() == r.id_map() and len(p.id_map()) == 120
    for doc in p.id_map().values():
        assert p.doc_vector(doc) == r.doc_vector(doc)


def test_scale_commands_have_help():
    runner = CliRunner()
    for cmd in (["encode-catalogue"], ["index", "export-milvus"], ["index", "load-milvus"],
                ["index", "sync-milvus"]):
        r = runner.invoke(main, [*cmd, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output, cmd
