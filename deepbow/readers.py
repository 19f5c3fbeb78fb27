"""The one reader of line files: pairs, catalogues, query lists and edit journals.

Every line file here is UTF-8, one record a line, JSON objects (JSONL) or tab-separated fields;
a UTF-8 byte-order mark at the start of the file is dropped and blank lines are skipped. A line
that cannot be used stops the read with an InputError naming the file and the line, so a caller
never acts on part of a bad file by mistake.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deepbow.errors import InputError

BOM = "\ufeff"
ESCI_GRADES = {"E": 2, "S": 1, "C": 0, "I": 0}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def decode_line(raw: bytes, where: str, first: bool = False) -> str:
    """A raw line as text (no line end); `first` drops a byte-order mark."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: not UTF-8 ({e.reason})") from None
    if first:
        text = text.removeprefix(BOM)
    return text.rstrip("\r\n")


def parse_json(text: str, where: str) -> object:
    """One JSON value; NaN and Infinity are refused (JSON has no such numbers)."""
    def no_constant(name: str):
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: not valid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:
        raise InputError(f"{where}: not valid JSON ({e})") from None


def read_lines(path: str | Path) -> Iterator[tuple[str, str]]:
    """(where, text) of each non-blank line; `where` is "path:lineno" for error messages."""
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    with fh:
        for lineno, raw in enumerate(fh, 1):
            text = decode_line(raw, f"{path}:{lineno}", first=lineno == 1)
            if text.strip():
                yield f"{path}:{lineno}", text


def read_jsonl(path: str | Path) -> Iterator[tuple[str, dict]]:
    """(where, object) of each line of a JSONL file of objects."""
    for where, text in read_lines(path):
        obj = parse_json(text, where)
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        yield where, obj


# -- pairs -------------------------------------------------------------------------------------
@dataclass
class Pair:
    """A query–title pair; label −1 when unlabelled. kind: how a generated pair was made
    ("qbqtc", "ecom", "ecom-hard", ...); qid, esci, qtype: the fields of a judged file."""

    query: str
    title: str
    label: int
    kind: str = ""
    qid: str = ""
    esci: str = ""
    qtype: str = ""

    def to_json(self) -> dict:
        out = {"query": self.query, "title": self.title, "label": self.label, "kind": self.kind}
        out |= {k: v for k in ("qid", "esci", "qtype") if (v := getattr(self, k))}
        return out


def parse_label(value: object, where: str) -> int:
    """A grade 0, 1 or 2: an integer (or integral number, or a string of one) or an ESCI
    letter E/S/C/I (2/1/0/0)."""
    if isinstance(value, str) and value.strip().upper() in ESCI_GRADES:
        return ESCI_GRADES[value.strip().upper()]
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    ok = isinstance(number, int | float) and not isinstance(number, bool) \
        and math.isfinite(number) and float(number).is_integer() and number in (0, 1, 2)
    if not ok:
        raise InputError(f"{where}: label {value!r} is not 0, 1, 2 or an ESCI letter E/S/C/I")
    return int(number)


def _optional_text(obj: dict, key: str, where: str) -> str:
    value = obj.get(key, "")
    if isinstance(value, int) and not isinstance(value, bool) and key == "qid":
        return str(value)
    if not isinstance(value, str):
        raise InputError(f'{where}: "{key}" must be a string, got {value!r}')
    return value


def pair_from_json(obj: dict, where: str) -> Pair:
    if not isinstance(obj.get("query"), str) or not isinstance(obj.get("title"), str):
        raise InputError(f'{where}: needs string fields "query" and "title"')
    label = parse_label(obj["label"], where) if obj.get("label") is not None else -1
    esci = _optional_text(obj, "esci", where).strip().upper()
    if esci:
        grade = parse_label(esci, where)
        if label not in (-1, grade):
            raise InputError(f"{where}: label {label} disagrees with esci {esci!r}")
        label = grade
    return Pair(obj["query"], obj["title"], label, _optional_text(obj, "kind", where),
                _optional_text(obj, "qid", where), esci, _optional_text(obj, "qtype", where))


def read_pairs(path: str | Path) -> Iterator[Pair]:
    """JSONL {"query", "title", ["label" | "esci"], ["kind"], ["qid"], ["qtype"]}."""
    for where, obj in read_jsonl(path):
        yield pair_from_json(obj, where)


def labelled(pairs: list[Pair], path: str | Path) -> list[Pair]:
    """`pairs`, refused unless there is at least one and every pair has a label."""
    if not pairs:
        raise InputError(f"{path}: no pairs")
    missing = next((i for i, p in enumerate(pairs) if p.label < 0), None)
    if missing is not None:
        raise InputError(f"{path}: pair {missing + 1} has no label (0, 1, 2 or E/S/C/I)")
    return pairs


# -- catalogues --------------------------------------------------------------------------------
def check_item(item: object, where: str) -> dict:
    """A catalogue item: a JSON object with an id (a non-empty string without control
    characters, or an integer) and a non-empty string title. Returns it with its id as text."""
    if not isinstance(item, dict) or "id" not in item or "title" not in item:
        raise InputError(f'{where}: needs "id" and a string "title"')
    iid = item.get("id")
    if isinstance(iid, int) and not isinstance(iid, bool):
        iid = str(iid)
    if not isinstance(iid, str) or not iid.strip() or _CONTROL.search(iid):
        raise InputError(f"{where}: id {item.get('id')!r} is not a non-empty string (or "
                         "integer) without control characters")
    title = item.get("title")
    if not isinstance(title, str) or not title.strip():
        raise InputError(f'{where}: needs a non-empty string "title"')
    return {**item, "id": iid}


def catalogue_item(text: str, where: str) -> dict:
    """One catalogue line (its text, without the line end): a JSON object or `id<TAB>title`.
    Ray's reader of catalogue shards (index/shards.py) parses each line with this too."""
    if text.lstrip().startswith("{"):
        raw = parse_json(text, where)
    else:
        parts = text.split("\t")
        if len(parts) != 2:
            raise InputError(f"{where}: expected a JSON object or 'id<TAB>title' "
                             f"(found {len(parts)} tab-separated fields)")
        raw = {"id": parts[0], "title": parts[1]}
    return check_item(raw, where)


def read_catalogue(path: str | Path) -> list[dict]:
    """Items of a JSONL {"id", "title", ...} or TSV `id<TAB>title` file, in file order;
    duplicate ids are refused."""
    items: list[dict] = []
    seen: set[str] = set()
    for where, text in read_lines(path):
        item = catalogue_item(text, where)
        if item["id"] in seen:
            raise InputError(f"{where}: duplicate id {item['id']!r}")
        seen.add(item["id"])
        items.append(item)
    return items


# -- query lists -------------------------------------------------------------------------------
def read_queries(path: str | Path) -> list[tuple[str, str]]:
    """(qid, query) per line: `qid<TAB>query`, or a bare query whose qid is its line number."""
    out = []
    for where, text in read_lines(path):
        qid, sep, q = text.partition("\t")
        qid, q = (qid, q) if sep else (where.rsplit(":", 1)[1], text)
        if not q.strip():
            raise InputError(f"{where}: empty query")
        out.append((qid, q))
    return out
