"""Hybrid: DeepBoW's word evidence and EBRM's entity logic in one score.

    hybrid = ebrm + β · deepbow / deepbow_scale

EBRM's score is an expected grade in [0, 2]; DeepBoW's is a dot product of word weights, divided
by its 99th percentile on the validation pairs (deepbow_scale) so β reads as "how many grades a
strong word match is worth". β and the 0/1/2 thresholds are fitted on the validation split, never
on the held-out files (β so that the hybrid gains most where it gains least over the better part)
and stored in the EBRM manifest with the DeepBoW model id they were fitted against; a different
DeepBoW model is refused rather than silently mis-combined.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from deepbow.datasets import Pair
from deepbow.errors import ModelFileError
from deepbow.evaluate import METRICS, metric_row
from deepbow.metrics import best_thresholds

BETAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0)


def fit_hybrid(pairs: Sequence[Pair], deepbow_scores: np.ndarray, ebrm_scores: np.ndarray,
               deepbow_labels: np.ndarray, ebrm_labels: np.ndarray) -> dict:
    """β and F1 thresholds on validation pairs. The hybrid should be at least as good as the
    better of its two parts on every figure `deepbow eval` prints (AUCs, nDCG, F1s, accuracy,
    hard negatives), so β maximises the smallest gain over the better part across figures,
    then the mean gain; a larger β (DeepBoW dominating) helps ranking across products but
    blurs EBRM's grade steps (2 vs 1), so no single figure can choose it."""
    y = np.array([p.label for p in pairs])
    scale = float(np.quantile(deepbow_scores, 0.99)) or 1.0
    rows = [metric_row(pairs, deepbow_scores, deepbow_labels),
            metric_row(pairs, ebrm_scores, ebrm_labels)]
    keys = [k for k in (*METRICS, "hard_neg_below_all", "hard_neg_pairwise")
            if k in rows[0] and not np.isnan(rows[0][k]) and not np.isnan(rows[1][k])]
    better = {k: max(r[k] for r in rows) for k in keys}
    figures, found = {}, {}
    for b in BETAS:
        h = ebrm_scores + b * deepbow_scores / scale
        t = best_thresholds(h, y)
        row = metric_row(pairs, h, np.digitize(h, t))
        gains = [row[k] - better[k] for k in keys if not np.isnan(row[k])]
        figures[b] = (min(gains, default=0.0), float(np.mean(gains)) if gains else 0.0)
        found[b] = t
    beta = max(BETAS, key=lambda b: (round(figures[b][0], 6), figures[b][1], -b))
    return {"beta": beta, "deepbow_scale": scale,
            "thresholds": [float(t) for t in found[beta]],
            "valid_gain_by_beta": {str(b): {"min": v[0], "mean": v[1]}
                                   for b, v in figures.items()}}


@dataclass
class HybridExplanation:
    score: float
    label: int
    beta: float
    deepbow_scale: float
    deepbow: object  # deepbow.encoder.Explanation
    ebrm: object  # ebrm.model.EBRMExplanation

    def to_json(self) -> dict:
        return {"score": self.score, "label": self.label, "beta": self.beta,
                "deepbow_scale": self.deepbow_scale,
                "deepbow": {"score": self.deepbow.score,
                            "matches": [r.__dict__ for r in self.deepbow.rows]},
                "ebrm": self.ebrm.to_json()}


class Hybrid:
    """Scores like DeepBoW and EBRM (score, score_pairs, label, explain), combining both."""

    def __init__(self, deepbow_model, ebrm_model) -> None:
        cfg = ebrm_model.manifest.get("hybrid")
        if not cfg:
            raise ModelFileError("this EBRM model has no hybrid calibration (train it with a "
                                 "DeepBoW model, see `deepbow ebrm train --help`)")
        if cfg.get("deepbow_model_id") != deepbow_model.model_id:
            raise ModelFileError(
                f"the hybrid was calibrated against DeepBoW model {cfg.get('deepbow_model_id')}, "
                f"not {deepbow_model.model_id}: use that model or recalibrate")
        self.deepbow = deepbow_model
        self.ebrm = ebrm_model
        self.beta = float(cfg["beta"])
        self.scale = float(cfg["deepbow_scale"])
        self.thresholds = np.asarray(cfg["thresholds"], np.float64)

    def combine(self, deepbow_scores, ebrm_scores) -> np.ndarray:
        return np.asarray(ebrm_scores) + self.beta * np.asarray(deepbow_scores) / self.scale

    def score(self, query: str, titles: Sequence[str]) -> np.ndarray:
        return self.combine(self.deepbow.score(query, titles), self.ebrm.score(query, titles))

    def score_pairs(self, pairs: Iterable[tuple[str, str]]) -> np.ndarray:
        pairs = list(pairs)
        return self.combine(self.deepbow.score_pairs(pairs), self.ebrm.score_pairs(pairs))

    def label(self, scores) -> np.ndarray:
        return np.digitize(np.asarray(scores, np.float64), self.thresholds)

    def explain(self, query: str, title: str) -> HybridExplanation:
        d = self.deepbow.explain(query, title)
        e = self.ebrm.explain(query, title)
        s = float(self.combine([d.score], [e.score])[0])
        return HybridExplanation(s, int(self.label([s])[0]), self.beta, self.scale, d, e)
