"""Encoding speed of the shipped model: query latency on one thread, title throughput.

    python benchmarks/encoding.py [--model DIR] [--titles 5000] [--queries 1000] [--passes 3]

Each figure is the fastest of `--passes` passes (this shared machine's speed drifts between
minutes); the segmenter's cache is emptied before every pass, so no pass reuses another's work.

Queries are real e-commerce queries (Multi-CPR dev), titles real Taobao titles (NER dev),
from ../shared/data (or $DEEPBOW_DATA).
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import fastest_pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--titles", type=int, default=5000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2, help="threads for title encoding")
    ap.add_argument("--passes", type=int, default=3, help="keep each figure's fastest pass")
    args = ap.parse_args()
    import torch

    import deepbow
    from deepbow.datasets import ner_titles
    from deepbow.locations import shared_data_dir
    from deepbow.readers import read_queries

    model = deepbow.load(args.model)
    qpath = shared_data_dir() / "multicpr_ecom/dev.query.txt"
    queries = [q for _, q in read_queries(qpath)][: args.queries]
    base = [t.text for t in ner_titles("dev")]
    titles = (base * (args.titles // len(base) + 1))[: args.titles]

    clear = model.segmenter._cache.clear
    torch.set_num_threads(1)
    model.encode(queries[:20], "query")
    _, lat, _ = fastest_pass(lambda q: model.encode([q], "query"), queries, args.passes, 0,
                             clear)
    lat_ms = np.array(lat) * 1000
    print(f"query encoding, 1 thread, {len(queries)} queries: p50 {np.percentile(lat_ms, 50):.2f} "
          f"ms, p90 {np.percentile(lat_ms, 90):.2f} ms, p99 {np.percentile(lat_ms, 99):.2f} ms "
          f"(fastest of {args.passes} passes)")

    torch.set_num_threads(args.threads)
    model.encode(titles[:256], "title")
    dt, _, (vecs,) = fastest_pass(lambda ts: model.encode(ts, "title", batch_size=256), [titles],
                                  args.passes, 1, clear)
    n_terms = np.array([len(v) for v in vecs])
    n_exp = np.array([int(v.expanded.sum()) for v in vecs])
    qv = model.encode(queries, "query")
    print(f"title encoding, {args.threads} threads, {len(titles)} titles: {len(titles) / dt:.0f} "
          f"titles/s (fastest of {args.passes} passes)")
    print(f"sparsity: {n_terms.mean():.1f} words per title ({n_exp.mean():.1f} from expansion), "
          f"{np.mean([len(v) for v in qv]):.1f} per query "
          f"({np.mean([int(v.expanded.sum()) for v in qv]):.1f} from expansion); "
          f"vocabulary {model.vocab.size}")


if __name__ == "__main__":
    main()
