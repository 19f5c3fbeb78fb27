"""The deepbow command, driven through click with the tiny model."""

import json

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.conftest import write_jsonl


@pytest.fixture
def run(tiny_model_dir):
    runner = CliRunner()

    def invoke(*args, model=True):
        extra = ["--model", str(tiny_model_dir)] if model else []
        return runner.invoke(main, [*args, *extra], catch_exceptions=False)

    return invoke


def test_every_command_has_help():
    runner = CliRunner()
    for cmd in (["--help"], ["encode", "--help"], ["score", "--help"], ["explain", "--help"],
                ["train", "--help"], ["eval", "--help"], ["index", "build", "--help"],
                ["index", "stats", "--help"], ["search", "--help"], ["demo", "--help"],
                ["entities", "--help"], ["ebrm", "train", "--help"],
                ["ebrm", "eval-tagger", "--help"], ["ebrm", "cache", "stats", "--help"],
                ["ebrm", "cache", "warm", "--help"], ["ebrm", "cache", "clear", "--help"]):
        r = runner.invoke(main, cmd)
        assert r.exit_code == 0 and "Usage" in r.output, cmd


def test_encode_and_explain(run, tiny_model):
    r = run("encode", "华为新款手机防摔", "--json")
    terms = json.loads(r.output)["terms"]
    assert terms and all(t["weight"] > 0 for t in terms)
    r = run("explain", "华为手机", "华为新款手机防摔", "--json")
    ex = json.loads(r.output)
    assert ex["score"] == pytest.approx(sum(m["contribution"] for m in ex["matches"]))
    assert ex["score"] == tiny_model.explain("华为手机", "华为新款手机防摔").score
    assert "score:" in run("explain", "华为手机", "华为新款手机防摔").output


