"""EBRM throughput: tagging (titles/s), cold QE judgements (entities/s), warm-cache query–item
scores per second on one thread, and a warm start from the on-disk cache.

    python benchmarks/ebrm_throughput.py [--model DIR] [--titles 200000] [--queries 20]

The catalogue is the NER titles (train + dev), tagged once, then sampled with replacement up to
--titles rows (so the distinct-entity count is that of real titles). Queries are product words
and brand + product words from the dev titles.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--titles", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    import deepbow
    from ebrm.model import EBRM

    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp())
    path = args.model or deepbow.default_ebrm_path()
    model = EBRM.load(path, cache=tmp / "qe.sqlite")
    table, queries = catalogue_and_queries(model, args.titles, args.queries, rng)
    timed_scores(model, table, queries)
    st = model.cache.stats()
    model.cache.close()
    fresh = EBRM.load(path, cache=tmp / "qe.sqlite")
    fresh.qe.predict = None  # any cross-encoder call would fail: the disk cache must serve
    t0 = time.perf_counter()
    for q in queries:
        fresh.score_table(q, table)
    disk = time.perf_counter() - t0
    print(f"warm start from disk (SQLite, {st['entries']:,} entries, "
          f"{st['bytes'] / 2**20:.1f} MiB): {len(table) * len(queries) / disk:,.0f} QI scores/s "
          f"including loading each query's judgements")


def catalogue_and_queries(model, n_titles: int, n_queries: int, rng: random.Random):
    """The tagged NER titles sampled up to n_titles rows, and product / brand + product
    queries from the dev titles."""
    from deepbow.datasets import ner_titles
    from ebrm.table import EntityTable

    tagged = ner_titles("train") + ner_titles("dev")
    texts = [t.text for t in tagged]
    t0 = time.perf_counter()
    lists = model.entities(texts)  # tagged entities and product candidates, as scored
    tag_s = time.perf_counter() - t0
    print(f"tagging (with product candidates): {len(texts)} titles in {tag_s:.1f} s = "
          f"{len(texts) / tag_s:,.0f} titles/s "
          f"(one thread), {np.mean([len(x) for x in lists]):.1f} entities per title")
    picks = [rng.randrange(len(lists)) for _ in range(n_titles)]
    table = EntityTable([lists[i] for i in picks], model.gamma, model.brand_gamma,
                        [texts[i] for i in picks])
    print(f"catalogue: {len(table):,} titles, {len(table.keys):,} distinct entities")
    dev = ner_titles("dev")
    products = sorted({p for t in dev for p in t.of_type("product") if len(p) >= 2})
    queries = rng.sample(products, min(n_queries // 2, len(products)))
    for t in rng.sample(dev, len(dev)):
        if len(queries) >= n_queries:
            break
        b, p = sorted(t.of_type("brand")), sorted(t.of_type("product"))
        if b and p:
            queries.append(b[0] + p[0])
    return table, queries


def timed_scores(model, table, queries: list[str]) -> None:
    """Cold (cross-encoder) and warm (in-memory cache) scoring speed."""
    cold_q = queries[:3]
    t0 = time.perf_counter()
    for q in cold_q:
        model.score_table(q, table)
    cold = time.perf_counter() - t0
    n_ent = len(cold_q) * len(table.keys)
    print(f"cold: {len(cold_q)} queries × {len(table.keys):,} entities through the "
          f"cross-encoder in {cold:.1f} s = {n_ent / cold:,.0f} entities/s (one thread)")
    for q in queries[3:]:  # warm the cache for the rest, untimed
        model.score_table(q, table)
    model.cache.hits = model.cache.misses = 0
    lat = []
    for _ in range(3):
        for q in queries:
            t0 = time.perf_counter()
            model.score_table(q, table)
            lat.append(time.perf_counter() - t0)
    lat = np.array(lat)
    print(f"warm (in-memory cache): {len(table) * len(lat) / lat.sum():,.0f} QI scores/s "
          f"(one thread); per query over {len(table):,} titles p50 {1e3 * np.median(lat):.1f} ms"
          f", p99 {1e3 * np.quantile(lat, 0.99):.1f} ms; hit rate "
          f"{model.cache.stats()['hit_rate']:.1%}")


if __name__ == "__main__":
    main()
