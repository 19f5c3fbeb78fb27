"""Build the pool of unlabelled query–title pairs that become deepbow's judged TRAINING data.

The pool is built like the judged dev file (judged/README.md in the shared data) but from
training material only, so that models can be trained on judged pairs without ever seeing a dev
title or a dev query. Every random draw is seeded (SEED), so the same data and code give the same
pool, byte for byte.

Titles (the catalogue): the Taobao NER *train* titles (ecommerce_ner/taobao_ner_train.txt and
taobao_brandproduct_train.bieos), distinct after normalisation (NFKC, lower case, spaces
collapsed; a title found in both files keeps the union of its gold entities). A train title whose
normalised text is also a dev title (the dev files repeat several hundred train titles) is
dropped, so no judged training pair shares a title with the dev catalogue.

Queries, four kinds (qtype, as in the dev file), drawn at random within each kind; a query whose
normalised text, spaces removed, occurs in the judged dev file is never drawn, nor is one query
drawn twice:
- `product` (40): a gold product word (two characters or more) that at least MIN_TITLES
  catalogue titles are tagged with and that sits inside no other gold product word of the
  catalogue;
- `product-inside-other-words` (40): the same, but the word does sit inside another gold product
  word of the catalogue, not as its end (手机 in 手机壳; 智能手机 does not count: head-final, it
  is a 手机);
- `brand+product` (40): a gold brand and a gold product word tagged in the same catalogue title
  (each two characters or more, neither inside the other), written "brand product" or
  "brandproduct" at random; a brand or a product word is used once in this kind;
- `real` (160): real shopper queries from multicpr_ecom/train.query.txt only (never
  dev.query.txt), taken in a seeded random order and kept when the catalogue can plausibly answer
  them. The rule: the query's head product word is the last (then longest) of its product words
  as EBRM reads them (the tagger's product entities plus gazetteer product words, the
  `product_words` of ebrm.model); it must have two characters or more, and at least one catalogue
  title must sell it: a gold product word of the title equals it or ends with it (head-final, so
  a 智能手机 title answers 手机, a 手机壳 title does not).

Candidates per query (pooling, as in TREC): the top TOP_K titles over the whole catalogue of each
of four scorers, titles with a zero score left out:
- BM25: bm25s (default k1, b) over the DeepBoW model's jieba segmenter, the catalogue as corpus;
- DeepBoW: the shipped model; every title's codes are encoded once, a query's scores are the
  exact integer dot products the index and `deepbow score` compute;
- EBRM: the shipped model, memory-only QE cache, scored on every catalogue title (entities tagged
  once);
- the hybrid: Hybrid.combine of the DeepBoW and EBRM scores of every title.
Ties are broken by catalogue order. The union is taken round-robin (rank 1 of BM25, DeepBoW,
EBRM, hybrid, then rank 2, ...). Then up to MAX_HARD titles where the query's product word (the
query itself, the product part of a brand+product query, a real query's head word) occurs only
inside longer product words of the title (deepbow.datasets.is_hard_negative over the title's
gold product words), drawn at random among those not pooled already. A query keeps at most CAP
pairs: its hard negatives first, then the round-robin union up to CAP. Pairs are shuffled within
a query, so a judge cannot infer a rank, and queries are shuffled across kinds before they get
their ids.

Outputs in --out: pool.jsonl ({"pid","qid","query","qtype","title"}: no scores, no labels);
chunks/chunk-XX.jsonl (the pool in consecutive chunks of about CHUNK pairs, a query's pairs
always in one chunk, so judges can work in parallel); stats.txt (queries and pairs per kind and
per chunk, and how many candidates each source gave).

Run from a deepbow checkout (PYTHONPATH=<checkout>):
    python3 make_pool.py --data /work/shared/data --out DIR
EBRM over the whole catalogue takes most of the time (about 15 s a query on one CPU thread).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SEED = "deepbow-train-pool-v1"
QTYPES = {"real": 160, "product": 40, "brand+product": 40, "product-inside-other-words": 40}
TOP_K = 8
MAX_HARD = 3
CAP = 16
CHUNK = 300
MIN_TITLES = 2
SCORERS = ("bm25", "deepbow", "ebrm", "hybrid")


def rng_for(name: str) -> random.Random:
    """One independent seeded stream per draw, so changing one draw leaves the others alone."""
    return random.Random(f"{SEED}:{name}")


def key(query: str) -> str:
    """The form in which two queries count as the same: normalised, spaces removed."""
    from deepbow.text import normalize

    return normalize(query).replace(" ", "")


@dataclass
class Catalogue:
    texts: list[str] = field(default_factory=list)  # as in the NER file (first occurrence)
    norm: list[str] = field(default_factory=list)
    products: list[set[str]] = field(default_factory=list)  # gold product words
    brands: list[set[str]] = field(default_factory=list)  # gold brands


def load_catalogue(data: Path) -> tuple[Catalogue, int]:
    """Distinct train titles minus those that are also dev titles; and how many were dropped."""
    from deepbow.datasets import ner_titles
    from deepbow.text import normalize

    dev = {normalize(t.text) for t in ner_titles("dev", data)}
    cat, where = Catalogue(), {}
    dropped = set()
    for t in ner_titles("train", data):
        n = normalize(t.text)
        if not n or n in dev:
            dropped.add(n)
            continue
        if n not in where:
            where[n] = len(cat.texts)
            cat.texts.append(t.text)
            cat.norm.append(n)
            cat.products.append(set())
            cat.brands.append(set())
        cat.products[where[n]] |= t.of_type("product")
        cat.brands[where[n]] |= t.of_type("brand")
    return cat, len(dropped)


def dev_query_keys(data: Path) -> set[str]:
    with open(data / "judged" / "ecom_judged_dev.jsonl", encoding="utf-8") as fh:
        return {key(json.loads(line)["query"]) for line in fh if line.strip()}


# -- queries ------------------------------------------------------------------------------------
@dataclass
class Query:
    query: str
    qtype: str
    product: str  # the word whose hard negatives are pooled
    brand: str = ""


def draw(pool: list, n: int, name: str, taken: set[str], to_query) -> list[Query]:
    """n queries from `pool` (sorted, so the draw does not depend on set order) in a seeded
    random order; to_query(item, chosen) makes an item's query, or None to pass it over; a
    query whose key is taken (dev queries, earlier draws) is passed over too."""
    order = sorted(pool)
    rng_for(name).shuffle(order)
    out: list[Query] = []
    for item in order:
        q = to_query(item, out)
        if q is None or key(q.query) in taken:
            continue
        taken.add(key(q.query))
        out.append(q)
        if len(out) == n:
            break
    return out


def product_words(cat: Catalogue) -> tuple[list[str], list[str]]:
    """Gold product words tagged in at least MIN_TITLES titles: (inside no other product word,
    inside another product word not as its end)."""
    count = Counter(p for ps in cat.products for p in ps if len(p) >= 2)
    every = {p for ps in cat.products for p in ps}
    plain, inside = [], []
    for p, n in count.items():
        if n < MIN_TITLES:
            continue
        hosts = any(p in w and w != p and not w.endswith(p) for w in every)
        (inside if hosts else plain).append(p)
    return plain, inside


def brand_product_query(pair: tuple[str, str], chosen: list[Query]) -> Query | None:
    """"brand product" or "brandproduct" (a seeded coin per pair); None when the brand or the
    product word is already in a chosen query of this kind."""
    brand, product = pair
    if any(brand in (q.brand, q.product) or product in (q.brand, q.product) for q in chosen):
        return None
    sep = " " if rng_for(f"spacing:{brand}:{product}").random() < 0.5 else ""
    return Query(f"{brand}{sep}{product}", "brand+product", product, brand)


def brand_products(cat: Catalogue) -> list[tuple[str, str]]:
    """(brand, product) gold pairs tagged in one title, neither inside the other."""
    return sorted({(b, p) for bs, ps in zip(cat.brands, cat.products, strict=True)
                   for b in bs for p in ps
                   if len(b) >= 2 and len(p) >= 2 and b not in p and p not in b})


def real_head(query: str, tagger) -> str | None:
    """The query's head product word as EBRM reads it: the last (then longest) product word."""
    from ebrm.model import product_words as ebrm_product_words

    ents = ebrm_product_words(tagger.tag([query], candidates=True)[0])
    if not ents:
        return None
    return max(ents, key=lambda e: (e.end, e.end - e.start)).text


