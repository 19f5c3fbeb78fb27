"""Hand edits of word weights and entity judgements: an append-only journal and its replay.

An operator's edit is a record in `edits.jsonl` next to the index, never a change to the model
or the postings, so every edit is visible, attributable (when, who, why, what it changed) and
reversible. The current effect of the journal is its *replay*:

- `set`   item × word → title weight (the word's weight in that one product; may add the word)
- `scale` word → factor, multiplied into the word's weight everywhere (several scales compose)
- `ban`   word → factor 0
- `link`  query word A → title word B with weight w (A in a query also matches B, w × A's weight)
- `unlink` removes a link
- `pin`   query (or a glob pattern such as `*手机*`) × entity → QE judgement (EBRM)
- `rule`  product category × entity type → must_match | ignore | default (EBRM)
- `undo`  switches an earlier record off (an undo of an undo switches it back on)

A record counts when no counting undo targets it, decided from the newest record back, so undo
chains of any depth resolve exactly. Appends hold an exclusive lock on the journal, write one
line and fsync it; a line torn by a crash (no newline at the end) is ignored on read and cut
off by the next append. A line in the middle that cannot be read is an error naming its line.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from deepbow.errors import DeepBowError

JOURNAL = "edits.jsonl"
FORMAT_VERSION = 1
OPS = ("set", "scale", "ban", "link", "unlink", "pin", "rule", "undo")
RULE_MODES = ("must_match", "ignore", "default")


class EditError(DeepBowError):
    """An edit is refused (the message says why) or a journal cannot be read."""


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return os.environ.get("USER", "unknown")


def _finite(x, what: str, lo: float = 0.0, hi: float = math.inf) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise EditError(f"{what} must be a number, got {x!r}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise EditError(f"{what} must be a finite number in [{lo}, {hi}], got {x!r}")
    return v


def _text(x, what: str) -> str:
    if not isinstance(x, str) or not x.strip() or "\n" in x:
        raise EditError(f"{what} must be a non-empty one-line string, got {x!r}")
    return x.strip()


def check_args(op: str, args: dict) -> dict:
    """The record's arguments, normalised; EditError names what is wrong."""
    from deepbow.text import normalize

    if op not in OPS:
        raise EditError(f"unknown edit {op!r}; one of {', '.join(OPS)}")
    a = dict(args)
    if op == "set":
        return {"item": _text(a.get("item"), "item"), "word": normalize(_text(a.get("word"),
                "word")), "weight": _finite(a.get("weight"), "weight")}
    if op == "scale":
        return {"word": normalize(_text(a.get("word"), "word")),
                "factor": _finite(a.get("factor"), "factor", 0.0, 1000.0)}
    if op == "ban":
        return {"word": normalize(_text(a.get("word"), "word"))}
    if op in ("link", "unlink"):
        out = {"from": normalize(_text(a.get("from"), "from word")),
               "to": normalize(_text(a.get("to"), "to word"))}
        if out["from"] == out["to"]:
            raise EditError("a link needs two different words")
        if op == "link":
            out["weight"] = _finite(a.get("weight", 1.0), "link weight", 0.0, 10.0)
        return out
    if op == "pin":
        out = {"query": normalize(_text(a.get("query"), "query pattern")),
               "type": _text(a.get("type"), "entity type"),
               "entity": normalize(_text(a.get("entity"), "entity"))}
        for k in ("s", "c"):
            if a.get(k) is not None:
                out[k] = _finite(a[k], f"pinned {k}", 0.0, 1.0)
        if "s" not in out and "c" not in out:
            raise EditError("a pin needs s (satisfies) and/or c (no conflict), each in [0, 1]")
        return out
    if op == "rule":
        mode = a.get("mode")
        if mode not in RULE_MODES:
            raise EditError(f"rule mode must be one of {', '.join(RULE_MODES)}, got {mode!r}")
        return {"category": _text(a.get("category"), "category"),
                "type": _text(a.get("type"), "entity type"), "mode": mode}
    target = a.get("target")
    if not isinstance(target, int) or isinstance(target, bool) or target < 1:
        raise EditError(f"undo needs the seq of an earlier edit, got {target!r}")
    return {"target": target}


@dataclass
class EditState:
    """The replayed effect of a journal (see the module docstring)."""

    doc_weights: dict[tuple[str, str], float] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)
    links: dict[tuple[str, str], float] = field(default_factory=dict)
    pins: dict[tuple[str, str, str], tuple[float | None, float | None]] = field(
        default_factory=dict)
    rules: dict[tuple[str, str], str] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.doc_weights or self.scales or self.links or self.pins or self.rules)

    def pin_for(self, query: str, etype: str, entity: str) -> tuple[float | None, float | None]:
        """The pinned (s, c) for a normalised query and entity: an exact query first, then
        the newest matching pattern; (None, None) when nothing is pinned."""
        got = self.pins.get((query, etype, entity))
        if got is not None:
            return got
        for (pat, t, e), v in reversed(self.pins.items()):
            if t == etype and e == entity and fnmatchcase(query, pat):
                return v
        return (None, None)

    def rule_for(self, categories: Iterable[str], etype: str) -> str:
        """The rule for an entity type in an item of these categories ("*" = every item)."""
        mode = self.rules.get(("*", etype), "default")
        for cat in categories:
            mode = self.rules.get((cat, etype), mode)
        return mode


