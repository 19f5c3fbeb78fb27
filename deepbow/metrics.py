"""Relevance metrics: AUC, nDCG@k by query, macro-F1, accuracy, hard-negative ordering.

Plain numpy, no sklearn: each is a few lines, and the tests pin them on hand-made cases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve (ties count one half); nan when one class is absent."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(positive, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def by_query(queries: Sequence[str]) -> list[np.ndarray]:
    """The indices of each query's pairs, queries in first-seen order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(queries):
        groups[q].append(i)
    return [np.array(idx) for idx in groups.values()]


def ndcg_at_k(queries: Sequence[str], scores: Sequence[float], labels: Sequence[int],
              k: int = 10) -> float:
    """Mean nDCG@k over queries that have at least one relevant title (gain 2^label − 1).

    Ties in score are broken against the scorer (worst order), so a constant scorer gains
    nothing from the input order.
    """
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.int64)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    vals = []
    for idx in by_query(queries):
        gains = 2.0 ** y[idx] - 1
        if gains.max() <= 0:
            continue
        order = np.lexsort((gains, -s[idx]))[:k]  # by score desc, then worst gain first
        dcg = (gains[order] * disc[: len(order)]).sum()
        ideal = np.sort(gains)[::-1][:k]
        vals.append(dcg / (ideal * disc[: len(ideal)]).sum())
    return float(np.mean(vals)) if vals else float("nan")


def exact_on_top(queries: Sequence[str], scores: Sequence[float], esci: Sequence[str]) -> float:
    """P@1 of a judged file: the share of queries (those with an E or S title, the set nDCG
    counts) whose top title is an exact match E; ties against the scorer (every title tied at
    the top must be E)."""
    s = np.asarray(scores, np.float64)
    hits = []
    for idx in by_query(queries):
        letters = [esci[i] for i in idx]
        if not any(x in ("E", "S") for x in letters):
            continue
        top = s[idx] == s[idx].max()
        hits.append(all(x == "E" for x, t in zip(letters, top, strict=True) if t))
    return float(np.mean(hits)) if hits else float("nan")


def judged_failures(queries: Sequence[str], scores: Sequence[float],
                    esci: Sequence[str]) -> list[tuple[str, int, int]]:
    """What to read when P@1 or E-above-C disappoint: ("complement", lowest E, highest C) for
    each query where a complement scores at or above an exact match, and ("top", best E, top
    title) for each query with an E whose top title is not one; worst margin first."""
    s = np.asarray(scores, np.float64)
    out = []
    for idx in by_query(queries):
        e = [i for i in idx if esci[i] == "E"]
        if not e:
            continue
        c = [i for i in idx if esci[i] == "C"]
        low = min(e, key=lambda i: s[i])
        if c and s[hi := max(c, key=lambda i: s[i])] >= s[low]:
            out.append(("complement", low, hi))
        top = max(idx, key=lambda i: (s[i], esci[i] != "E"))  # ties against the scorer
        if esci[top] != "E":
            out.append(("top", max(e, key=lambda i: s[i]), top))
    return sorted(out, key=lambda f: s[f[1]] - s[f[2]])


def exact_above_complements(queries: Sequence[str], scores: Sequence[float],
                            esci: Sequence[str]) -> float:
    """The share of queries (those with both) where every exact match E scores strictly above
    every complement C: accessories and parts never passing as the product."""
    s = np.asarray(scores, np.float64)
    ok = []
    for idx in by_query(queries):
        e = [s[i] for i in idx if esci[i] == "E"]
        c = [s[i] for i in idx if esci[i] == "C"]
        if e and c:
            ok.append(min(e) > max(c))
    return float(np.mean(ok)) if ok else float("nan")


def confusion(pred: Sequence[int], gold: Sequence[int], n: int = 3) -> np.ndarray:
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (np.asarray(gold), np.asarray(pred)), 1)
    return m


def macro_f1(pred: Sequence[int], gold: Sequence[int], n: int = 3) -> float:
    f1 = class_f1(pred, gold, n)
    present = ~np.isnan(f1)
    return float(f1[present].mean()) if present.any() else float("nan")