def real_queries(data: Path, cat: Catalogue, tagger, taken: set[str]) -> list[Query]:
    """QTYPES["real"] shopper queries the catalogue can answer (see the module docstring)."""
    from deepbow.text import normalize

    with open(data / "multicpr_ecom" / "train.query.txt", encoding="utf-8") as fh:
        raw = [line.rstrip("\n").split("\t", 1)[-1] for line in fh if line.strip()]
    sold = {p for ps in cat.products for p in ps}
    answered: dict[str, bool] = {}

    def sells(head: str) -> bool:
        if head not in answered:
            answered[head] = any(p.endswith(head) for p in sold)
        return answered[head]

    def to_query(text: str, _chosen: list[Query]) -> Query | None:
        q = normalize(text)
        head = real_head(q, tagger) if q else None
        if head is None or len(head) < 2 or not sells(head):
            return None
        return Query(q, "real", head)

    return draw(list(set(raw)), QTYPES["real"], "real", taken, to_query)


def all_queries(data: Path, cat: Catalogue, tagger) -> list[Query]:
    taken = dev_query_keys(data)
    plain, inside = product_words(cat)
    qs = draw(plain, QTYPES["product"], "product", taken,
              lambda p, _: Query(p, "product", p))
    qs += draw(inside, QTYPES["product-inside-other-words"], "inside", taken,
               lambda p, _: Query(p, "product-inside-other-words", p))
    qs += draw(brand_products(cat), QTYPES["brand+product"], "brand+product", taken,
               brand_product_query)
    qs += real_queries(data, cat, tagger, taken)
    return qs


