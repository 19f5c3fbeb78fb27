"""Metrics pinned on hand-made cases, and the thresholds search against brute force."""

import itertools

import numpy as np
import pytest

from deepbow.metrics import (
    accuracy,
    auc,
    best_thresholds,
    class_f1,
    hard_negative_failures,
    hard_negative_rate,
    macro_f1,
    ndcg_at_k,
)


def test_auc():
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auc([1, 1, 1], [0, 1, 1]) == 0.5  # ties count one half
    assert np.isnan(auc([1, 2], [1, 1]))


def test_ndcg_perfect_worst_and_ties():
    q = ["a"] * 3 + ["b"] * 2
    y = [2, 0, 1, 0, 0]  # query b has no relevant title and is skipped
    assert ndcg_at_k(q, [3, 1, 2, 0, 0], y) == pytest.approx(1.0)
    worst = ndcg_at_k(q, [1, 3, 2, 0, 0], y)
    assert worst < 1.0
    assert ndcg_at_k(q, [1, 1, 1, 0, 0], y) == pytest.approx(worst)  # ties: worst order


def test_f1_and_accuracy():
    gold = [0, 0, 1, 1, 2, 2]
    pred = [0, 1, 1, 1, 2, 0]
    # per class F1: 0: p=1/2 r=1/2; 1: p=2/3 r=1; 2: p=1 r=1/2
    want = np.mean([0.5, 0.8, 2 / 3])
    assert macro_f1(pred, gold) == pytest.approx(want)
    assert class_f1(pred, gold) == pytest.approx([0.5, 0.8, 2 / 3])
    assert np.isnan(class_f1([0, 2], [0, 2])[1])  # a class absent from gold
    assert accuracy(pred, gold) == pytest.approx(4 / 6)


def test_best_thresholds_is_optimal_on_small_data():
    rng = np.random.default_rng(0)
    s = rng.random(40)
    y = np.clip((s * 3 + rng.normal(0, 0.6, 40)).astype(int), 0, 2)
    t1, t2 = best_thresholds(s, y, n_candidates=1000)
    got = macro_f1(np.digitize(s, (t1, t2)), y)
    cands = np.concatenate([np.sort(s), [np.inf]])
    brute = max(macro_f1(np.digitize(s, (a, b)), y)
                for a, b in itertools.combinations_with_replacement(cands, 2))
    assert got == pytest.approx(brute)


def test_hard_negative_rate():
    q = ["a", "a", "a", "b", "b"]
    s = [0.9, 0.5, 0.6, 0.2, 0.1]
    y = [2, 2, 0, 2, 0]
    kinds = ["ecom", "ecom", "ecom-hard", "ecom", "ecom-hard"]
    strict, pairwise, n = hard_negative_rate(q, s, y, kinds)
    assert n == 2 and strict == 0.5 and pairwise == pytest.approx(2 / 3)
    # query a fails: its hard negative (0.6) sits above its lowest exact match (0.5)
    assert hard_negative_failures(q, s, y, kinds) == [(1, 2)]
    tie = [0.9, 0.5, 0.5, 0.2, 0.3]  # a tie fails too; the worse margin comes first
    assert hard_negative_failures(q, tie, y, kinds) == [(3, 4), (1, 2)]
    assert hard_negative_rate(q, tie, y, kinds)[0] == 0.0


def test_metric_row_partial_match_figures():
    from deepbow.evaluate import metric_row
    from deepbow.readers import Pair

    pairs = [Pair("a", "t1", 2), Pair("a", "t2", 1), Pair("a", "t3", 0),
             Pair("b", "t4", 2), Pair("b", "t5", 0)]  # b has no partial match
    s = np.array([0.5, 0.9, 0.1, 0.8, 0.2])
    row = metric_row(pairs, s, np.array([2, 1, 0, 2, 0]))
    assert row["auc_2v1"] == 0.0  # within query a the partial match outranks the exact one
    assert row["auc_1v0"] == 1.0 and row["f1_label1"] == 1.0


