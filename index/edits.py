"""Hand edits of word weights and entity judgements: the table of operations and the replay.

An operator's edit is a record in the journal next to the index (index/journal.py), never a
change to the model or the postings, so every edit is visible, attributable (when, who, why,
what it changed) and reversible. OPS is the one table of operations: the command line builds
its `deepbow weights` commands from it, the studio and `weights import` validate with it, and
the journal accepts nothing it refuses. The current effect of the journal is its *replay*:

- `set`   item × word → title weight (the word's weight in that one product; may add the word)
- `scale` word → factor, multiplied into the word's weight everywhere (several scales compose)
- `ban`   word → factor 0
- `link`  query word A → title word B with weight w (A in a query also matches B, w × A's weight)
- `unlink` removes a link
- `pin`   query (or a glob pattern such as `*手机*`) × entity → QE judgement (EBRM)
- `rule`  product category × entity type → must_match | ignore | default (EBRM)
- `undo`  switches an earlier record off (an undo of an undo switches it back on)

A record counts when no counting undo targets it, decided from the newest record back, so undo
chains of any depth resolve exactly.
"""

from __future__ import annotations

import getpass
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from deepbow.edits import Edits
from deepbow.text import normalize
from ebrm.tagger import ENTITY_TYPES
from index.journal import EditError

RULE_MODES = ("must_match", "ignore", "default")
MAX_TEXT = 500  # an argument, who or why: one line of at most this many characters
REQUIRED = object()


@dataclass(frozen=True)
class Arg:
    """One argument of an operation: its key in the record, its kind and range, its default
    (REQUIRED, or a value; None = may be absent), and its name and help on the command line."""

    name: str
    kind: str  # text | word | number | choice | seq
    metavar: str
    help: str = ""
    lo: float = 0.0
    hi: float = math.inf
    choices: tuple[str, ...] = ()
    default: object = REQUIRED

    def check(self, value: object) -> object:
        what = self.metavar.lower().replace("_", " ")
        if self.kind == "number":
            return _number(value, what, self.lo, self.hi)
        if self.kind == "seq":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EditError(f"{what} must be the seq of an earlier edit, got {value!r}")
            return value
        text = one_line(value, what)
        if self.kind == "choice" and text not in self.choices:
            raise EditError(f"{what} must be one of {', '.join(self.choices)}, got {value!r}")
        return normalize(text) if self.kind == "word" else text


@dataclass(frozen=True)
class Op:
    """An operation: its arguments, what it means (the command's help), how a record of it
    reads in the log, whether it acts on EBRM, and a check across its arguments."""

    name: str
    args: tuple[Arg, ...]
    help: str
    describe: Callable[[dict], str]
    entity: bool = False
    words: tuple[str, ...] = ()  # arguments that must be words of the model's vocabulary
    cross_check: Callable[[dict], None] = field(default=lambda a: None)


def _number(x: object, what: str, lo: float, hi: float) -> float:
    if not isinstance(x, int | float) or isinstance(x, bool):
        raise EditError(f"{what} must be a number, got {x!r}")
    v = float(x)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise EditError(f"{what} must be a finite number in [{lo:g}, {hi:g}], got {x!r}")
    return v


def one_line(x: object, what: str) -> str:
    """A non-empty one-line string of at most MAX_TEXT characters."""
    if not isinstance(x, str) or not x.strip() or "\n" in x or "\r" in x:
        raise EditError(f"{what} must be a non-empty one-line string, got {x!r}")
    if len(x) > MAX_TEXT:
        raise EditError(f"{what} is {len(x)} characters long; at most {MAX_TEXT}")
    return x.strip()


def _distinct_words(a: dict) -> None:
    if a["from"] == a["to"]:
        raise EditError("a link needs two different words")


def _s_or_c(a: dict) -> None:
    if a.get("s") is None and a.get("c") is None:
        raise EditError("a pin needs s (satisfies) and/or c (no conflict), each in [0, 1]")


