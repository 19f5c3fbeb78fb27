"""Bad input through the command line: a clear `Error:` line (exit 1; 2 for a bad option, as
click does for every option), never a traceback; and bad input never taken silently."""

from __future__ import annotations

import json
import socket

import pytest

from deepbow.errors import InputError
from tests.conftest import ITEMS, write_jsonl
from tests.reliability.conftest import clean_error


@pytest.mark.parametrize("label,message", [
    ("Infinity", "not valid JSON (Infinity is not a JSON number)"),
    ("-Infinity", "not valid JSON"),
    ("NaN", "not valid JSON"),
    ("1e400", "label inf"),
    ('"Infinity"', "label 'Infinity'"),
    ("2.7", "label 2.7"),
    ("true", "label True"),
    ('"abc"', "label 'abc'"),
    ("3", "label 3"),
    ("[1]", "label [1]"),
])
@pytest.mark.parametrize("command", ["score", "eval"])
def test_a_bad_label_names_its_line(cli, tmp_path, label, message, command):
    good = json.dumps({"query": "华为手机", "title": "华为新款手机防摔", "label": 2},
                      ensure_ascii=False)
    (tmp_path / "p.jsonl").write_text(f'{good}\n{{"query": "a", "title": "b", '
                                      f'"label": {label}}}\n', encoding="utf-8")
    extra = ["--out", tmp_path / "s.jsonl"] if command == "score" else []
    clean_error(cli(command, "--pairs", tmp_path / "p.jsonl", *extra), "p.jsonl:2", message)
    assert not (tmp_path / "s.jsonl").exists()


def test_labels_that_are_whole_numbers_are_taken(cli, tmp_path):
    rows = [{"query": "华为手机", "title": t["title"], "label": lab}
            for t, lab in zip(ITEMS, ["1.0", 2, 0, 2.0, "E", "i", 1], strict=True)]
    write_jsonl(tmp_path / "p.jsonl", rows)
    r = cli("eval", "--pairs", tmp_path / "p.jsonl", "--json")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("k", ["1000000000000", str(10**20), "0", "-3", "1e12", "abc"])
def test_search_k_out_of_range_is_a_usage_error(cat, cli, k):
    r = cli("search", cat.path, "华为手机", "-k", k)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "Invalid value for '-k'" in r.output


def test_the_library_bounds_k_too(cat):
    assert len(cat.search("手机", k=10**20)) <= len(ITEMS)
    for bad in (-1, "3", 2.5, None):
        with pytest.raises(InputError, match="k must be a whole number"):
            cat.search("手机", k=bad)


def test_delete_with_a_repeated_id(cat, cli):
    r = cli("index", "delete", cat.path, "a1", "a1", "a2")
    assert r.exit_code == 0 and "deleted 2 items" in r.output
    clean_error(cli("index", "delete", cat.path, "a1"), "unknown ids")


@pytest.mark.parametrize("item_id", [None, True, False, [1], {"a": 1}, "", " ", "a\x00b",
                                     "a\nb", 1.5])
def test_an_id_that_is_not_a_string_or_integer_is_refused(cli, tmp_path, item_id):
    write_jsonl(tmp_path / "c.jsonl", [ITEMS[0], {"id": item_id, "title": "小米手机"}])
    clean_error(cli("index", "build", tmp_path / "c.jsonl", "--out", tmp_path / "ix"),
                "c.jsonl:2", "id")
    assert not (tmp_path / "ix").exists()


@pytest.mark.parametrize("text,message", [
    ("a1\t华为手机\na2\t小米\t手机\n", "c.tsv:2: expected a JSON object or 'id<TAB>title'"),
    ("a1\t华为手机\na2\t\n", 'c.tsv:2: needs a non-empty string "title"'),
    ("a1\t华为手机\na2\t  \n", 'c.tsv:2: needs a non-empty string "title"'),
    ("a1\t华为手机\n只有标题\n", "c.tsv:2: expected a JSON object"),
    ("a1\t华为手机\na1\t小米手机\n", "c.tsv:2: duplicate id 'a1'"),
])
def test_tsv_lines_that_cannot_be_items(cli, tmp_path, text, message):
    (tmp_path / "c.tsv").write_text(text, encoding="utf-8")
    clean_error(cli("index", "build", tmp_path / "c.tsv", "--out", tmp_path / "ix"), message)


