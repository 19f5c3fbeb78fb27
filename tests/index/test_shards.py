"""Catalogue shards (index/shards.py): several files or a directory read as one catalogue,
line by line exactly as `read_catalogue` reads a file (the Ray path numbers items with the same
splitting). Parquet shards need pyarrow and are skipped without it."""

import json
import random

import pytest

from deepbow.errors import InputError
from deepbow.readers import read_catalogue
from index.shards import (
    ScaleExtraMissing,
    parse_line,
    read_shards,
    require,
    shard_files,
    split_lines,
)
from tests.conftest import BRANDS, FILLERS, PRODUCTS


def catalogue(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        b, p = rng.choice(BRANDS), rng.choice(PRODUCTS)
        words = [b, *rng.sample(FILLERS, rng.randint(0, 4)), p]
        rng.shuffle(words)
        out.append({"id": f"i{i}", "title": "".join(words), "brand": b, "product": p,
                    "tags": rng.sample(FILLERS, 2)})
    return out


def write_shards(folder, items, cuts=(0, 90, 91, 200)) -> None:
    """JSONL shards (one holds a TSV line, a blank line and CRLF) in name order."""
    folder.mkdir()
    bounds = [*cuts, len(items)]
    for s, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        with open(folder / f"part-{s}.jsonl", "w", encoding="utf-8", newline="") as fh:
            for it in items[a:b]:
                if it.get("tsv"):
                    fh.write(f"{it['id']}\t{it['title']}\r\n\n")
                else:
                    fh.write(json.dumps(it, ensure_ascii=False) + "\n")


def test_lines_and_parse_line_read_as_read_catalogue(tmp_path):
    items = catalogue(20)
    items[5] = {"id": "i5", "title": items[5]["title"], "tsv": True}
    write_shards(tmp_path / "s", items, cuts=(0,))
    path = tmp_path / "s" / "part-0.jsonl"
    with open(path, "rb") as fh:
        got = [parse_line(raw, str(path), n) for raw, n in split_lines(fh)]
    assert got == read_catalogue(path)


@pytest.mark.parametrize("line,msg", [(b"{not json\n", "not valid JSON"),
                                      (b"only-an-id\n", "expected a JSON object"),
                                      (b'{"id": 1}\n', "string \"title\""),
                                      (b"\xff\xfe\n", "not UTF-8")])
def test_parse_line_errors_name_file_and_line(line, msg):
    with pytest.raises(InputError, match=f"cat.jsonl:7: .*{msg}"):
        parse_line(line, "cat.jsonl", 7)


def test_shard_files(tmp_path):
    (tmp_path / "b.jsonl").write_text("x\ty\n")
    (tmp_path / "a.jsonl").write_text("x\ty\n")
    files, kind = shard_files([tmp_path])
    assert kind == "text" and [f.rsplit("/", 1)[1] for f in files] == ["a.jsonl", "b.jsonl"]
    (tmp_path / "c.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="mix"):
        shard_files([tmp_path])
    with pytest.raises(InputError, match="no such"):
        shard_files([tmp_path / "nope"])




def test_odd_lines_read_as_read_catalogue(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_bytes("\ufeff{\"id\": \"a\", \"title\": \"华为手机\"}\n\u3000\n \r\n"
                     "b\t小米手机\r\n\n{\"id\": 3, \"title\": \"耳机\"}".encode())
    with open(path, "rb") as fh:
        got = [parse_line(raw, str(path), n) for raw, n in split_lines(fh)]
    assert got == read_catalogue(path) == read_shards([path])
    assert [it["id"] for it in got] == ["a", "b", "3"]


def test_read_shards_in_order(tmp_path):
    items = catalogue(40)
    write_shards(tmp_path / "s", items, cuts=(0, 10, 25))
    assert read_shards([tmp_path / "s"]) == items
    assert read_shards([tmp_path / "s" / "part-1.jsonl", tmp_path / "s" / "part-0.jsonl"]) == \
        items[10:25] + items[:10]


def test_read_parquet_shards(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    items = catalogue(30)
    pq.write_table(pa.Table.from_pylist(items[:12]), tmp_path / "p-0.parquet")
    pq.write_table(pa.Table.from_pylist(items[12:]), tmp_path / "p-1.parquet")
    assert read_shards([tmp_path]) == items
    pq.write_table(pa.Table.from_pylist([{"id": "x", "title": ""}]), tmp_path / "p-2.parquet")
    with pytest.raises(InputError, match=r"p-2.parquet: row 1: needs a non-empty"):
        read_shards([tmp_path])


def test_require_names_the_extra():
    with pytest.raises(ScaleExtraMissing, match=r"deepbow\[scale\]"):
        require("no_such_module_here", "this")