ITEM = Arg("item", "text", "ITEM_ID")
WORD = Arg("word", "word", "WORD")
QWORD = Arg("from", "word", "QUERY_WORD")
TWORD = Arg("to", "word", "TITLE_WORD")
ETYPE = Arg("type", "choice", "ENTITY_TYPE", choices=ENTITY_TYPES)
OPS: dict[str, Op] = {op.name: op for op in (
    Op("set", (ITEM, WORD, Arg("weight", "number", "WEIGHT")),
       "Set WORD's title weight in one product (0 removes it; a new word is added).",
       lambda a: f"set {a['word']} = {a['weight']:g} in item {a['item']}", words=("word",)),
    Op("scale", (WORD, Arg("factor", "number", "FACTOR", hi=1000.0)),
       "Multiply WORD's weight everywhere by FACTOR (boost > 1, damp < 1).",
       lambda a: f"scale {a['word']} × {a['factor']:g}", words=("word",)),
    Op("ban", (WORD,), "Give WORD weight 0 everywhere (undo to lift the ban).",
       lambda a: f"ban {a['word']}", words=("word",)),
    Op("link", (QWORD, TWORD, Arg("weight", "number", "WEIGHT", hi=10.0, default=1.0,
                                  help="TITLE_WORD's query weight, as a fraction of "
                                       "QUERY_WORD's.")),
       "Let QUERY_WORD in a query also match TITLE_WORD in titles (a synonym link).",
       lambda a: f"link {a['from']} → {a['to']} (weight {a['weight']:g})",
       words=("from", "to"), cross_check=_distinct_words),
    Op("unlink", (QWORD, TWORD), "Remove a synonym link.",
       lambda a: f"unlink {a['from']} → {a['to']}", cross_check=_distinct_words),
    Op("pin", (Arg("query", "word", "QUERY_PATTERN"), ETYPE, Arg("entity", "word", "ENTITY"),
               Arg("s", "number", "S", "Pinned 'satisfies' in [0, 1].", hi=1.0, default=None),
               Arg("c", "number", "C", "Pinned 'no conflict' in [0, 1].", hi=1.0,
                   default=None)),
       "Pin EBRM's QE judgement for a query (or a glob such as '*手机*') and an entity.",
       lambda a: f"pin {a['query']} × {a['type']}:{a['entity']} = " + ", ".join(
           f"{k} {a[k]:g}" for k in ("s", "c") if a.get(k) is not None),
       entity=True, cross_check=_s_or_c),
    Op("rule", (Arg("category", "text", "CATEGORY"), ETYPE,
                Arg("mode", "choice", "MODE", choices=RULE_MODES)),
       "Make ENTITY_TYPE must-match or ignored in products of CATEGORY ('*' = all).",
       lambda a: f"rule {a['type']} = {a['mode']} in category {a['category']}", entity=True),
    Op("undo", (Arg("target", "seq", "SEQ"),),
       "Switch edit #SEQ off (undo an undo to switch it back on).",
       lambda a: f"undo #{a['target']}"),
)}


def check_args(op: str, args: object) -> dict:
    """The operation's arguments, checked and normalised; EditError names what is wrong.
    Unknown arguments are refused, so a typo never passes silently."""
    if op not in OPS:
        raise EditError(f"unknown edit {op!r}; one of {', '.join(OPS)}")
    if not isinstance(args, dict):
        raise EditError(f"the arguments of {op} must be an object")
    spec = OPS[op]
    unknown = set(args) - {a.name for a in spec.args}
    if unknown:
        raise EditError(f"{op} takes no argument {', '.join(sorted(unknown))}")
    out = {}
    for a in spec.args:
        value = args.get(a.name)
        if value is None:
            if a.default is REQUIRED:
                raise EditError(f"{op} needs {a.metavar.lower().replace('_', ' ')}")
            if a.default is not None:
                out[a.name] = a.default
            continue
        out[a.name] = a.check(value)
    spec.cross_check(out)
    return out


def check_meta(by: object, reason: object) -> tuple[str, str]:
    """Who and why of an edit: one-line strings (reason may be empty); `by` defaults to the
    operating-system user."""
    who = default_user() if by in (None, "") else one_line(by, "by")
    why = "" if reason in (None, "") else one_line(reason, "reason")
    return who, why


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return os.environ.get("USER", "unknown")


def describe(rec: dict) -> str:
    """One line for `weights log`."""
    return OPS[rec["op"]].describe(rec["args"])


@dataclass
class EditState(Edits):
    """The replayed effect of a journal: the scoring edits, the per-product title weights
    ((item, word) → weight) and which records count."""

    doc_weights: dict[tuple[str, str], float] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.doc_weights) or super().__bool__()

    def effects(self) -> set[str]:
        """Each edit in force, by its effect (what `weights diff` compares)."""
        out = {f"set {i} {w} = {x:g}" for (i, w), x in self.doc_weights.items()}
        out |= {f"scale {w} × {f:g}" for w, f in self.scales.items()}
        out |= {f"link {a} → {b} ({w:g})" for (a, b), w in self.links.items()}
        out |= {f"pin {q} × {t}:{e} = {v}" for (q, t, e), v in self.pins.items()}
        out |= {f"rule {t} = {m} in {c}" for (c, t), m in self.rules.items()}
        return out


def active_seqs(records: list[dict]) -> set[int]:
    """The seqs of the records that count (no counting undo targets them): what the log
    marks in force and an undo checks, without replaying the edits themselves."""
    undos_of: dict[int, list[int]] = {}
    for r in records:
        if r["op"] == "undo":
            undos_of.setdefault(r["args"]["target"], []).append(r["seq"])
    counts: dict[int, bool] = {}
    for r in reversed(records):  # targets are older than their undos
        counts[r["seq"]] = not any(counts.get(u, False) for u in undos_of.get(r["seq"], ()))
    return {s for s, on in counts.items() if on}


def replay(records: list[dict]) -> EditState:
    st = EditState(active=active_seqs(records))
    for r in records:
        if r["seq"] in st.active:
            _apply(st, r["op"], r["args"])
    return st


def _apply(st: EditState, op: str, a: dict) -> None:
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


def check_undo(records: list[dict], target: int) -> None:
    if target not in {r["seq"] for r in records}:
        raise EditError(f"no edit #{target} in the journal")
    if target not in active_seqs(records):
        raise EditError(f"edit #{target} is already undone (undo the undo instead)")
