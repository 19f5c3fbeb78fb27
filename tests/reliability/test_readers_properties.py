"""Property tests: the catalogue, pairs, query and journal readers on arbitrary bytes and
arbitrary JSON values give a correct result or a clear error (InputError / EditError naming
the file and line), never another exception."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepbow.errors import InputError
from deepbow.readers import read_catalogue, read_pairs, read_queries
from index.editor import journal_of
from index.edits import OPS, describe, replay
from index.journal import EditError

SETTINGS = settings(max_examples=100, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() |
    st.text(max_size=12) | st.sampled_from(["", "a1", "华为手机", "E", "1", "2.0", " "]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "title", "query", "label", "esci", "kind", "qid", "brand", "x",
                         "v", "seq", "op", "args", "by", "reason", "figures"]) |
        st.text(max_size=5), inner, max_size=6),
    max_leaves=20)
lines_of_bytes = st.lists(st.binary(max_size=40) | st.sampled_from(
    [b"\xef\xbb\xbf", b"\t", b"a\tb", b"a\tb\tc", b'{"id": "a", "title": "b"}', b"\r"]),
    max_size=6).map(lambda parts: b"\n".join(parts))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for the module's files (hypothesis refuses a function-scoped tmp_path: it
    would not be fresh for each example); pytest removes it with its other old tmp folders."""
    return tmp_path_factory.mktemp("props")


def file_with(folder: Path, data: bytes, name: str) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def json_lines(values) -> bytes:
    return "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values).encode("utf-8")


def names_a_line(message: str, path: Path) -> bool:
    return re.search(re.escape(str(path)) + r":\d+(: |$)", message) is not None


def check_catalogue(path: Path) -> None:
    try:
        items = read_catalogue(path)
    except InputError as e:
        assert names_a_line(str(e), path), e
        return
    ids = [it["id"] for it in items]
    assert len(set(ids)) == len(ids)
    for it in items:
        assert isinstance(it["id"], str) and it["id"].strip()
        assert not re.search(r"[\x00-\x1f\x7f]", it["id"])
        assert isinstance(it["title"], str) and it["title"].strip()


def check_pairs(path: Path) -> None:
    try:
        pairs = list(read_pairs(path))
    except InputError as e:
        assert names_a_line(str(e), path), e
        return
    for p in pairs:
        assert isinstance(p.query, str) and isinstance(p.title, str)
        assert p.label in (-1, 0, 1, 2)
        json.dumps(p.to_json())


def check_queries(path: Path) -> None:
    try:
        queries = read_queries(path)
    except InputError as e:
        assert names_a_line(str(e), path), e
        return
    for qid, q in queries:
        assert isinstance(qid, str) and q.strip()


def check_journal(path: Path) -> None:
    try:
        records = journal_of(path).read()
    except EditError as e:
        assert names_a_line(str(e), path), e
        return
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs))
    for r in records:  # what log, replay and every consumer rely on
        assert r["op"] in OPS and isinstance(r["args"], dict) and isinstance(r["by"], str)
        describe(r)
    replay(records)


READERS = {"catalogue": (check_catalogue, "c.jsonl"), "pairs": (check_pairs, "p.jsonl"),
           "query": (check_queries, "q.tsv"), "journal": (check_journal, "edits.jsonl")}


@pytest.mark.parametrize("reader", READERS)
@SETTINGS
@given(data=lines_of_bytes)
def test_reader_on_arbitrary_bytes(folder, reader, data):
    check, name = READERS[reader]
    check(file_with(folder, data, name))


@pytest.mark.parametrize("reader,max_values", [("catalogue", 5), ("pairs", 5), ("journal", 4)])
@SETTINGS
@given(data=st.data())
def test_reader_on_json_values(folder, reader, max_values, data):
    check, name = READERS[reader]
    values = data.draw(st.lists(json_values, max_size=max_values))
    check(file_with(folder, json_lines(values), name))


@SETTINGS
@given(st.lists(st.fixed_dictionaries({"id": st.text(min_size=1, max_size=8) | st.integers(),
                                       "title": st.text(min_size=1, max_size=8)}),
                max_size=5))
def test_catalogue_reader_returns_valid_items_as_they_are(folder, items):
    path = file_with(folder, json_lines(items), "c.jsonl")
    try:
        got = read_catalogue(path)
    except InputError as e:
        assert names_a_line(str(e), path), e
        return
    assert got == [{**it, "id": str(it["id"])} for it in items]


@SETTINGS
@given(st.lists(st.fixed_dictionaries(
    {"query": st.text(max_size=5), "title": st.text(max_size=5)},
    optional={"label": json_values, "esci": json_values, "qid": json_values}), max_size=4))
def test_pairs_reader_on_pairs_with_any_label(folder, pairs):
    check_pairs(file_with(folder, json_lines(pairs), "p.jsonl"))


args_for = {name: st.fixed_dictionaries({}, optional={a.name: json_values | (
    st.floats(-2, 2000) if a.kind == "number" else st.integers(-1, 5) if a.kind == "seq" else
    st.sampled_from(list(a.choices) or ["手机", "华为", "*手机*", "a1"]))
    for a in op.args}) for name, op in OPS.items()}
records = st.lists(st.sampled_from(sorted(OPS)).flatmap(lambda op: st.fixed_dictionaries({
    "v": st.just(1), "op": st.just(op), "args": args_for[op]},
    optional={"by": json_values, "reason": json_values, "figures": json_values})), max_size=6)


@SETTINGS
@given(records)
def test_journal_reader_on_records_of_every_operation(folder, recs):
    check_journal(file_with(folder, json_lines([{**r, "seq": i} for i, r in enumerate(recs, 1)]),
                            "edits.jsonl"))