def test_a_utf8_byte_order_mark_is_dropped(cli, tmp_path):
    (tmp_path / "c.tsv").write_bytes("\ufeffa1\t华为手机\n".encode())
    (tmp_path / "c.jsonl").write_bytes(("\ufeff" + json.dumps(ITEMS[1]) + "\n").encode())
    assert cli("index", "build", tmp_path / "c.tsv", "--out", tmp_path / "t").exit_code == 0
    assert cli("index", "build", tmp_path / "c.jsonl", "--out", tmp_path / "j").exit_code == 0
    hits = json.loads(cli("search", tmp_path / "t", "华为手机", "--json").output)["hits"]
    assert [h["id"] for h in hits] == ["a1"]
    hits = json.loads(cli("search", tmp_path / "j", "手机", "--json").output)["hits"]
    assert [h["id"] for h in hits] == ["a2"]


def test_item_fields_never_hide_the_engines(cli, tiny_model, tmp_path):
    from index.catalogue import Catalogue

    tricky = {"id": "t1", "title": "华为手机", "score": 99, "rank": -1, "qid": "evil",
              "query": "evil", "matched": "evil", "fields": "evil"}
    Catalogue.build(tiny_model, [tricky, *ITEMS[1:]], tmp_path / "ix")
    hit = json.loads(cli("search", tmp_path / "ix", "华为手机", "--json").output)["hits"][0]
    assert hit["id"] == "t1" and hit["score"] != 99 and isinstance(hit["matched"], list)
    assert hit["fields"] == {k: v for k, v in tricky.items() if k not in ("id", "title")}
    (tmp_path / "q.tsv").write_text("q7\t华为手机\n", encoding="utf-8")
    assert cli("search", tmp_path / "ix", "--queries", tmp_path / "q.tsv", "--run",
               tmp_path / "run.jsonl").exit_code == 0
    row = json.loads((tmp_path / "run.jsonl").read_text().splitlines()[0])
    assert (row["qid"], row["query"], row["rank"]) == ("q7", "华为手机", 1)
    assert row["fields"]["qid"] == "evil"


def test_studio_on_a_port_out_of_range_or_in_use(cat, cli):
    r = cli("studio", "--index", cat.path, "--port", "99999", "--no-ebrm")
    assert r.exit_code == 2 and "99999 is not in the range" in r.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        clean_error(cli("studio", "--index", cat.path, "--port", port, "--no-ebrm"),
                    f"cannot serve on 127.0.0.1:{port}")


def test_deepbow_cache_naming_a_file(cli, tiny_ebrm_dir, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("DEEPBOW_CACHE", str(tmp_path / "afile"))
    clean_error(cli("ebrm", "cache", "stats", "--ebrm-model", tiny_ebrm_dir, model=False),
                "DEEPBOW_CACHE", "is not a folder")
    clean_error(cli("explain", "华为手机", "华为手机壳", "--scorer", "ebrm", "--ebrm-model",
                    tiny_ebrm_dir), "is not a folder")


def test_a_damaged_qe_cache_is_named_and_clear_replaces_it(cli, tiny_ebrm_dir, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("DEEPBOW_CACHE", str(tmp_path / "cache"))
    m = ["--ebrm-model", tiny_ebrm_dir]
    assert cli("ebrm", "cache", "stats", *m, model=False).exit_code == 0
    [db] = (tmp_path / "cache").glob("*.sqlite")
    db.write_bytes(b"\x00garbage" * 500)
    clean_error(cli("ebrm", "cache", "stats", *m, model=False), db.name,
                "the QE cache cannot be used", "ebrm cache clear")
    clean_error(cli("explain", "华为手机", "华为手机壳", "--scorer", "ebrm", *m), db.name)
    r = cli("ebrm", "cache", "clear", *m, model=False)
    assert r.exit_code == 0 and "cleared 0 entries" in r.output
    assert cli("explain", "华为手机", "华为手机壳", "--scorer", "ebrm", *m).exit_code == 0
    r = cli("ebrm", "cache", "stats", *m, "--json", model=False)
    assert json.loads(r.output)["entries"] > 0
    r = cli("ebrm", "cache", "clear", *m, model=False)
    assert r.exit_code == 0 and "cleared" in r.output and "cleared 0" not in r.output
    head = db.read_bytes()[:16]
    db.write_bytes(head + b"\xff" * 4000)  # SQLite's header, damaged pages
    assert cli("ebrm", "cache", "clear", *m, model=False).exit_code == 0
    assert cli("ebrm", "cache", "stats", *m, model=False).exit_code == 0


def test_cache_clear_never_deletes_a_file_that_is_not_a_cache(cli, tiny_ebrm_dir, tmp_path):
    mine = tmp_path / "catalogue.jsonl"
    write_jsonl(mine, ITEMS)
    before = mine.read_bytes()
    clean_error(cli("ebrm", "cache", "clear", "--cache", mine, "--ebrm-model", tiny_ebrm_dir,
                    model=False), "not a QE cache", "refusing to delete it")
    assert mine.read_bytes() == before
