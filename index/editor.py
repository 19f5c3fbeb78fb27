"""Edits applied to a catalogue: validation, figures, and the compiled form search reads.

`Editor` is the one entry point for the CLI (`deepbow weights ...`), the studio and Python:
each method validates the edit against the catalogue (the item exists, the word is known or
created on purpose, the weight fits the index's range), computes the figures it changes
(the weight before and after, and the ranking of a sample query before and after), appends the
record to the journal and returns it. Nothing in the postings changes: search reads the
compiled journal (`CompiledEdits`) on every call, so an edit counts at once, in every process.

How edits reach a score (exactly, so explain still sums to the score):
- word scales, bans and links act on the query vector (a scale of a word's weight scales its
  contribution whichever side it is put on); codes are re-rounded integers as before;
- `set` edits give their products an overlay of title codes; those products are left out of the
  MaxScore walk and scored directly with the overlay, then merged into the top-k (ties by doc).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepbow.errors import InputError
from deepbow.sparse import SparseVector
from index.edits import JOURNAL, EditError, EditState, Journal, check_args, describe, replay

MAX_QUERY_CODE_EDITED = 1 << 24


@dataclass
class CompiledEdits:
    """An EditState resolved against one catalogue (term ids, doc numbers, codes)."""

    state: EditState
    term_factor: dict[int, float] = field(default_factory=dict)
    links: dict[int, list[tuple[int, str, float]]] = field(default_factory=dict)
    overlay: dict[int, dict[int, int]] = field(default_factory=dict)  # doc → term → code

    def edit_query(self, qv: SparseVector) -> SparseVector:
        if not (self.term_factor or self.links):
            return qv
        exp = qv.expanded if qv.expanded is not None else np.zeros(len(qv), bool)
        rows: dict[int, list] = {int(t): [int(c), w, bool(e)]
                                 for t, c, w, e in zip(qv.ids, qv.codes, qv.words, exp,
                                                       strict=True)}
        for t, (c, _, _) in list(rows.items()):
            for b, word_b, w in self.links.get(t, ()):
                code = int(round(c * w))
                if b in rows:
                    rows[b][0] = max(rows[b][0], code)
                else:
                    rows[b] = [code, word_b, True]
        for t, row in rows.items():
            f = self.term_factor.get(t)
            if f is not None:
                row[0] = min(int(round(row[0] * f)), MAX_QUERY_CODE_EDITED)
        keep = sorted(t for t, r in rows.items() if r[0] > 0)
        return SparseVector(np.array(keep, np.int32),
                            np.array([rows[t][0] for t in keep], np.int64), qv.scale,
                            [rows[t][1] for t in keep],
                            np.array([rows[t][2] for t in keep], bool))


def compile_words(state: EditState, vocab) -> CompiledEdits:
    """The word-level part of an EditState (scales, bans, links) for a model's vocabulary:
    what applies to pair scoring, where there are no catalogue items."""
    out = CompiledEdits(state)
    for word, f in state.scales.items():
        out.term_factor[vocab.word_id(word)] = f
    for (a, b), w in state.links.items():
        out.links.setdefault(vocab.word_id(a), []).append((vocab.word_id(b), b, w))
    return out


def apply_journal(scorer, path: str | Path) -> EditState:
    """Make a DeepBoW, EBRM or Hybrid scorer read the edits of a journal (a file, or an index
    directory holding edits.jsonl): word scales, bans and links on DeepBoW's query vectors,
    pins and type rules in EBRM. Per-product weights need the index (search, weights show)."""
    path = Path(path)
    state = replay(Journal(path / JOURNAL if path.is_dir() else path).read())
    parts = [getattr(scorer, "deepbow", None), getattr(scorer, "ebrm", None)]
    for m in [p for p in parts if p is not None] or [scorer]:
        if hasattr(m, "vocab"):
            m.query_edits = compile_words(state, m.vocab)
        else:
            m.edits = state
    return state


class Editor:
    """Edits of one catalogue (index/catalogue.py), journalled in `<index>/edits.jsonl`."""

    def __init__(self, catalogue) -> None:
        self.cat = catalogue
        self.journal = Journal(Path(catalogue.path) / JOURNAL)
        self._sig: tuple | None = None
        self._compiled: CompiledEdits | None = None

    # -- reading ----------------------------------------------------------------------------
    def compiled(self) -> CompiledEdits:
        """The journal's effect, recompiled whenever the journal file changed."""
        sig = (self.journal.signature(), self.cat.version)
        if sig != self._sig or self._compiled is None:
            self._compiled = self.compile(replay(self.journal.read()))
            self._sig = sig
        return self._compiled

    def compile(self, state: EditState) -> CompiledEdits:
        vocab = self.cat.model.vocab
        out = compile_words(state, vocab)
        ids = self.cat.id_map()
        folded = self.cat.index.meta.get("folded_edits", {})
        want: dict[tuple[str, str], int] = {}
        for (item, word), x in state.doc_weights.items():
            want[(item, word)] = self.title_code(x)
        for key, f in folded.items():  # folded into the postings at the last compact
            item, word = key.split("\t", 1)
            if want.get((item, word)) == f["code"]:
                del want[(item, word)]
            elif (item, word) not in want:
                want[(item, word)] = f["original"]
        for (item, word), code in want.items():
            doc = ids.get(item)
            if doc is None:
                continue
            t = vocab.word_id(word)
            if self.cat.doc_codes(doc, np.array([t]))[0] != code:  # else a no-op
                out.overlay.setdefault(doc, {})[t] = code
        return out

    def title_code(self, weight: float) -> int:
        scale = self.cat.index.scale
        code = int(round(weight / scale))
        if code > 255:
            raise EditError(f"weight {weight:g} is above the largest title weight this index "
                            f"stores ({255 * scale:.4g})")
        return code

    def log(self) -> list[dict]:
        return self.journal.read()

    # -- figures ----------------------------------------------------------------------------
    def _figures(self, record: dict, query: str | None, k: int) -> dict:
        """What the edit changes: the ranking of `query` before and after (top k); by EBRM
        (reranking DeepBoW's top 50) for entity edits, which need an attached EBRM model."""
        if not query:
            return {}
        records = self.journal.read()
        after_state = replay([*records, {**record, "seq": (records[-1]["seq"] + 1)
                                         if records else 1}])
        after_edits = self.compile(after_state)
        if record["op"] in ("pin", "rule"):
            if self.cat.ebrm is None:
                return {"query": query, "note": "no EBRM model attached: no ranking shown"}
            before = self.cat.rerank(query, k, "ebrm")
            after = self.cat.rerank(query, k, "ebrm", edits=after_edits)
            return {"query": query, "scorer": "ebrm",
                    "before": [{"id": h.id, "score": round(s, 6)} for h, s in before],
                    "after": [{"id": h.id, "score": round(s, 6)} for h, s in after]}
        before = self.cat.search(query, k)
        after = self.cat.search(query, k, edits=after_edits)

        def rows(hits):
            return [{"id": h.id, "score": round(h.score, 6)} for h in hits]

        return {"query": query, "before": rows(before), "after": rows(after)}

    # -- edits ------------------------------------------------------------------------------
    def _word(self, word: str, create: bool) -> str:
        from deepbow.text import normalize

        w = normalize(word)
        if not w:
            raise EditError("empty word")
        if w not in self.cat.model.vocab.term_index and not create:
            raise EditError(f"{w!r} is not a word of the model's vocabulary; pass create=True "
                            f"(--create) to edit its hash bucket, shared with other rare words")
        return w

    def _item(self, item: str) -> str:
        if str(item) not in self.cat.id_map():
            raise EditError(f"unknown item id {item!r}")
        return str(item)

    def _apply(self, op: str, args: dict, by: str | None, reason: str, query: str | None,
               k: int, figures: Callable[[dict], dict] = lambda a: {}) -> dict:
        """Check the arguments once, then `figures(args)` (which may refuse the edit too), the
        sample query's rankings, and append."""
        args = check_args(op, args)
        figures = {**figures(args), **self._figures({"op": op, "args": args}, query, k)}
        rec = self.journal.append(op, args, by, reason, figures)
        self._sig = None
        return rec

    def current_weight(self, item: str, word: str) -> float:
        doc = self.cat.id_map()[item]
        tid = self.cat.model.vocab.word_id(word)
        return float(self.cat.doc_codes(doc, np.array([tid]))[0] * self.cat.index.scale)

    def set_weight(self, item: str, word: str, weight: float, by: str | None = None,
                   reason: str = "", create: bool = False, query: str | None = None,
                   k: int = 10) -> dict:
        item, word = self._item(item), self._word(word, create)

        def figures(a: dict) -> dict:
            self.title_code(a["weight"])  # refuses a weight the index cannot store
            return {"weight_before": self.current_weight(item, word), "weight_after": a["weight"]}

        return self._apply("set", {"item": item, "word": word, "weight": weight}, by, reason,
                           query, k, figures)

    def scale(self, word: str, factor: float, by: str | None = None, reason: str = "",
              create: bool = False, query: str | None = None, k: int = 10) -> dict:
        word = self._word(word, create)
        before = self.compiled().state.scales.get(word, 1.0)
        return self._apply("scale", {"word": word, "factor": factor}, by, reason, query, k,
                           lambda a: {"factor_before": before,
                                      "factor_after": before * a["factor"]})

    def ban(self, word: str, by: str | None = None, reason: str = "", create: bool = False,
            query: str | None = None, k: int = 10) -> dict:
        word = self._word(word, create)
        before = self.compiled().state.scales.get(word, 1.0)
        return self._apply("ban", {"word": word}, by, reason, query, k,
                           lambda a: {"factor_before": before, "factor_after": 0.0})

    def link(self, a: str, b: str, weight: float = 1.0, by: str | None = None,
             reason: str = "", create: bool = False, query: str | None = None,
             k: int = 10) -> dict:
        a, b = self._word(a, create), self._word(b, create)
        before = self.compiled().state.links.get((a, b))
        return self._apply("link", {"from": a, "to": b, "weight": weight}, by, reason, query, k,
                           lambda x: {"link_before": before, "link_after": x["weight"]})

    def unlink(self, a: str, b: str, by: str | None = None, reason: str = "",
               query: str | None = None, k: int = 10) -> dict:
        from deepbow.text import normalize

        a, b = normalize(a), normalize(b)
        before = self.compiled().state.links.get((a, b))
        if before is None:
            raise EditError(f"no link {a} → {b} to remove")
        return self._apply("unlink", {"from": a, "to": b}, by, reason, query, k,
                           lambda a: {"link_before": before, "link_after": None})

    def pin(self, query_pattern: str, etype: str, entity: str, s: float | None = None,
            c: float | None = None, by: str | None = None, reason: str = "",
            query: str | None = None, k: int = 10) -> dict:
        from ebrm.tagger import ENTITY_TYPES

        if etype not in ENTITY_TYPES:
            raise EditError(f"unknown entity type {etype!r}; one of {', '.join(ENTITY_TYPES)}")
        return self._apply("pin", {"query": query_pattern, "type": etype, "entity": entity,
                                   "s": s, "c": c}, by, reason, query, k)

    def rule(self, category: str, etype: str, mode: str, by: str | None = None,
             reason: str = "", query: str | None = None, k: int = 10) -> dict:
        from ebrm.tagger import ENTITY_TYPES

        if etype not in ENTITY_TYPES:
            raise EditError(f"unknown entity type {etype!r}; one of {', '.join(ENTITY_TYPES)}")
        before = self.compiled().state.rules.get((category, etype), "default")
        return self._apply("rule", {"category": category, "type": etype, "mode": mode}, by,
                           reason, query, k, lambda a: {"mode_before": before,
                                                        "mode_after": a["mode"]})

    def undo(self, seq: int, by: str | None = None, reason: str = "",
             query: str | None = None, k: int = 10) -> dict:
        records = self.journal.read()
        target = next((r for r in records if r["seq"] == seq), None)
        if target is None:
            raise EditError(f"no edit #{seq} in the journal")
        return self._apply("undo", {"target": seq}, by, reason, query, k,
                           lambda a: {"undid": describe(target)})

    # -- moving edits between copies ----------------------------------------------------------
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
        (undo targets are renumbered); who, when and why are kept in `imported`."""
        src = Journal(path).read()
        if not src:
            raise InputError(f"{path}: no edits to import")
        renum: dict[int, int] = {}
        out = []
        for r in src:
            args = dict(r["args"])
            if r["op"] == "undo":
                if args["target"] not in renum:
                    raise EditError(f"{path}: undo of #{args['target']}, which is not in the file")
                args["target"] = renum[args["target"]]
            if r["op"] == "set":
                self._item(args["item"])
            rec = self.journal.append(r["op"], args, by or r.get("by"), r.get("reason", ""),
                                      r.get("figures"), extra={"imported": {
                                          "seq": r["seq"], "ts": r.get("ts"),
                                          "by": r.get("by"), "from": str(path)}})
            renum[r["seq"]] = rec["seq"]
            out.append(rec)
            if progress:
                progress(1)
        self._sig = None
        return out

    def diff(self, path: str | Path) -> dict[str, list[str]]:
        """Effective edits only here and only in the journal at `path` (by their effect)."""
        def effects(state: EditState) -> set[str]:
            out = {f"set {i} {w} = {x:g}" for (i, w), x in state.doc_weights.items()}
            out |= {f"scale {w} × {f:g}" for w, f in state.scales.items()}
            out |= {f"link {a} → {b} ({w:g})" for (a, b), w in state.links.items()}
            out |= {f"pin {q} × {t}:{e} = {v}" for (q, t, e), v in state.pins.items()}
            out |= {f"rule {t} = {m} in {c}" for (c, t), m in state.rules.items()}
            return out

        here = effects(self.compiled().state)
        there = effects(replay(Journal(path).read()))
        return {"only_here": sorted(here - there), "only_there": sorted(there - here)}