def test_score_writes_same_order_and_labels(run, tiny_model, tmp_path):
    rows = [{"query": "华为手机", "title": "华为新款手机防摔", "extra": 1},
            {"query": "鼠标", "title": "罗技鼠标垫"}, {"query": "", "title": ""}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    r = run("score", "--pairs", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o.jsonl"))
    assert r.exit_code == 0, r.output
    out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(out) == 3 and all(o["label"] in (0, 1, 2) for o in out)
    want = tiny_model.score_pairs([(x["query"], x["title"]) for x in rows])
    assert [o["score"] for o in out] == pytest.approx(want.tolist(), abs=1e-6)


@pytest.mark.parametrize("bad,message", [
    (b'{"query": "a", "title": "b"}\n{"query": "a"\n', "in.jsonl:2: not valid JSON"),
    (b'{"query": "a", "title": "b"}\n\n{"title": "b"}\n', "in.jsonl:3: needs string fields"),
    (b'{"query": "\xff\xfe", "title": "b"}\n', "in.jsonl:1: not UTF-8"),
])
def test_score_bad_line_names_it_and_keeps_old_output(run, tmp_path, bad, message):
    (tmp_path / "in.jsonl").write_bytes(bad)
    (tmp_path / "o.jsonl").write_text("previous results\n")
    r = run("score", "--pairs", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o.jsonl"))
    assert r.exit_code != 0
    assert message in r.output
    assert (tmp_path / "o.jsonl").read_text() == "previous results\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_model_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(main, ["encode", "x", "--model", str(tmp_path / "none")])
    assert r.exit_code != 0 and "no model directory" in r.output


def test_index_build_search_and_maintain(run, tmp_path):
    items = [{"id": f"p{i}", "title": t, "brand": b} for i, (t, b) in enumerate(
        [("华为新款手机防摔", "华为"), ("小米正品手机超薄", "小米"), ("罗技鼠标垫", "罗技"),
         ("罗技包邮鼠标2024", "罗技")])]
    write_jsonl(tmp_path / "cat.jsonl", items)
    ix = str(tmp_path / "ix")
    assert run("index", "build", str(tmp_path / "cat.jsonl"), "--out", ix).exit_code == 0
    r = run("index", "build", str(tmp_path / "cat.jsonl"), "--out", ix)
    assert r.exit_code != 0 and "--overwrite" in r.output
    r = run("search", ix, "罗技鼠标", "--json")
    hits = json.loads(r.output)["hits"]
    assert hits and hits[0]["id"] in ("p2", "p3") and "brand" in hits[0]["fields"]
    r = run("search", ix, "手机", "--filter", "brand=小米", "--json")
    assert {h["id"] for h in json.loads(r.output)["hits"]} <= {"p1"}
    r = run("search", ix, "手机", "--filter", "brand")
    assert r.exit_code != 0 and "FIELD=VALUE" in r.output
    (tmp_path / "q.tsv").write_text("q1\t罗技鼠标\nq2\t华为手机\n", encoding="utf-8")
    r = run("search", ix, "--queries", str(tmp_path / "q.tsv"), "--run", str(tmp_path / "r.txt"))
    assert r.exit_code == 0
    lines = (tmp_path / "r.txt").read_text().splitlines()
    assert lines and all(len(x.split()) == 6 and x.split()[1] == "Q0" for x in lines)
    write_jsonl(tmp_path / "new.jsonl", [{"id": "p9", "title": "华为手机壳"}])
    assert run("index", "add", ix, str(tmp_path / "new.jsonl")).exit_code == 0
    assert run("index", "delete", ix, "p0").exit_code == 0
    r = run("index", "delete", ix, "nope")
    assert r.exit_code != 0 and "unknown ids" in r.output
    st = json.loads(run("index", "stats", ix, "--json").output)
    assert st["docs"] == 5 and st["deleted"] == 1 and st["segments"] == 2
    assert run("index", "compact", ix).exit_code == 0
    assert "ok: 4 docs" in run("index", "verify", ix).output


def test_batch_search_on_threads_gives_the_same_run(run, tmp_path):
    items = [{"id": f"p{i}", "title": t} for i, t in enumerate(
        ["华为新款手机防摔", "小米正品手机超薄", "罗技鼠标垫", "罗技包邮鼠标2024", "耐克运动鞋"])]
    write_jsonl(tmp_path / "cat.jsonl", items)
    ix = str(tmp_path / "ix")
    assert run("index", "build", str(tmp_path / "cat.jsonl"), "--out", ix).exit_code == 0
    (tmp_path / "q.tsv").write_text("".join(f"q{i}\t{q}\n" for i, q in enumerate(
        ["罗技鼠标", "华为手机", "运动鞋", "手机", "鼠标垫"] * 20)), encoding="utf-8")
    runs = []
    for threads in ("1", "2"):
        out = tmp_path / f"run{threads}.txt"
        r = run("search", ix, "--queries", str(tmp_path / "q.tsv"), "--run", str(out),
                "--threads", threads)
        assert r.exit_code == 0, r.output
        runs.append(out.read_text())
    assert runs[0] == runs[1] and len(runs[0].splitlines()) > 100


@pytest.mark.parametrize("cmd", [["train"], ["ebrm", "train"]])
def test_pairs_without_init_or_labels_is_refused(cmd, tmp_path):
    """`train --pairs` and `ebrm train --pairs` fine-tune: they need --init, and labels on
    every pair (of --pairs and of --valid), refused before any model is loaded."""
    runner = CliRunner()
    good, bare = tmp_path / "good.jsonl", tmp_path / "bare.jsonl"
    write_jsonl(good, [{"query": "手机", "title": "华为手机", "label": 2}])
    write_jsonl(bare, [{"query": "手机", "title": "华为手机"}])
    out = ["--out", str(tmp_path / "m")]
    r = runner.invoke(main, [*cmd, "--pairs", str(good), *out])
    assert r.exit_code == 2 and "give it with --init" in r.output
    init = ["--init", str(tmp_path / "none")]
    for args in (["--pairs", str(bare)], ["--pairs", str(good), "--valid", str(bare)]):
        r = runner.invoke(main, [*cmd, *args, *init, *out])
        assert r.exit_code == 1 and f"{bare}: pair 1 has no label" in r.output, args
    assert not (tmp_path / "m").exists()


@pytest.mark.shared_data
def test_calibrate_refits_in_place_and_with_config_gives_priors(tiny_model_dir, tmp_path):
    import shutil

    import deepbow
    from deepbow.locations import shared_data_dir

    if not shared_data_dir().is_dir():
        pytest.skip("../shared/data not present")
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    runner = CliRunner()
    r = runner.invoke(main, ["calibrate", "--model", str(d)])
    assert r.exit_code == 0, r.output
    m = deepbow.load(d)
    assert not m.priors.params.active  # the tiny recipe has none
    cfg = "deepbow/configs/default.toml"
    r = runner.invoke(main, ["calibrate", "--model", str(d), "--config", cfg])
    assert r.exit_code == 0, r.output
    m = deepbow.load(d)
    assert m.priors.params.active and m.manifest["train_config"]["priors"]["query_head"] == 1.0
    assert (d / "products.txt").is_file() and m.thresholds[0] <= m.thresholds[1]
