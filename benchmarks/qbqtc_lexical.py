"""How far a lexical score gets on held-out QBQTC, beside the DeepBoW model's sum over words.

    python benchmarks/qbqtc_lexical.py [--model DIR]

Why it exists: the QBQTC bar (AUC label≥1 ≥ 80) is not reached by the shipped model, and this
script shows where the gap lies. It prints, on the validation and the held-out test part, the
AUC of

* the model's score (a sum over matched words of query weight × title weight);
* bigram coverage: the share of the query's character bigrams found in the title;
* a lookup table P(relevant | cell) fit on the training part, over bins of bigram coverage,
  character coverage, query length and title length: no learning beyond counting, but *not*
  additive (a zero-overlap pair can score above a weak match, a long query's partial match
  above a short one's);

then the training part's P(relevant) per bigram-coverage bin, whose dip after the zero bin is
what no sum over matched words can follow: adding a matched word never lowers a score.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

BINS = {"bigram coverage": [0.01, .2, .35, .5, .6, .7, .8, .9, .999],
        "char coverage": [0.5, .7, .8, .9, .999],
        "query length": [3, 5, 8, 12, 20],
        "title length": [20, 40]}


def bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)} or {text}


def statistics(pairs: Sequence) -> dict[str, np.ndarray]:
    """Per pair: the lexical statistics the table is binned on."""
    from deepbow.text import normalize

    qs = [normalize(p.query) for p in pairs]
    ts = [normalize(p.title) for p in pairs]
    return {
        "bigram coverage": np.array([len(bigrams(q) & bigrams(t)) / len(bigrams(q))
                                     for q, t in zip(qs, ts, strict=True)]),
        "char coverage": np.array([len(set(q) & set(t)) / max(1, len(set(q)))
                                   for q, t in zip(qs, ts, strict=True)]),
        "query length": np.array([len(q) for q in qs]),
        "title length": np.array([len(t) for t in ts]),
    }


def cells(stats: dict[str, np.ndarray]) -> np.ndarray:
    key = np.zeros(len(stats["query length"]), np.int64)
    for name, edges in BINS.items():
        key = key * 100 + np.digitize(stats[name], edges)
    return key


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    import deepbow
    from deepbow.datasets import qbqtc_pairs
    from deepbow.metrics import auc

    model = deepbow.load(args.model)
    train = qbqtc_pairs("train")
    train_stats, y_train = statistics(train), np.array([p.label >= 1 for p in train])
    key = cells(train_stats)
    prior = y_train.mean()
    table = {k: (y_train[key == k].sum() + 10 * prior) / ((key == k).sum() + 10)
             for k in np.unique(key)}  # smoothed toward the base rate: sparse cells stay tame
    print(f"QBQTC AUC label>=1 (percent); the table has {len(table)} cells, fit on "
          f"{len(train):,} training pairs")
    print(f"  {'part':6s} {'pairs':>6s} {'deepbow':>8s} {'bigram coverage':>16s} {'table':>7s}")
    for part in ("valid", "test"):
        pairs = qbqtc_pairs(part)
        y = np.array([p.label >= 1 for p in pairs])
        stats = statistics(pairs)
        model_s = model.score_pairs([(p.query, p.title) for p in pairs])
        # ties within a cell broken by coverage, so the table is not penalised for coarseness
        table_s = np.array([table.get(k, prior) for k in cells(stats)]) \
            + 1e-6 * stats["bigram coverage"]
        print(f"  {part:6s} {len(pairs):6d} {100 * auc(model_s, y):8.2f} "
              f"{100 * auc(stats['bigram coverage'], y):16.2f} {100 * auc(table_s, y):7.2f}")
    print("training part, P(relevant) by bigram coverage:")
    edges = BINS["bigram coverage"]
    b = np.digitize(train_stats["bigram coverage"], edges)
    names = ["0"] + [f"{lo:g}-{hi:g}" for lo, hi in zip(edges, edges[1:], strict=False)] + ["1"]
    for i, name in enumerate(names):
        m = b == i
        if m.any():
            print(f"  {name:>10s}: {y_train[m].mean():.2f} of {m.sum():,} pairs")


if __name__ == "__main__":
    main()
