"""Index build and load at catalogue scale.

    python benchmarks/index_build.py [--titles 100000] [--docs 1000000]

1. Builds a Catalogue of --titles real-size titles (real Taobao titles from the NER sets, made
   unique by a suffix) with the shipped model and splits the time into encoding and the rest.
2. Builds an index of --docs documents whose vectors are the encoded titles repeated (real
   sizes: the same number of terms and weights per title), writes it, and times the mmap load
   and a first search.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from scipy import sparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--titles", type=int, default=100_000)
    ap.add_argument("--docs", type=int, default=1_000_000)
    args = ap.parse_args()
    import deepbow
    from deepbow.datasets import ner_titles
    from index.catalogue import Catalogue, encode_items
    from index.inverted import InvertedIndex

    model = deepbow.load(args.model)
    base = [t.text for t in ner_titles("train")] + [t.text for t in ner_titles("dev")]
    items = [{"id": f"t{i}", "title": f"{base[i % len(base)]} {i // len(base)}"}
             for i in range(args.titles)]
    work = Path(tempfile.mkdtemp(prefix="deepbow-bench-"))
    try:
        a = time.perf_counter()
        codes = encode_items(model, items, 2048)
        t_enc = time.perf_counter() - a
        a = time.perf_counter()
        Catalogue.build(model, items, work / "cat")
        t_total = time.perf_counter() - a
        print(f"{args.titles} titles: encoding {t_enc:.1f}s ({args.titles / t_enc:.0f}/s); whole "
              f"build {t_total:.1f}s, of which encoding {t_enc / t_total:.0%}; the rest "
              f"(postings, items, filters, writing) ≈ {t_total - t_enc:.1f}s")
        reps = args.docs // codes.shape[0] + 1
        big = sparse.vstack([codes] * reps, format="csr")[: args.docs]
        a = time.perf_counter()
        index = InvertedIndex.from_csr(big, scale=model.scales["title"])
        t_post = time.perf_counter() - a
        a = time.perf_counter()
        index.save(work / "big")
        t_save = time.perf_counter() - a
        a = time.perf_counter()
        loaded = InvertedIndex.load(work / "big", mmap=True)
        t_load = time.perf_counter() - a
        q = model.encode(["华为手机"], "query")[0]
        a = time.perf_counter()
        loaded.search_codes(q.ids, q.codes, 10)
        t_first = time.perf_counter() - a  # may include numba compiling the kernel once
        a = time.perf_counter()
        loaded.search_codes(q.ids, q.codes, 10)
        t_second = time.perf_counter() - a
        st = loaded.stats()
        print(f"{args.docs} docs ({st['postings']} postings, {st['postings'] / args.docs:.1f} per "
              f"doc, {st['bytes'] / 1e6:.0f} MB): postings built in {t_post:.1f}s, saved in "
              f"{t_save:.1f}s; mmap load {t_load * 1000:.0f} ms; first search {t_first * 1000:.1f} "
              f"ms (compiles the kernel once per machine), next {t_second * 1000:.1f} ms")
        print(f"projected 1M-title build: encoding ≈ {args.docs / (args.titles / t_enc) / 60:.1f} "
              f"min, postings + save ≈ {(t_post + t_save) / 60:.1f} min")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