def test_judged_metrics_on_hand_made_queries():
    from deepbow.metrics import exact_above_complements, exact_on_top

    q = ["a"] * 4 + ["b"] * 3 + ["c"] * 2
    esci = ["E", "S", "C", "I", "S", "I", "C", "I", "I"]
    s = [3, 2, 1, 0, 5, 5, 1, 1, 0]
    # a: E on top; b: no E, S tied with I at the top → no exact on top; c: nothing relevant
    assert exact_on_top(q, s, esci) == 0.5
    # a tie at the top counts against the scorer
    assert exact_on_top(["a"] * 2, [1, 1], ["E", "I"]) == 0.0
    assert exact_on_top(["a"] * 2, [1, 1], ["E", "E"]) == 1.0
    # only a has both E and C; E above every C there
    assert exact_above_complements(q, s, esci) == 1.0
    assert exact_above_complements(["a"] * 3, [2, 2, 1], ["E", "C", "I"]) == 0.0  # tie fails
    assert np.isnan(exact_above_complements(["a"], [1], ["E"]))  # no query with a C


def test_judged_failures_name_what_to_read():
    from deepbow.evaluate import judged_failure_lines, judged_row
    from deepbow.metrics import judged_failures
    from deepbow.readers import Pair

    q = ["a"] * 3 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2
    esci = ["E", "C", "I", "E", "S", "C", "S", "I", "E", "C"]
    s = [1, 1, 0, 1, 3, 2, 5, 0, 2, 1]
    # a: C tied with E (fails, and the tie at the top is against the scorer); b: an S on top
    # and a C above the E; c: no E (nothing to read); d: passes
    got = judged_failures(q, s, esci)
    assert sorted(got) == [("complement", 0, 1), ("complement", 3, 5), ("top", 0, 1),
                           ("top", 3, 4)]
    assert got[0][1:] == (3, 4)  # worst margin first
    pairs = [Pair(x, f"t{i}", {"E": 2, "S": 1}.get(e, 0), esci=e) for i, (x, e) in
             enumerate(zip(q, esci, strict=True))]
    row = judged_row(pairs, np.array(s, float), np.zeros(len(s), int), failures=True)
    assert len(row["judged_failures"]) == 4
    text = "\n".join(judged_failure_lines("m", row))
    assert "4 failures" in text and "S 3.000 t4" in text and "E 1.000 t3" in text


def test_judged_rows_per_query_kind():
    from deepbow.evaluate import evaluate
    from deepbow.readers import Pair

    pairs = [Pair("q1", "t1", 2, qid="1", esci="E", qtype="real"),
             Pair("q1", "t2", 0, qid="1", esci="C", qtype="real"),
             Pair("q2", "t3", 1, qid="2", esci="S", qtype="product"),
             Pair("q2", "t4", 0, qid="2", esci="I", qtype="product")]

    class Fixed:
        def score_pairs(self, pairs, edits=None):
            return np.array([{"t1": 2.0, "t2": 1.0, "t3": 0.0, "t4": 1.0}[t] for _, t in pairs])

        def label(self, s):
            return np.digitize(s, [0.5, 1.5])

    res = evaluate({"m": Fixed()}, pairs, baseline=False)
    assert set(res) == {"all", "real", "product"}
    row = res["all"]["m"]
    assert row["p@1"] == 0.5 and row["e_above_c"] == 1.0 and row["queries"] == 2
    assert row["auc_e"] == 1.0 and row["auc_es"] == 0.5
    assert res["real"]["m"]["ndcg@10"] == 1.0 and res["product"]["m"]["ndcg@10"] < 1.0


def test_split_judged_is_query_disjoint_stratified_and_stable():
    from deepbow.datasets import split_judged
    from deepbow.readers import Pair

    pairs = [Pair(f"q{i}", f"t{j}", 0, qid=str(i), esci="I", qtype="ab"[i % 2])
             for i in range(40) for j in range(3)]
    tune, check = split_judged(pairs, 0.6)
    qt, qc = {p.qid for p in tune}, {p.qid for p in check}
    assert not qt & qc and len(qt) == 24 and len(qc) == 16
    assert sum(int(q) % 2 for q in qt) == 12  # 60% of each kind
    assert split_judged(pairs[::-1], 0.6)[0] == tune[::-1]  # line order does not matter
