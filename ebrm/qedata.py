"""QE pretraining pairs generated from gold entity tags (the paper mines them from user logs).

Queries are built as for the DeepBoW e-commerce pairs (deepbow/datasets.py): a product word p,
or a brand b with p. Each query is paired with typed entities taken from other titles, and the
labels follow from types and strings:

- product entity e: s = 1 when e is p or ends with p (智能手机 is a 手机: Chinese compounds are
  head-final), s = 0 otherwise, including the hard cases where p sits inside another product
  (手机壳, 鼠标垫). A product never conflicts (c = 1): titles list accessories and uses.
- brand entity: c = 1 when it is the brand asked for, or when no brand is asked; c = 0 for a
  different brand when one is asked. s is not defined for brands (masked out of the loss).
- model and misc entities: c = 1 (our queries never ask for a model).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from deepbow.datasets import TaggedTitle


@dataclass
class QEExample:
    query: str
    type: str
    entity: str
    s: float  # -1: not defined for this entity type
    c: float


def qe_examples(titles: list[TaggedTitle], seed: int = 0, n_each: int = 4,
                min_titles: int = 2) -> list[QEExample]:
    rng = random.Random(seed)
    pool: dict[str, list[str]] = defaultdict(list)
    count: dict[str, int] = defaultdict(int)
    for t in titles:
        for typ, e in t.entities:
            pool[typ].append(e)
            if typ == "product" and len(e) >= 2:
                count[e] += 1
    distinct = {typ: sorted(set(v)) for typ, v in pool.items()}
    products = sorted(p for p, n in count.items() if n >= min_titles)
    all_products = distinct.get("product", [])
    brands_of: dict[str, set[str]] = defaultdict(set)
    for t in titles:
        for p in t.of_type("product"):
            brands_of[p] |= t.of_type("brand")
    out: list[QEExample] = []

    def sample(xs: list[str], k: int) -> list[str]:
        return rng.sample(xs, min(k, len(xs)))

    for p in products:
        heads = [e for e in all_products if e.endswith(p) and e != p]
        inside = [e for e in all_products if p in e and not e.endswith(p)]
        queries = [(p, None)]
        for b in sample(sorted(brands_of[p]), 2):
            queries.append((f"{b}{p}" if rng.random() < 0.5 else f"{b} {p}", b))
        for q, b in queries:
            out.append(QEExample(q, "product", p, 1, 1))
            for e in sample(heads, n_each // 2):
                out.append(QEExample(q, "product", e, 1, 1))
            for e in sample(inside, n_each):
                out.append(QEExample(q, "product", e, 0, 1))
            for e in sample(all_products, n_each):
                if p not in e:
                    out.append(QEExample(q, "product", e, 0, 1))
            if b is None:
                for e in sample(distinct.get("brand", []), n_each // 2):
                    out.append(QEExample(q, "brand", e, -1, 1))
            else:
                out += [QEExample(q, "brand", b, -1, 1)] * 2
                for e in sample(distinct.get("brand", []), n_each):
                    if e != b and e not in b and b not in e:
                        out.append(QEExample(q, "brand", e, -1, 0))
            for typ in ("model", "misc"):
                for e in sample(distinct.get(typ, []), 1):
                    out.append(QEExample(q, typ, e, -1, 1))
    rng.shuffle(out)
    return out
