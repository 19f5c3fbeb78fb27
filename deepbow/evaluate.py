"""`deepbow eval`: the model and the BM25 baseline side by side on one pairs file."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepbow.metrics import (
    accuracy,
    auc,
    best_thresholds,
    class_f1,
    exact_above_complements,
    exact_on_top,
    hard_negative_failures,
    hard_negative_rate,
    judged_failures,
    macro_f1,
    ndcg_at_k,
)
from deepbow.readers import Pair

METRICS = ("auc_ge1", "auc_eq2", "ndcg@10", "macro_f1", "accuracy", "f1_label1", "auc_1v0",
           "auc_2v1")
JUDGED = ("ndcg@10", "p@1", "e_above_c", "auc_e", "auc_es", "macro_f1", "accuracy")


def judged_row(pairs: Sequence[Pair], scores: np.ndarray, labels_pred: np.ndarray,
               failures: bool = False) -> dict:
    """One scorer's figures on judged pairs (ESCI letters), each query's candidates reranked:
    nDCG@10 (gains 2^grade − 1, ties against the scorer), P@1 (an E on top), the share of
    queries where every E scores above every C, AUC of E vs the rest and of E+S vs C+I over all
    pairs, macro-F1 and accuracy of the 0/1/2 labels; with `failures`, the queries that miss
    the last two (metrics.judged_failures)."""
    y = np.array([p.label for p in pairs])
    q = [p.qid or p.query for p in pairs]
    esci = [p.esci for p in pairs]
    e = np.array([x == "E" for x in esci])
    row = {"ndcg@10": ndcg_at_k(q, scores, y, 10), "p@1": exact_on_top(q, scores, esci),
           "e_above_c": exact_above_complements(q, scores, esci), "auc_e": auc(scores, e),
           "auc_es": auc(scores, np.isin(esci, ("E", "S"))),
           "macro_f1": macro_f1(labels_pred, y), "accuracy": accuracy(labels_pred, y),
           "pairs": len(pairs), "queries": len(set(q))}
    if failures:
        row["judged_failures"] = [
            {"query": pairs[i].query, "why": why,
             "exact": {"title": pairs[i].title, "score": float(scores[i])},
             "above": {"title": pairs[j].title, "score": float(scores[j]),
                       "esci": pairs[j].esci}}
            for why, i, j in judged_failures(q, scores, esci)]
    return row


def metric_row(pairs: Sequence[Pair], scores: np.ndarray, labels_pred: np.ndarray,
               failures: bool = False) -> dict:
    """One scorer's figures on `pairs`; with `failures`, also the queries that rank a hard
    negative at or above an exact match (their lowest exact match, their highest hard one)."""
    y = np.array([p.label for p in pairs])
    q = [p.query for p in pairs]
    row = {"auc_ge1": auc(scores, y >= 1), "auc_eq2": auc(scores, y == 2),
           "ndcg@10": ndcg_at_k(q, scores, y, 10), "macro_f1": macro_f1(labels_pred, y),
           "accuracy": accuracy(labels_pred, y), "pairs": len(pairs)}
    if (y == 1).any():  # partial matches (e-commerce: the right product of another brand)
        row["f1_label1"] = float(class_f1(labels_pred, y)[1])
        le1 = y <= 1
        row["auc_1v0"] = auc(scores[le1], y[le1] == 1)
        # exact above partial, within the queries that have partial matches (e-commerce: the
        # asked-for brand above other brands of the same product)
        partial_q = {q[i] for i in np.nonzero(y == 1)[0]}
        sel = np.array([q[i] in partial_q and y[i] >= 1 for i in range(len(y))])
        row["auc_2v1"] = auc(scores[sel], y[sel] == 2)
    kinds = [p.kind for p in pairs]
    strict, pairwise, n = hard_negative_rate(q, scores, y, kinds)
    if n:
        row.update({"hard_neg_below_all": strict, "hard_neg_pairwise": pairwise,
                    "hard_neg_queries": n})
        if failures:
            row["hard_neg_failures"] = [
                {"query": q[i], "exact": {"title": pairs[i].title, "score": float(scores[i])},
                 "hard": {"title": pairs[j].title, "score": float(scores[j])}}
                for i, j in hard_negative_failures(q, scores, y, kinds)]
    return row


def evaluate(scorers, pairs: Sequence[Pair], baseline: bool = True,
             segmenter=None, failures: bool = False, edits=None) -> dict[str, dict]:
    """{group: {scorer name: metrics}} over all pairs and, when kinds are mixed, per domain.

    `scorers` is a model (named "deepbow") or a {name: scorer} dict of objects with
    score_pairs and label (DeepBoW, EBRM, Hybrid); `edits` (deepbow.edits.Edits) applies to
    them all. BM25's labels use thresholds tuned on this very file (an optimistic baseline);
    the models' use the thresholds stored with them. BM25 segments text as `segmenter` does
    (default: the first scorer's, DeepBoW's or the hybrid's DeepBoW part).
    """
    if not isinstance(scorers, dict):
        scorers = {"deepbow": scorers}
    if not pairs:
        raise ValueError("no pairs to evaluate")
    if any(p.label not in (0, 1, 2) for p in pairs):
        raise ValueError("every pair needs a label 0, 1 or 2 for eval")
    scores, labels = {}, {}
    for name, model in scorers.items():
        scores[name] = np.asarray(model.score_pairs([(p.query, p.title) for p in pairs],
                                                    edits=edits))
        labels[name] = model.label(scores[name])
    if baseline:
        from deepbow.bm25 import bm25_pair_scores

        if segmenter is None:
            segmenter = next(getattr(m, "segmenter", None) or m.deepbow.segmenter
                             for m in scorers.values()
                             if hasattr(m, "segmenter") or hasattr(m, "deepbow"))
        s = bm25_pair_scores([p.query for p in pairs], [p.title for p in pairs], segmenter)
        t = best_thresholds(s, [p.label for p in pairs])
        scores["bm25"], labels["bm25"] = s, np.digitize(s, t)
    judged = all(p.esci for p in pairs)
    out: dict[str, dict] = {}
    for gname, idx in groups_of(pairs, judged).items():
        sub = [pairs[i] for i in idx]
        for name in scores:
            out.setdefault(gname, {})[name] = (
                judged_row(sub, scores[name][idx], labels[name][idx], failures) if judged
                else metric_row(sub, scores[name][idx], labels[name][idx], failures))
    return out


def groups_of(pairs: Sequence[Pair], judged: bool) -> dict[str, list[int]]:
    """"all", then per query kind (judged files: qtype) or per domain (qbqtc / ecom) when
    there are several."""
    def kind(p: Pair) -> str:
        return p.qtype or "-" if judged else ("qbqtc" if p.kind == "qbqtc" else "ecom")

    groups = {"all": list(range(len(pairs)))}
    kinds = sorted({kind(p) for p in pairs})
    if len(kinds) > 1:
        for k in kinds:
            groups[k] = [i for i, p in enumerate(pairs) if kind(p) == k]
    return groups


TABLE = ("auc_ge1", "auc_eq2", "ndcg@10", "macro_f1", "accuracy", "f1_label1", "auc_1v0",
         "auc_2v1", "hard_neg_below_all")


def to_text(res: dict[str, dict]) -> str:
    """evaluate()'s figures as the table `deepbow eval` prints (percent), then each scorer's
    failing hard-negative queries when they were asked for."""
    judged = "p@1" in next(iter(res["all"].values()))
    cols = JUDGED if judged else TABLE
    lines = []
    for group, by_model in res.items():
        first = next(iter(by_model.values()))
        lines.append(f"[{group}] {first['pairs']} pairs"
                     + (f", {first['queries']} queries" if judged else ""))
        lines.append(f"  {'scorer':<10}" + "".join(f"{c.replace('_below_all', ''):>10}"
                                                 for c in cols))
        for name, row in by_model.items():
            lines.append(f"  {name:<10}" + "".join(
                f"{100 * row[c]:>10.2f}" if c in row and row[c] == row[c] else f"{'-':>10}"
                for c in cols))
    for name, row in res["all"].items():
        lines += judged_failure_lines(name, row)
        fails = row.get("hard_neg_failures")
        if fails is None:
            continue
        lines.append(f"{name}: {len(fails)} of {row['hard_neg_queries']} queries rank a hard "
                     "negative at or above an exact match (lowest exact, highest hard):")
        lines += [f"  {f['query']}\t{f['exact']['score']:.3f} {f['exact']['title']}"
                  f"\t{f['hard']['score']:.3f} {f['hard']['title']}" for f in fails]
    return "\n".join(lines)


def judged_failure_lines(name: str, row: dict) -> list[str]:
    """A scorer's failing judged queries, one a line: why, the exact match, the title above."""
    fails = row.get("judged_failures")
    if fails is None:
        return []
    head = {"complement": "a complement at or above its lowest exact match",
            "top": "a title that is not an exact match on top"}
    lines = [f"{name}: {len(fails)} failures (query, exact match, the title at or above it):"]
    lines += [f"  {f['query']}\t{head[f['why']]}\n    E {f['exact']['score']:.3f} "
              f"{f['exact']['title']}\n    {f['above']['esci']} {f['above']['score']:.3f} "
              f"{f['above']['title']}" for f in fails]
    return lines