def class_f1(pred: Sequence[int], gold: Sequence[int], n: int = 3) -> np.ndarray:
    """F1 of each class (NaN for a class absent from gold)."""
    m = confusion(pred, gold, n)
    tp = np.diag(m).astype(np.float64)
    prec = np.divide(tp, m.sum(0), out=np.zeros_like(tp), where=m.sum(0) > 0)
    rec = np.divide(tp, m.sum(1), out=np.zeros_like(tp), where=m.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    return np.where(m.sum(1) > 0, f1, np.nan)


def accuracy(pred: Sequence[int], gold: Sequence[int]) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(gold)))


def best_thresholds(scores: Sequence[float], labels: Sequence[int],
                    n_candidates: int = 200) -> tuple[float, float]:
    """Thresholds t1 ≤ t2 (score < t1 → 0, < t2 → 1, else 2) that maximise macro-F1."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.int64)
    cands = np.unique(np.quantile(s, np.linspace(0, 1, n_candidates + 1)))
    cands = np.concatenate([cands, [np.inf]])
    sorted_by_class = [np.sort(s[y == c]) for c in range(3)]
    # below[c][j] = how many of class c score below cands[j]
    below = np.stack([np.searchsorted(sc, cands, side="left") for sc in sorted_by_class])
    totals = below[:, -1:]  # everything is below +inf
    best, best_t = -1.0, (float(cands[0]), float(cands[-1]))
    for i in range(len(cands)):
        j = np.arange(i, len(cands))
        # confusion columns: pred 0 = below t1, pred 1 = between, pred 2 = at/above t2
        p0 = below[:, i:i + 1].repeat(len(j), 1)
        p1 = below[:, j] - below[:, i:i + 1]
        p2 = totals - below[:, j]
        tp = np.stack([p0[0], p1[1], p2[2]])
        col = np.stack([p0.sum(0), p1.sum(0), p2.sum(0)])
        row = totals.repeat(len(j), 1)
        prec = np.divide(tp, col, out=np.zeros(tp.shape), where=col > 0)
        rec = np.divide(tp, row, out=np.zeros(tp.shape), where=row > 0)
        f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(tp.shape),
                       where=(prec + rec) > 0)
        present = (totals[:, 0] > 0)
        f = f1[present].mean(0)
        k = int(np.argmax(f))
        if f[k] > best:
            best, best_t = float(f[k]), (float(cands[i]), float(cands[j[k]]))
    return best_t


def hard_negative_groups(queries: Sequence[str], labels: Sequence[int],
                         kinds: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """(indices of exact matches, indices of hard negatives) of each query that has both."""
    out = []
    for idx in by_query(queries):
        idx = idx.tolist()
        pos = [i for i in idx if labels[i] == 2]
        hard = [i for i in idx if kinds[i] == "ecom-hard"]
        if pos and hard:
            out.append((pos, hard))
    return out


def hard_negative_rate(queries: Sequence[str], scores: Sequence[float], labels: Sequence[int],
                       kinds: Sequence[str]) -> tuple[float, float, int]:
    """Over queries with both exact matches (label 2) and hard negatives ("ecom-hard"):
    (share where every hard negative scores below every exact match,
     share of (exact, hard) pairs ordered right, number of such queries)."""
    s = np.asarray(scores, np.float64)
    strict, pairs_ok, pairs_all = 0, 0, 0
    groups = hard_negative_groups(queries, labels, kinds)
    for pos, hard in groups:
        strict += s[hard].max() < s[pos].min()
        pairs_ok += int((s[hard][:, None] < s[pos][None, :]).sum())
        pairs_all += len(hard) * len(pos)
    if not groups:
        return float("nan"), float("nan"), 0
    return strict / len(groups), pairs_ok / pairs_all, len(groups)


def hard_negative_failures(queries: Sequence[str], scores: Sequence[float],
                           labels: Sequence[int], kinds: Sequence[str]) -> list[tuple[int, int]]:
    """The queries that fail the strict test above, each as (index of its lowest-scoring exact
    match, index of its highest-scoring hard negative), worst margin first: what to read when
    the rate disappoints."""
    s = np.asarray(scores, np.float64)
    out = []
    for pos, hard in hard_negative_groups(queries, labels, kinds):
        p = min(pos, key=lambda i: s[i])
        h = max(hard, key=lambda i: s[i])
        if s[h] >= s[p]:
            out.append((p, h))
    return sorted(out, key=lambda ph: s[ph[0]] - s[ph[1]])
