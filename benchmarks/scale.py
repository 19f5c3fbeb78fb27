"""Beyond one machine: Ray encoding and Milvus serving against the in-process path and local index.

    python benchmarks/scale.py [--items 100000] [--encode 8192] [--work work/scale]

Needs the `scale` extra and ../shared/data. Prints, never asserts a time:

1. Encoding throughput, the same --encode titles: in-process (`encode_items`, torch on 2
   threads) vs Ray (a local cluster of 2 CPUs, 2 actors × 0.5 CPU × 1 thread, Ray started
   beforehand), and whether the codes are bit-identical.
2. The catalogue: --items items from the Taobao NER titles (train + dev, 11,487 titles; copy
   r >= 1 of title i gets the suffix " r" (benchmarks/index_build.py also suffixes copy 0),
   and the gold product and brand as filter fields), built once into a local index under
   --work (reused on later runs: encoding 100k titles takes about 1.5 minutes here).
3. Loading it into milvus-lite (rows/s), then Milvus vs the local index on the 1,000 held-out
   Multi-CPR e-commerce dev queries (measuring only; never trained on): QPS single and batched,
   p50/p99, retrieval only (query vectors encoded beforehand) and end to end, top-10
   agreement (ids and scores), every disagreement shown; and the same with a product filter.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import fastest_pass  # noqa: E402


def ner_items(n: int) -> list[dict]:
    from deepbow.datasets import ner_titles

    base = ner_titles("train") + ner_titles("dev")
    out = []
    for i in range(n):
        t, rep = base[i % len(base)], i // len(base)
        it = {"id": f"t{i}", "title": t.text if rep == 0 else f"{t.text} {rep}"}
        for typ in ("product", "brand"):
            ents = sorted(t.of_type(typ))
            if ents:
                it[typ] = ents[0]
        out.append(it)
    return out


def bench_encoding(model, n: int) -> None:
    """The same n titles both ways. Ray's figure includes starting the actors and loading the
    model in each (a fixed cost per call); the marginal rate subtracts a 256-title call's."""
    import torch

    from deepbow import default_model_path
    from index import ray_encode
    from index.catalogue import INDEX_BATCH, encode_items

    items = ner_items(n)
    torch.set_num_threads(2)
    encode_items(model, ner_items(64), INDEX_BATCH)  # warm up jieba and torch
    a = time.perf_counter()
    want = encode_items(model, items, INDEX_BATCH)
    t_local = time.perf_counter() - a
    cfg = ray_encode.RayConfig(num_cpus=2, actors=2, cpus_per_actor=0.5, threads=1)
    a = time.perf_counter()
    with ray_encode.ray_session(cfg):
        t_init = time.perf_counter() - a
        a = time.perf_counter()
        ray_encode.encode_items(items[:256], model, default_model_path(), cfg)
        t_small = time.perf_counter() - a
        a = time.perf_counter()
        got = ray_encode.encode_items(items, model, default_model_path(), cfg)
        t_ray = time.perf_counter() - a
    same = (got != want).nnz == 0 and np.array_equal(got.indptr, want.indptr)
    other = encode_items(model, items, 1000)  # another cut of the same titles
    print(f"encoding {n} titles: in-process {n / t_local:,.0f} titles/s ({t_local:.1f} s, "
          f"torch 2 threads); Ray 2 actors x 0.5 CPU x 1 thread: {n / t_ray:,.0f} titles/s "
          f"({t_ray:.1f} s with actor start and model loads; a 256-title call takes "
          f"{t_small:.1f} s, so {(n - 256) / (t_ray - t_small):,.0f} titles/s marginal; "
          f"ray.init {t_init:.1f} s); codes bit-identical to in-process: {same}; "
          f"(in-process with chunks of 1,000 instead of {INDEX_BATCH}: "
          f"{(want != other).nnz} of {want.nnz} codes differ)")


def local_catalogue(model, n: int, work: Path):
    from index.catalogue import Catalogue

    path = work / f"ix-{n}"
    if (path / "manifest.json").is_file():
        return Catalogue.open(path, model)
    a = time.perf_counter()
    cat = Catalogue.build(model, ner_items(n), path, overwrite=True)
    print(f"built the local index of {n} items in {time.perf_counter() - a:.0f} s (cached in "
          f"{path})")
    return cat


def percentiles(lat) -> str:
    ms = np.array(lat) * 1000
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"


