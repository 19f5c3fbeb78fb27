"""EBRM end to end: tag a title's entities, judge each against the query, combine by soft logic.

    sat(q, item) = OR_{e ∈ product entities} w_e · s(q, e)   the item sells what q asks for
                   [OR ε · lexical(q, item)]                (the back-off, when ε > 0)
    ok(q, item)  = AND_{e ∈ tagged entities} c(q, e)         nothing in it contradicts q
                   [AND present(q, item)]                   (when q names a brand: it is there)
    score        = sat · (1 + ok)  ∈ [0, 2]

lexical(q, item) is 1 when a product word of the query occurs in the title's text: a weak
literal (ε ≈ 0.1, "product_backoff" in the manifest, chosen on validation) that keeps a title
whose product the tagger or the cross-encoder missed (空调挂机 for 空调) above titles that do not
mention the product at all, without letting it pass as a match.

present(q, item), when the model asks for it ("query_brand_presence" in the manifest), is either
"text": 1 if a brand the query names occurs in the title's text, else 0; or "entities" (True in
older models): OR_{b ∈ title brands} c(q, b). The query's brands are the tagger's; with
"query_brand_fallback", a query where the tagger finds none names the words outside its product
word instead (queries are short "brand product" strings, unlike the titles the tagger learned
from, and it misses many of their brands: 49 of the 236 dev queries with other-brand products).

w_e is 1 for a tagged product word and confidence ** γ for an untagged product candidate (a word
of the title the tagger did not tag as a product; see Tagger.tag); γ is chosen on validation.

OR and AND are one t-norm family (product by default; ebrm/soft_logic.py). The score reads as an
expected grade: sat is the probability of label ≥ 1 (right product) and sat · ok the probability
of label 2 (right product, nothing in conflict), so 0 / 1 / 2 fall out of two thresholds stored
with the model. Every figure in the formula is a cached per-entity judgement, which is what makes
the model readable and correctable entity by entity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from deepbow.edits import Edits
from deepbow.errors import InputError
from deepbow.modelfile import save_model_dir
from deepbow.text import normalize
from ebrm.cache import Key, QECache, cache_file
from ebrm.explain import ROLE_OTHER, ROLE_PRODUCT, EBRMExplanation, EntityRow
from ebrm.lexicon import Entity
from ebrm.modeldir import FORMAT, fit_weights, read_model_dir
from ebrm.soft_logic import soft_and, soft_or
from ebrm.table import EntityTable, or_weights

_SEPARATORS = re.compile(r"[\s,，、/|;；]+")


def product_words(ents: Sequence[Entity]) -> list[Entity]:
    """A query's product words: tagged products and gazetteer product candidates (conf 1)."""
    return [e for e in ents if e.type == "product" and (not e.candidate or e.conf >= 0.99)]


def words_besides_product(query: str, ents: Sequence[Entity]) -> list[str]:
    """The words of a query outside its product word (the last product entity, or gazetteer
    product candidate, of the query), of two characters or more: in "贵人鸟开衫" or "海尔 led"
    what qualifies the product, almost always its brand."""
    prods = product_words(ents)
    if not prods:
        return []
    head = max(prods, key=lambda e: (e.end, e.end - e.start))
    rest = f"{query[:head.start]} {query[head.end:]}"
    return [w for w in _SEPARATORS.split(rest) if len(w) >= 2]


