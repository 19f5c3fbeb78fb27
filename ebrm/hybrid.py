"""Hybrid: DeepBoW's word evidence and EBRM's entity logic in one score.

    hybrid = ebrm + β · deepbow / deepbow_scale

EBRM's score is an expected grade in [0, 2]; DeepBoW's is a dot product of word weights, divided
by its 99th percentile on the validation pairs (deepbow_scale) so β reads as "how many grades a
strong word match is worth". β and the 0/1/2 thresholds are fitted on the validation split (never
on the held-out files) and stored in the EBRM manifest with the DeepBoW model id they were fitted
against; a different DeepBoW model is refused rather than silently mis-combined.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from deepbow.errors import ModelFileError
from deepbow.metrics import auc, best_thresholds

BETAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0)


def fit_hybrid(deepbow_scores: np.ndarray, ebrm_scores: np.ndarray,
               labels: Sequence[int]) -> dict:
    """β maximising the mean of AUC(≥1) and AUC(=2) on validation, then F1 thresholds."""
    y = np.asarray(labels)
    scale = float(np.quantile(deepbow_scores, 0.99)) or 1.0
    figures = {}
    for b in BETAS:
        h = ebrm_scores + b * deepbow_scores / scale
        figures[b] = (auc(h, y >= 1) + auc(h, y == 2)) / 2
    beta = max(BETAS, key=lambda b: (figures[b], -b))
    h = ebrm_scores + beta * deepbow_scores / scale
    return {"beta": beta, "deepbow_scale": scale,
            "thresholds": [float(t) for t in best_thresholds(h, y)],
            "valid_auc_by_beta": {str(b): v for b, v in figures.items()}}


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