def compare(cat, served, queries, k: int, filters=None) -> None:
    """Top-k agreement on every query, disagreements shown (ids, exact scores)."""
    local = cat.batch_search(queries, k, filters)
    served.index.widened = served.index.fetched = 0
    remote = served.batch_search(queries, k, filters)
    pairs = list(zip(local, remote, strict=True))
    same_ids = sum([h.id for h in a] == [h.id for h in b] for a, b in pairs)
    same_all = sum([(h.id, h.score) for h in a] == [(h.id, h.score) for h in b] for a, b in pairs)
    print(f"  top-{k} ids identical: {same_ids}/{len(queries)} "
          f"({100 * same_ids / len(queries):.2f}%); ids and scores identical: {same_all}; "
          f"queries with a hit: {sum(bool(x) for x in local)}; "
          f"uncertain (ties past 16,384): {served.index.uncertain}; asked again with a 4x "
          f"limit: {served.index.widened} times; rows scored exactly: "
          f"{served.index.fetched / len(queries):.1f} a query")
    for q, a, b in zip(queries, local, remote, strict=True):
        if [h.id for h in a] != [h.id for h in b]:
            print(f"  differs: {q!r}\n    local  {[(h.id, h.score) for h in a]}\n"
                  f"    milvus {[(h.id, h.score) for h in b]}")


def timings(cat, served, queries, k: int, passes: int, filters=None) -> None:
    qvs = cat.model.encode(queries, "query")
    mask = cat.index.mask_for(cat.filter_bitmap(filters))
    t, lat, _ = fastest_pass(lambda q: cat.index.search_codes(q.ids, q.codes, k, mask=mask),
                             qvs, passes)
    print(f"  local index, retrieval only: {len(qvs) / t:,.0f} QPS, {percentiles(lat)}")
    t, lat, _ = fastest_pass(
        lambda q: served.index.search_codes([(q.ids, q.codes, q.scale)], k, filters), qvs,
        passes)
    print(f"  Milvus single, retrieval only: {len(qvs) / t:,.0f} QPS, {percentiles(lat)}")
    batches = [qvs[a:a + 100] for a in range(0, len(qvs), 100)]
    t, lat, _ = fastest_pass(lambda b: served.index.search_codes(
        [(q.ids, q.codes, q.scale) for q in b], k, filters), batches, passes)
    print(f"  Milvus batched (100 a call), retrieval only: {len(qvs) / t:,.0f} QPS")
    t, lat, _ = fastest_pass(lambda q: cat.search(q, k, filters), queries, 1)
    print(f"  local end to end (encode + search + hits): {len(queries) / t:,.0f} QPS, "
          f"{percentiles(lat)}")
    t, lat, _ = fastest_pass(lambda q: served.search(q, k, filters), queries, 1)
    print(f"  Milvus end to end: {len(queries) / t:,.0f} QPS, {percentiles(lat)}")


def bench_milvus(cat, work: Path, queries: list[str], k: int, passes: int,
                 reuse: bool = False) -> None:
    from index.milvus import MilvusIndex
    from index.milvus_catalogue import MilvusCatalogue, export_catalogue

    uri = str(work / f"m{cat.index.n_docs}.db")
    if reuse and Path(uri).exists():
        mix = MilvusIndex.open(uri, "bench")
        print(f"reusing {uri}: {mix.count():,} items")
    else:
        a = time.perf_counter()
        mix = export_catalogue(cat, uri, "bench", overwrite=True)
        t = time.perf_counter() - a
        print(f"loaded {mix.count():,} items into milvus-lite: {cat.index.n_alive / t:,.0f} "
              f"rows/s ({t:.1f} s; insert batches of 2,000, index built as it goes)")
    with MilvusCatalogue(mix, cat.model) as served:
        print(f"{len(queries)} Multi-CPR dev queries, top-{k}, no filter:")
        compare(cat, served, queries, k)
        timings(cat, served, queries, k, passes)
        counts: dict[str, int] = {}
        for it in (cat.item(d) for d in range(0, cat.index.n_docs, 7)):
            if it.get("product"):
                counts[it["product"]] = counts.get(it["product"], 0) + 1
        top = sorted(counts, key=lambda p: -counts[p])[:5]
        flt = {"product": top}
        print(f"with the filter product in {top}:")
        compare(cat, served, queries, k, flt)
        timings(cat, served, queries, k, passes, flt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--encode", type=int, default=8192, help="titles for the encoding race")
    ap.add_argument("--queries", default=None, help="default: multicpr_ecom/dev.query.txt")
    ap.add_argument("--work", default="work/scale")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma list: encoding, milvus")
    ap.add_argument("--reuse-milvus", action="store_true",
                    help="search the collection a previous run loaded instead of loading it")
    args = ap.parse_args()
    import torch

    import deepbow
    from deepbow.locations import shared_data_dir
    from deepbow.readers import read_queries

    model = deepbow.load(args.model)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if "encoding" not in args.skip:
        bench_encoding(model, args.encode)
    if "milvus" in args.skip:
        return
    torch.set_num_threads(1)
    qpath = Path(args.queries or shared_data_dir() / "multicpr_ecom" / "dev.query.txt")
    queries = [q.strip() for _, q in read_queries(qpath)]
    cat = local_catalogue(model, args.items, work)
    print(json.dumps({k: v for k, v in cat.stats().items() if k != "filter_fields"}))
    bench_milvus(cat, work, queries, args.k, args.passes, args.reuse_milvus)


if __name__ == "__main__":
    main()