class EBRM:
    """Entity tagger + QE cross-encoder + QE cache + soft logic; see the module docstring.

    `entity_memo` shares the tagged titles of another EBRM with the same tagger (calibration
    scores trial models with other logic settings without tagging the titles again)."""

    def __init__(self, tagger, qe, manifest: dict, cache: QECache | None = None,
                 entity_memo: dict[str, list[Entity]] | None = None) -> None:
        self.tagger = tagger
        self.qe = qe
        self.manifest = manifest
        self.cache = cache if cache is not None else QECache(None, self.model_id)
        self._titles: dict[str, list[Entity]] = {} if entity_memo is None else entity_memo
        self._query_readings: dict = {}

    @property
    def model_id(self) -> str:
        return self.manifest.get("model_id", "unsaved")

    def with_logic(self, **logic) -> EBRM:
        """The same tagger, cross-encoder, cache and tagged titles with other manifest values
        of the logic (family, gammas, presence, back-off): a trial model for calibration."""
        return EBRM(self.tagger, self.qe, {**self.manifest, **logic}, self.cache, self._titles)

    # -- entities -------------------------------------------------------------------------
    def entities(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Tagged entities of each text (remembered per text, up to 200k texts)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._titles]
        if todo:
            if len(self._titles) + len(todo) > 200_000:
                self._titles.clear()
            cands = bool(self.manifest.get("product_candidates"))
            for t, ents in zip(todo, self.tagger.tag(todo, candidates=cands), strict=True):
                self._titles[t] = ents
        return [self._titles[t] for t in texts]

    @property
    def family(self) -> str:
        """The t-norm family of the soft logic (ebrm/soft_logic.py), from the manifest."""
        return self.manifest.get("family", "product")

    @property
    def thresholds(self) -> np.ndarray:
        return np.asarray(self.manifest.get("thresholds", [0.5, 1.5]), np.float64)

    @property
    def gamma(self) -> float:
        """Exponent on an untagged candidate's confidence (0: candidates count fully; chosen on
        validation with the t-norm family)."""
        return float(self.manifest.get("candidate_gamma", 1.0))

    @property
    def brand_gamma(self) -> float | None:
        """Exponent on an untagged brand candidate's confidence; None: brand candidates off."""
        g = self.manifest.get("brand_candidate_gamma")
        return None if g is None else float(g)

    @property
    def modifier_weight(self) -> float:
        """A product candidate's weight in the OR when it qualifies the next product word of the
        title (手机 in 手机防水袋), as a factor (1: no different from other candidates)."""
        return float(self.manifest.get("candidate_modifier_weight", 1.0))

    @property
    def secondary_weight(self) -> float:
        """The OR weight of a product word other than the title's main product (ebrm/table.py
        main_products), as a factor (1: every product word counts alike)."""
        return float(self.manifest.get("secondary_product_weight", 1.0))

    @property
    def query_focus(self) -> str:
        """What the cross-encoder's *satisfies* is asked about: "full", the whole query, or
        "product", the query's product words (the form it learned; a real query's modifiers and
        brand are then judged by no-conflict and the brand presence alone)."""
        return self.manifest.get("query_focus", "full")

    def table(self, titles: Sequence[str]) -> EntityTable:
        return EntityTable(self.entities(titles), self.gamma, self.brand_gamma, titles,
                           self.modifier_weight, self.secondary_weight)

    def warm(self, queries: Iterable[str], table: EntityTable, progress=None) -> int:
        """Judge every (query, entity of the table) pair ahead of time, so later searches read
        the cache; returns the number of new judgements."""
        before = self.cache.misses
        for q in queries:
            self.score_table(q, table)
            if progress is not None:
                progress(1)
        return self.cache.misses - before

    # -- QE judgements --------------------------------------------------------------------
    def qe_scores(self, query: str, keys: Sequence[Key], edits: Edits | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(s, c) per entity key for a query: judgements of the query (with query_focus
        "product", s is the best over the query's product words), then pinned values (operator
        edits, keyed by the whole query) on top."""
        q = normalize(query)
        arr = self._judge(q, keys)
        focus = self.query_products(query) if self.query_focus == "product" else []
        if focus:
            arr[:, 0] = np.max([self._judge(p, keys)[:, 0] for p in focus], axis=0)
        if edits is not None and edits.pins:
            for i, k in enumerate(keys):
                ps, pc = edits.pin_for(q, k[0], k[1])
                if ps is not None:
                    arr[i, 0] = ps
                if pc is not None:
                    arr[i, 1] = pc
        return arr[:, 0], arr[:, 1]

    def _judge(self, q: str, keys: Sequence[Key]) -> np.ndarray:
        """[len(keys), 2] (s, c) of a normalised query: the cache first, the cross-encoder for
        the misses (stored in the cache)."""
        vals, missing = self.cache.lookup(q, keys)
        if missing:
            s, c = self.qe.predict([q] * len(missing), [keys[i] for i in missing])
            self.cache.store(q, ((keys[i], float(a), float(b))
                                 for i, a, b in zip(missing, s, c, strict=True)))
            for i, a, b in zip(missing, s, c, strict=True):
                vals[i] = (float(a), float(b))
        return np.array(vals, np.float64).reshape(-1, 2)

    def score_table(self, query: str, table: EntityTable,
                    categories: Sequence[Sequence[str]] | None = None,
                    edits: Edits | None = None) -> tuple[np.ndarray, ...]:
        """(score, sat, ok) per title of the table: one QE lookup per distinct entity.
        categories: each title's product categories, for the operators' type rules."""
        parts = self._logic(query, table, categories, edits)
        return parts["score"], parts["sat"], parts["ok"]

    def _logic(self, query: str, table: EntityTable,
               categories: Sequence[Sequence[str]] | None = None,
               edits: Edits | None = None) -> dict[str, np.ndarray]:
        """Every term of the soft logic per title (s and c per entity key, the back-off, the
        brand presence, sat, ok, score): score_table returns the last three, explain all."""
        if not normalize(query):
            raise InputError("empty query")
        s, c = self.qe_scores(query, table.keys, edits)
        s_ext = np.append(s, 0.0)  # the padding sentinel: identity of OR ...
        c_ext = np.append(c, 1.0)  # ... and of AND
        S, C = s_ext[table.prod] * table.conf, 1.0 - table.every_w * (1.0 - c_ext[table.every])
        must = np.ones(len(table))
        if edits is not None and edits.rules:
            S, C, must = _apply_rules(edits, table, S, C, categories)
        sat = soft_or(S, self.family)
        backoff = self.product_backoff(query, table)
        if backoff is not None:
            sat = soft_or(np.stack([sat, backoff], -1), self.family)
        sat = sat * must
        ok = soft_and(C, self.family)
        present = self.brand_presence(query, table, c_ext)
        if present is not None:
            ok = soft_and(np.stack([ok, present], -1), self.family)
        return {"s": s, "c": c, "backoff": backoff, "present": present, "sat": sat, "ok": ok,
                "score": sat * (1.0 + ok)}

    def _query_reading(self, query: str) -> tuple[list[str], list[str], bool]:
        """(brands, product words, whether the brands are the fallback's words) of a query,
        from one tagging (remembered per query)."""
        q = normalize(query)
        fallback = bool(self.manifest.get("query_brand_fallback"))
        got = self._query_readings.get((q, fallback))
        if got is None:
            ents = self.tagger.tag([q], candidates=True)[0]
            brands = [e.text for e in ents if e.type == "brand" and not e.candidate]
            besides = not brands and fallback
            if besides:
                brands = words_besides_product(q, ents)
            got = brands, list(dict.fromkeys(e.text for e in product_words(ents))), besides
            if len(self._query_readings) >= 200_000:  # bounded, as the tagged titles are
                self._query_readings.clear()
            self._query_readings[(q, fallback)] = got
        return got

    def query_brands(self, query: str) -> list[str]:
        """The brands the query names: the tagger's, or (manifest "query_brand_fallback") when
        it finds none, the words outside the query's product word."""
        return self._query_reading(query)[0]

    def query_products(self, query: str) -> list[str]:
        """The query's product words: tagged, or gazetteer product words (candidates of
        confidence 1)."""
        return self._query_reading(query)[1]

    @property
    def backoff(self) -> float:
        """ε of the lexical back-off in sat (0: off)."""
        return float(self.manifest.get("product_backoff", 0.0))

    def product_backoff(self, query: str, table: EntityTable) -> np.ndarray | None:
        """Per title ε if a product word of the query occurs in its text, else 0; None when
        the back-off is off or the query has no product word."""
        words = self.query_products(query) if self.backoff > 0 else []
        if not words:
            return None
        return self.backoff * table.containing(words)

    @property
    def presence_mode(self) -> str | None:
        """How a brand the query names must be found in a title: "text", "share" (the share of
        its words found in the title's text), "entities" or None."""
        mode = self.manifest.get("query_brand_presence")
        return "entities" if mode is True else (mode or None)

    def brand_presence(self, query: str, table: EntityTable, c_ext: np.ndarray):
        """Per title, whether the brand the query names is there ("text": it occurs in the
        title; "entities": OR over the title's brand entities and candidates of c). A title
        that names no brand at all cannot then pass as that brand's product. None when off or
        the query names no brand."""
        mode = self.presence_mode
        brands = self.query_brands(query) if mode else []
        if not brands:
            return None
        if mode == "text":
            return table.containing(brands).astype(np.float64)
        if mode == "share":
            words = list(dict.fromkeys(w for b in brands for w in (
                [x for x in self.tagger.segmenter().words(b) if len(x) >= 2 or x.isascii()]
                or [b])))
            return np.mean([table.containing([w]) for w in words], axis=0)
        c0 = c_ext.copy()
        c0[-1] = 0.0  # the sentinel of an OR
        return soft_or(c0[table.brands], self.family)

    def score(self, query: str, titles: Sequence[str],
              categories: Sequence[Sequence[str]] | None = None,
              edits: Edits | None = None) -> np.ndarray:
        return self.score_table(query, self.table(titles), categories, edits)[0]

    def score_pairs(self, pairs: Iterable[tuple[str, str]], edits: Edits | None = None
                    ) -> np.ndarray:
        pairs = list(pairs)
        out = np.zeros(len(pairs), np.float64)
        by_query: dict[str, list[int]] = {}
        for i, (q, _) in enumerate(pairs):
            by_query.setdefault(q, []).append(i)
        self.entities([t for _, t in pairs])
        for q, idx in by_query.items():
            out[idx] = self.score(q, [pairs[i][1] for i in idx], edits=edits)
        return out

    def label(self, scores) -> np.ndarray:
        return np.digitize(np.asarray(scores, np.float64), self.thresholds)

    def explain(self, query: str, title: str, categories: Sequence[str] = (),
                edits: Edits | None = None) -> EBRMExplanation:
        if not normalize(title):
            raise InputError("empty title")
        ents = self.entities([title])[0]
        table = EntityTable([ents], self.gamma, self.brand_gamma, [title], self.modifier_weight,
                            self.secondary_weight)
        parts = self._logic(query, table, [categories], edits)
        score, sat, ok = (float(parts[k][0]) for k in ("score", "sat", "ok"))
        present, backoff = parts["present"], parts["backoff"]
        brands, products, besides = self._query_reading(query)
        weights = or_weights(ents, self.gamma, self.modifier_weight, self.secondary_weight)
        rows = [row for e, w in zip(ents, weights, strict=True)
                if (row := self._row(query, e, w, table, parts, categories, edits)) is not None]
        notes = []
        if not any(e.type == "product" for e in ents):
            notes.append("no product entity found in the title: nothing can satisfy the query, "
                         "so the score is 0")
        if present is not None and float(present[0]) < 0.5:
            what = "words besides its product word" if besides else "brand"
            notes.append(f"the query's {what} ({', '.join(brands)}): not in the title, so at "
                         "most a partial match")
        rule = {"text": "1 if it occurs in the title's text, else 0",
                "share": "the share of its words found in the title's text"}.get(
            self.presence_mode or "", "OR(c of the title's brands)")
        return EBRMExplanation(query, title, rows, sat, ok, score, int(self.label([score])[0]),
                               self.family, notes, brands,
                               None if present is None else float(present[0]), rule, products,
                               None if backoff is None else float(backoff[0]), besides)

    def _row(self, query: str, e: Entity, w: float, table: EntityTable, parts: dict,
             categories: Sequence[str], edits: Edits | None) -> EntityRow | None:
        """One entity's line of the explanation: its judgements, weight `w` in the OR and role
        (None for a brand candidate that plays no part in this model)."""
        i = table.keys.index((e.type, e.text))
        role = ROLE_PRODUCT if e.type == "product" else ROLE_OTHER
        if e.candidate and e.type == "product":
            role = (f"product candidate, untagged (tagger confidence {e.conf:.2f}; the OR "
                    f"reads s × {w:.2f})")
        elif e.type == "product" and w < 1.0:
            role = f"{role}; not the title's main product: the OR reads s × {w:.2f}"
        elif e.candidate:
            if self.brand_gamma is not None:
                w = e.conf ** self.brand_gamma
                role = (f"brand candidate, untagged (tagger confidence {e.conf:.2f}; the "
                        f"AND reads 1 − {w:.2f} × (1 − c))")
            elif parts["present"] is not None:
                w = 0.0
                role = "brand candidate, untagged (only where the query's brand is sought)"
            else:
                return None
        if edits is not None and edits.rules:
            mode = edits.rule_for(["*", *categories], e.type)
            role = {"ignore": "ignored (rule)",
                    "must_match": f"{role} · its conflict multiplies sat (must-match "
                                  "rule)"}.get(mode, role)
        pinned = edits is not None and edits.pin_for(normalize(query), e.type, e.text) != (
            None, None)
        return EntityRow(e.type, e.text, e.start, e.end, float(parts["s"][i]),
                         float(parts["c"][i]), role, pinned, w, e.candidate)

    # -- disk -----------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> str:
        state = {f"tagger.{k}": v.detach().cpu().numpy()
                 for k, v in self.tagger.net.state_dict().items()}
        state |= {f"qe.{k}": v.detach().cpu().numpy()
                  for k, v in self.qe.net.state_dict().items()}
        lexicon = self.tagger.lexicon
        texts = {"chars.txt": self.tagger.vocab.chars,
                 "products.txt": lexicon.of_type("product"),
                 "brands.txt": lexicon.of_type("brand")}
        self.manifest = save_model_dir(path, FORMAT, state, texts,
                                       {**self.manifest, **(extra or {})})
        return self.model_id

    @classmethod
    def load(cls, path: str | Path, verify: bool = True,
             cache: str | Path | bool | None = True) -> EBRM:
        """Load an EBRM directory. cache: True = the default file for this model under
        $DEEPBOW_CACHE (or ~/.cache/deepbow), a path = that SQLite file, False/None = memory."""
        from ebrm import qe as qe_mod

        manifest, arrays, tagger = read_model_dir(Path(path), verify)
        qnet = qe_mod.build_net(len(tagger.vocab), **manifest.get("qe", {}))
        fit_weights(qnet, arrays, "qe.", Path(path))
        model_id = manifest.get("model_id", "")
        if cache is True:
            cache = cache_file(model_id)
        qc = QECache(cache if cache else None, model_id)
        return cls(tagger, qe_mod.QEModel(qnet, tagger.vocab), manifest, qc)


def _apply_rules(edits: Edits, table: EntityTable, S, C, categories):
    """Type rules: `ignore` drops an entity from the logic (s 0, c 1); `must_match` makes a
    conflict on it fatal (its c multiplies sat, so a wrong brand is irrelevant, not a
    partial match)."""
    S, C = S.copy(), C.copy()
    must = np.ones(len(table))
    sentinel = len(table.keys)
    for i in range(len(table)):
        cats = ["*", *(categories[i] if categories is not None else ())]
        for j, kid in enumerate(table.every[i]):
            if kid == sentinel:
                break
            mode = edits.rule_for(cats, table.keys[kid][0])
            if mode == "ignore":
                C[i, j] = 1.0
                S[i, table.prod[i] == kid] = 0.0
            elif mode == "must_match":
                must[i] *= C[i, j]
    return S, C, must