# -- scorers over the whole catalogue -----------------------------------------------------------
class Scorers:
    """The four scorers, each giving a score to every catalogue title for a query."""

    def __init__(self, cat: Catalogue) -> None:
        import bm25s

        import deepbow
        from ebrm.hybrid import Hybrid

        self.deepbow = deepbow.load()
        self.ebrm = deepbow.load_ebrm(cache=None)
        self.hybrid = Hybrid(self.deepbow, self.ebrm)
        self.segmenter = self.deepbow.segmenter
        tokens = [self.segmenter.words(n) or ["<empty>"] for n in cat.norm]
        self.vocab: dict[str, int] = {}
        ids = [[self.vocab.setdefault(w, len(self.vocab)) for w in ts] for ts in tokens]
        self.bm25 = bm25s.BM25()
        self.bm25.index(bm25s.tokenization.Tokenized(ids=ids, vocab=self.vocab),
                        show_progress=False)
        self.codes = self.deepbow.encode_csr(cat.texts).astype(np.int64)
        self.table = self.ebrm.table(cat.texts)
        self.n = len(cat.texts)

    def deepbow_scores(self, query: str) -> np.ndarray:
        """Exact DeepBoW scores of every title (the integer dot product times both scales)."""
        v = self.deepbow.encode([query], "query")[0]
        dense = np.zeros(self.codes.shape[1], np.int64)
        dense[v.ids] = v.codes
        return (self.codes @ dense) * (v.scale * self.deepbow.scales["title"])

    def scores(self, query: str) -> dict[str, np.ndarray]:
        from deepbow.text import normalize

        ids = [self.vocab[w] for w in self.segmenter.words(normalize(query)) if w in self.vocab]
        bm25 = (np.asarray(self.bm25.get_scores(ids), np.float64) if ids
                else np.zeros(self.n))
        dbow = self.deepbow_scores(query)
        ebrm = self.ebrm.score_table(query, self.table)[0]
        self.ebrm.cache.mem.clear()  # one query's judgements are never needed again
        return {"bm25": bm25, "deepbow": dbow, "ebrm": ebrm,
                "hybrid": self.hybrid.combine(dbow, ebrm)}


def top(scores: np.ndarray, k: int) -> list[int]:
    """The k best titles with a positive score, ties by catalogue order."""
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return [int(i) for i in order if scores[i] > 0]


def hard_negatives(word: str, cat: Catalogue, pooled: set[int], rng: random.Random) -> list[int]:
    from deepbow.datasets import is_hard_negative

    found = [i for i, (n, ps) in enumerate(zip(cat.norm, cat.products, strict=True))
             if i not in pooled and word in n and is_hard_negative(word, n, ps)]
    return rng.sample(found, min(MAX_HARD, len(found)))