def replay(records: list[dict]) -> EditState:
    undos_of: dict[int, list[int]] = {}
    for r in records:
        if r["op"] == "undo":
            undos_of.setdefault(r["args"]["target"], []).append(r["seq"])
    counts: dict[int, bool] = {}
    for r in reversed(records):  # targets are older than their undos
        counts[r["seq"]] = not any(counts.get(u, False) for u in undos_of.get(r["seq"], ()))
    st = EditState(active={s for s, on in counts.items() if on})
    for r in records:
        if not counts[r["seq"]]:
            continue
        op, a = r["op"], r["args"]
        if op == "set":
            st.doc_weights[(a["item"], a["word"])] = a["weight"]
        elif op in ("scale", "ban"):
            st.scales[a["word"]] = st.scales.get(a["word"], 1.0) * (
                0.0 if op == "ban" else a["factor"])
        elif op == "link":
            st.links[(a["from"], a["to"])] = a["weight"]
        elif op == "unlink":
            st.links.pop((a["from"], a["to"]), None)
        elif op == "pin":
            key = (a["query"], a["type"], a["entity"])
            st.pins.pop(key, None)  # re-insert: the newest pin is last
            st.pins[key] = (a.get("s"), a.get("c"))
        elif op == "rule":
            st.rules[(a["category"], a["type"])] = a["mode"]
    return st


class Journal:
    """The append-only JSONL journal of one index."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def signature(self) -> tuple[int, int]:
        """(size, mtime_ns): changes whenever anyone appends."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_size, st.st_mtime_ns)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            return self._parse(fh.read())

    def _parse(self, data: bytes) -> list[dict]:
        lines = data.split(b"\n")
        lines.pop()  # b"" when the file ends with a newline; else a torn last write, ignored
        out = []
        for n, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise EditError(f"{self.path}:{n}: unreadable journal line ({e})") from None
            if not isinstance(rec, dict):
                raise EditError(f"{self.path}:{n}: not a journal record")
            v = rec.get("v")
            if v != FORMAT_VERSION:
                raise EditError(f"{self.path}:{n}: journal format version {v!r}; this deepbow "
                                f"reads version {FORMAT_VERSION} (written by another version?)")
            if rec.get("op") not in OPS or not isinstance(rec.get("seq"), int):
                raise EditError(f"{self.path}:{n}: record without a known op and a seq")
            out.append(rec)
        return out

    def append(self, op: str, args: dict, by: str | None = None, reason: str = "",
               figures: dict | None = None, extra: dict | None = None,
               check=None) -> dict:
        """Validate and append one record under the journal lock; returns it.
        `check(records, record)` may refuse it (EditError) after seeing the current journal."""
        args = check_args(op, args)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0) if size else b""
            if data and not data.endswith(b"\n"):  # a torn write from a crash: drop it
                size = data.rfind(b"\n") + 1
                os.ftruncate(fd, size)
                data = data[:size]
            records = self._parse(data)
            rec = {"v": FORMAT_VERSION, "seq": (records[-1]["seq"] + 1) if records else 1,
                   "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "by": by or default_user(), "reason": reason, "op": op, "args": args,
                   "figures": figures or {}, **(extra or {})}
            if op == "undo":
                check_undo(records, rec)
            if check is not None:
                check(records, rec)
            line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
            os.pwrite(fd, line, size)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return rec


def check_undo(records: list[dict], rec: dict) -> None:
    target = rec["args"]["target"]
    seqs = {r["seq"] for r in records}
    if target not in seqs:
        raise EditError(f"no edit #{target} in the journal")
    if target not in replay(records).active:
        raise EditError(f"edit #{target} is already undone (undo the undo instead)")


def describe(rec: dict) -> str:
    """One line for `weights log`."""
    a = rec["args"]
    op = rec["op"]
    what = {
        "set": lambda: f"set {a['word']} = {a['weight']:g} in item {a['item']}",
        "scale": lambda: f"scale {a['word']} × {a['factor']:g}",
        "ban": lambda: f"ban {a['word']}",
        "link": lambda: f"link {a['from']} → {a['to']} (weight {a['weight']:g})",
        "unlink": lambda: f"unlink {a['from']} → {a['to']}",
        "pin": lambda: f"pin {a['query']} × {a['type']}:{a['entity']} = " + ", ".join(
            f"{k} {a[k]:g}" for k in ("s", "c") if k in a),
        "rule": lambda: f"rule {a['type']} = {a['mode']} in category {a['category']}",
        "undo": lambda: f"undo #{a['target']}",
    }[op]()
    return what
