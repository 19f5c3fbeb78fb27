"""Edits applied to a catalogue: validation, figures, and the compiled form search reads.

`Editor.apply` is the one entry point for the CLI (`deepbow weights ...`), the studio, imports
and Python: it validates an edit against the table of operations (index/edits.py) and against
the catalogue (the item exists, the word is known or created on purpose, the weight fits the
index's range), computes the figures it changes (the weight before and after, and the ranking
of a sample query before and after), and appends the record to the journal. Nothing in the
postings changes: search reads the compiled journal (`CompiledEdits`) on every call, so an edit
counts at once, in every process.

How edits reach a score (exactly, so explain still sums to the score):
- word scales, bans and links act on the query vector (deepbow/edits.py);
- `set` edits give their products an overlay of title codes; those products are left out of the
  MaxScore walk and scored directly with the overlay, then merged into the top-k (ties by doc).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepbow.edits import WordEdits
from deepbow.errors import InputError
from index.edits import (
    OPS,
    EditState,
    check_args,
    check_meta,
    check_undo,
    describe,
    replay,
)
from index.journal import JOURNAL, EditError, Journal

MAX_FACTOR = 1e6  # the most a word's scales may multiply it by, together


@dataclass
class CompiledEdits:
    """An EditState resolved against one catalogue: the query-side word edits (term ids) and
    the per-product overlay of title codes (doc → term → code)."""

    state: EditState
    words: WordEdits = field(default_factory=WordEdits)
    overlay: dict[int, dict[int, int]] = field(default_factory=dict)


def journal_of(path: str | Path) -> Journal:
    """The journal of an index directory, or a journal file itself."""
    path = Path(path)
    return Journal(path / JOURNAL if path.is_dir() else path, check_args)


def read_edits(path: str | Path) -> EditState:
    """The effect of a journal (a file, or an index directory holding edits.jsonl): what
    `deepbow score|explain|eval --edits` applies to pair scoring (word scales, bans, links,
    pins and rules; per-product weights need the index)."""
    return replay(journal_of(path).read())


def compile_edits(state: EditState, cat) -> CompiledEdits:
    """`state` against a catalogue: word ids, and each edited product's codes. Title weights
    folded into the postings at a compaction are compared with what the journal now says."""
    out = CompiledEdits(state, WordEdits.compile(state, cat.model.vocab))
    ids = cat.id_map()
    want: dict[tuple[str, str], int] = {key: title_code(cat, x)
                                        for key, x in state.doc_weights.items()}
    for f in cat.folded_edits():  # folded into the postings at the last compact
        key = (f["item"], f["word"])
        if want.get(key) == f["code"]:
            del want[key]
        elif key not in want:
            want[key] = f["original"]
    vocab = cat.model.vocab
    for (item, word), code in want.items():
        doc = ids.get(item)
        if doc is None:
            continue
        t = vocab.word_id(word)
        if cat.doc_codes(doc, np.array([t]))[0] != code:  # else a no-op
            out.overlay.setdefault(doc, {})[t] = code
    return out


def title_code(cat, weight: float) -> int:
    """The 8-bit code of a title weight in this index; a weight above its range is refused."""
    scale = cat.index.scale
    code = weight / scale
    if not code < 255.5:  # also inf, from a weight near the float maximum
        raise EditError(f"weight {weight:g} is above the largest title weight this index "
                        f"stores ({255 * scale:.4g})")
    return int(round(code))


class Editor:
    """Edits of one catalogue (index/catalogue.py), journalled in `<index>/edits.jsonl`.
    `reranker` (index/rerank.py) shows what entity edits (pins, rules) do to a sample query."""

    def __init__(self, catalogue, reranker=None) -> None:
        self.cat = catalogue
        self.reranker = reranker
        self.journal = journal_of(catalogue.path)

    def log(self) -> list[dict]:
        return self.journal.read()

    # -- the one way in -------------------------------------------------------------------
    def apply(self, op: str, args: dict, by: object = None, reason: object = "",
              query: str | None = None, k: int = 10, create: bool = False) -> dict:
        """Validate, compute the figures, append; returns the record. `create` allows words
        outside the model's vocabulary (their hash bucket, shared with other rare words)."""
        args = check_args(op, args)
        by, reason = check_meta(by, reason)
        if not isinstance(create, bool):
            raise EditError(f"create must be true or false, got {create!r}")
        if query is not None and not isinstance(query, str):
            raise EditError(f"the sample query must be a string, got {query!r}")
        for name in OPS[op].words:
            self._word(args[name], create)
        figures = {**self._before_after(op, args), **self._ranking(op, args, query, k)}
        return append_edit(self.journal, op, args, by, reason, figures)

    def _word(self, word: str, create: bool) -> None:
        if word not in self.cat.model.vocab.term_index and not create:
            raise EditError(f"{word!r} is not a word of the model's vocabulary; pass "
                            "create=True (--create) to edit its hash bucket, shared with other "
                            "rare words")

    def _before_after(self, op: str, a: dict) -> dict:
        """The value the edit changes, before and after; refuses what cannot apply here."""
        state = self.cat.journal_edits().state
        if op == "set":
            if a["item"] not in self.cat.id_map():
                raise EditError(f"unknown item id {a['item']!r}")
            title_code(self.cat, a["weight"])
            return {"weight_before": self.current_weight(a["item"], a["word"]),
                    "weight_after": a["weight"]}
        if op in ("scale", "ban"):
            before = state.scales.get(a["word"], 1.0)
            after = 0.0 if op == "ban" else before * a["factor"]
            if after > MAX_FACTOR:
                raise EditError(f"{a['word']!r} would weigh {after:g} times its weight; at "
                                f"most {MAX_FACTOR:g} (undo an earlier scale instead)")
            return {"factor_before": before, "factor_after": after}
        if op in ("link", "unlink"):
            before = state.links.get((a["from"], a["to"]))
            if op == "unlink" and before is None:
                raise EditError(f"no link {a['from']} → {a['to']} to remove")
            return {"link_before": before, "link_after": a.get("weight")}
        if op == "rule":
            return {"mode_before": state.rules.get((a["category"], a["type"]), "default"),
                    "mode_after": a["mode"]}
        if op == "undo":
            target = next((r for r in self.log() if r["seq"] == a["target"]), None)
            if target is None:
                raise EditError(f"no edit #{a['target']} in the journal")
            return {"undid": describe(target)}
        return {}

    def _ranking(self, op: str, args: dict, query: str | None, k: int) -> dict:
        """The sample query's top k before and after the edit (by EBRM reranking DeepBoW's
        top 50 for entity edits, when a reranker is given)."""
        if not query:
            return {}
        now = self.cat.journal_edits()  # one view of the index for before and after
        records = self.log()
        after = compile_edits(replay([*records, {"op": op, "args": args, "seq": (
            records[-1]["seq"] + 1) if records else 1}]), self.cat)
        if OPS[op].entity:
            if self.reranker is None:
                return {"query": query, "note": "no EBRM model attached: no ranking shown"}
            return {"query": query, "scorer": "ebrm", **{
                side: [{"id": h.id, "score": round(s, 6)}
                       for h, s in self.reranker.rerank(query, k, "ebrm", edits=e)]
                for side, e in (("before", now), ("after", after))}}
        return {"query": query, **{
            side: [{"id": h.id, "score": round(h.score, 6)}
                   for h in self.cat.search(query, k, edits=e)]
            for side, e in (("before", now), ("after", after))}}

    def current_weight(self, item: str, word: str) -> float:
        doc = self.cat.id_map()[item]
        tid = self.cat.model.vocab.word_id(word)
        return float(self.cat.doc_codes(doc, np.array([tid]))[0] * self.cat.index.scale)

    # -- the operations by name (Python convenience over apply) -------------------------------
    def set_weight(self, item: str, word: str, weight: float, **kw) -> dict:
        return self.apply("set", {"item": item, "word": word, "weight": weight}, **kw)

    def scale(self, word: str, factor: float, **kw) -> dict:
        return self.apply("scale", {"word": word, "factor": factor}, **kw)

    def ban(self, word: str, **kw) -> dict:
        return self.apply("ban", {"word": word}, **kw)

    def link(self, a: str, b: str, weight: float = 1.0, **kw) -> dict:
        return self.apply("link", {"from": a, "to": b, "weight": weight}, **kw)

    def unlink(self, a: str, b: str, **kw) -> dict:
        return self.apply("unlink", {"from": a, "to": b}, **kw)

    def pin(self, pattern: str, etype: str, entity: str, s: float | None = None,
            c: float | None = None, **kw) -> dict:
        return self.apply("pin", {"query": pattern, "type": etype, "entity": entity, "s": s,
                                  "c": c}, **kw)

    def rule(self, category: str, etype: str, mode: str, **kw) -> dict:
        return self.apply("rule", {"category": category, "type": etype, "mode": mode}, **kw)

    def undo(self, seq: int, **kw) -> dict:
        return self.apply("undo", {"target": seq}, **kw)

    # -- inspecting and moving edits between copies ---------------------------------------------
    def item_words(self, item_id: str) -> list[tuple[str, float, bool]]:
        """(word, title weight, edited?) of one product as search sees it, heaviest first."""
        doc = self.cat.id_map().get(item_id)
        if doc is None:
            raise InputError(f"unknown id {item_id!r}")
        over = self.cat.journal_edits().overlay.get(doc, {})
        vec = {**self.cat.doc_vector(doc), **over}
        vocab = self.cat.model.vocab
        rows = [(vocab.term_name(t), c * self.cat.index.scale, t in over)
                for t, c in vec.items() if c > 0]
        return sorted(rows, key=lambda r: -r[1])

    def export(self, path: str | Path) -> int:
        """Write the whole journal (every record, undos included) to `path`."""
        from deepbow.fileio import atomic_write_text

        records = self.log()
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                        for r in records))
        return len(records)

    def import_(self, path: str | Path, by: str | None = None,
                progress: Callable[[int], None] | None = None) -> list[dict]:
        """Replay another journal's records here, in order, each validated as a new edit
        (undo targets are renumbered); who, when and why are kept in `imported`. The whole
        file is checked first, then appended at once: all of it or nothing."""
        src = journal_of(path).read()
        if not src:
            raise InputError(f"{path}: no edits to import")
        by = None if by is None else check_meta(by, "")[0]
        entries = []
        for r in src:
            args = check_args(r["op"], r["args"])
            if r["op"] == "set" and args["item"] not in self.cat.id_map():
                raise EditError(f"{path}: edit #{r['seq']}: unknown item id {args['item']!r}")
            who, why = check_meta(r.get("by"), r.get("reason", ""))
            entries.append({"by": by or who, "reason": why, "op": r["op"], "args": args,
                            "figures": r.get("figures") or {},
                            "imported": {"seq": r["seq"], "ts": r.get("ts"), "by": r.get("by"),
                                         "from": str(path)}})
        renum: dict[int, int] = {}

        def check(records: list[dict], rec: dict) -> dict:
            if rec["op"] == "undo":
                src_target = rec["args"]["target"]
                if src_target not in renum:
                    raise EditError(f"{path}: undo of #{src_target}, which is not in the file")
                rec["args"] = {"target": renum[src_target]}
            args = _check_record(records, rec)
            renum[rec["imported"]["seq"]] = rec["seq"]
            return args

        out = self.journal.append(entries, check)
        if progress:
            progress(len(out))
        return out

    def diff(self, path: str | Path) -> dict[str, list[str]]:
        """Effective edits only here and only in the journal at `path` (by their effect)."""
        here = self.cat.journal_edits().state.effects()
        there = read_edits(path).effects()
        return {"only_here": sorted(here - there), "only_there": sorted(there - here)}


def append_edit(journal: Journal, op: str, args: dict, by: object = None, reason: object = "",
                figures: dict | None = None) -> dict:
    """Validate one record (its arguments, who and why, against the journal as it stands)
    and append it; returns it."""
    by, reason = check_meta(by, reason)
    [rec] = journal.append([{"by": by, "reason": reason, "op": op, "args": args,
                             "figures": figures or {}}], _check_record)
    return rec


def _check_record(records: list[dict], rec: dict) -> dict:
    """A record's arguments checked against the journal as it stands, under its lock."""
    args = check_args(rec["op"], rec["args"])
    if rec["op"] == "undo":
        check_undo(records, args["target"])
    return args