def candidates(q: Query, scorers: Scorers, cat: Catalogue, tally: Counter) -> list[int]:
    """A query's pooled titles (see the module docstring), in no particular order yet."""
    ranked = {name: top(s, TOP_K) for name, s in scorers.scores(q.query).items()}
    union: list[int] = []
    for r in range(TOP_K):
        for name in SCORERS:
            if r < len(ranked[name]) and ranked[name][r] not in union:
                union.append(ranked[name][r])
    hard = hard_negatives(q.product, cat, set(union), rng_for(f"hard:{q.query}"))
    kept = hard + union[:CAP - len(hard)]
    tally["union"] += len(union)
    tally["hard negatives"] += len(hard)
    tally["cut by the cap"] += len(hard) + len(union) - len(kept)
    for name in SCORERS:
        tally[f"in the {name} top {TOP_K}"] += len(set(ranked[name]) & set(kept))
    return kept


# -- output -------------------------------------------------------------------------------------
def build_pool(qs: list[Query], scorers: Scorers, cat: Catalogue, tally: Counter) -> list[dict]:
    order = list(qs)
    rng_for("query-order").shuffle(order)
    rows = []
    for n, q in enumerate(order):
        titles = candidates(q, scorers, cat, tally)
        rng_for(f"pairs:{q.query}").shuffle(titles)
        rows += [{"pid": f"t-{len(rows) + j}", "qid": f"train-{n}", "query": q.query,
                  "qtype": q.qtype, "title": cat.texts[i]} for j, i in enumerate(titles)]
        if (n + 1) % 20 == 0 or n + 1 == len(order):
            print(f"{n + 1}/{len(order)} queries, {len(rows)} pairs", file=sys.stderr)
    return rows


def chunked(rows: list[dict]) -> list[list[dict]]:
    """Consecutive chunks of about CHUNK pairs; a query goes where its middle pair falls."""
    by_qid: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_qid[r["qid"]].append(r)
    n_chunks = max(1, round(len(rows) / CHUNK))
    size = len(rows) / n_chunks
    chunks: list[list[dict]] = [[] for _ in range(n_chunks)]
    seen = 0
    for group in by_qid.values():
        chunks[min(n_chunks - 1, int((seen + len(group) / 2) / size))] += group
        seen += len(group)
    return chunks


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def stats_text(rows: list[dict], chunks: list[list[dict]], tally: Counter,
               dropped: int, n_titles: int) -> str:
    qids = defaultdict(set)
    pairs = Counter()
    for r in rows:
        qids[r["qtype"]].add(r["qid"])
        pairs[r["qtype"]] += 1
    per_query = Counter(r["qid"] for r in rows).values()
    lines = [f"catalogue: {n_titles} distinct train titles ({dropped} train titles that are "
             "also dev titles left out)", "",
             f"{'qtype':<28} {'queries':>7} {'pairs':>6}"]
    lines += [f"{t:<28} {len(qids[t]):>7} {pairs[t]:>6}" for t in QTYPES]
    lines += [f"{'all':<28} {sum(map(len, qids.values())):>7} {len(rows):>6}", "",
              f"pairs per query: min {min(per_query)}, mean {np.mean(list(per_query)):.1f}, "
              f"max {max(per_query)}", ""]
    lines += [f"{k}: {v}" for k, v in sorted(tally.items())] + [""]
    lines += [f"chunk-{i:02d}.jsonl  {len({r['qid'] for r in c}):>3} queries  {len(c):>4} pairs"
              for i, c in enumerate(chunks)]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("--out", type=Path, required=True, help="where pool.jsonl etc. go")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    cat, dropped = load_catalogue(args.data)
    print(f"catalogue: {len(cat.texts)} titles; loading the scorers", file=sys.stderr)
    scorers = Scorers(cat)
    qs = all_queries(args.data, cat, scorers.ebrm.tagger)
    print(f"{len(qs)} queries: {dict(Counter(q.qtype for q in qs))}", file=sys.stderr)
    tally: Counter = Counter()
    rows = build_pool(qs, scorers, cat, tally)
    chunks = chunked(rows)
    out = args.out
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    for old in glob.glob(str(out / "chunks" / "chunk-*.jsonl")):
        os.remove(old)
    write_jsonl(out / "pool.jsonl", rows)
    for i, c in enumerate(chunks):
        write_jsonl(out / "chunks" / f"chunk-{i:02d}.jsonl", c)
    (out / "stats.txt").write_text(stats_text(rows, chunks, tally, dropped, len(cat.texts)),
                                   encoding="utf-8")


if __name__ == "__main__":
    main()
