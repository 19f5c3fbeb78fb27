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

from deepbow.edits import Edits
from deepbow.errors import ModelFileError
from deepbow.evaluate import METRICS, metric_row
from deepbow.metrics import best_thresholds
from deepbow.readers import Pair
from ebrm.config import HybridParams


def fit_hybrid(pairs: Sequence[Pair], deepbow_scores: np.ndarray, ebrm_scores: np.ndarray,
               deepbow_labels: np.ndarray, ebrm_labels: np.ndarray,
               betas: Sequence[float] = tuple(HybridParams().betas)) -> dict:
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
    for b in betas:
        h = ebrm_scores + b * deepbow_scores / scale
        t = best_thresholds(h, y)
        row = metric_row(pairs, h, np.digitize(h, t))
        gains = [row[k] - better[k] for k in keys if not np.isnan(row[k])]
        figures[b] = (min(gains, default=0.0), float(np.mean(gains)) if gains else 0.0)
        found[b] = t
    beta = max(betas, key=lambda b: (round(figures[b][0], 6), figures[b][1], -b))
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
                            "matches": self.deepbow.to_json()["matches"]},
                "ebrm": self.ebrm.to_json()}

    def to_text(self) -> str:
        return "\n".join([
            f"hybrid score {self.score:.4f} = EBRM {self.ebrm.score:.4f} + β {self.beta} × "
            f"DeepBoW {self.deepbow.score:.4f} / {self.deepbow_scale:.4f}   label {self.label}\n",
            "— EBRM part —", self.ebrm.to_text(), "\n— DeepBoW part —", self.deepbow.to_text()])


class Hybrid:
    """Scores like DeepBoW and EBRM (score, score_pairs, label, explain), combining both."""

    def __init__(self, deepbow_model, ebrm_model) -> None:
        problem = Hybrid.incompatible(deepbow_model, ebrm_model)
        if problem:
            raise ModelFileError(problem)
        cfg = ebrm_model.manifest["hybrid"]
        self.deepbow = deepbow_model
        self.ebrm = ebrm_model
        self.beta = float(cfg["beta"])
        self.scale = float(cfg["deepbow_scale"])
        self.thresholds = np.asarray(cfg["thresholds"], np.float64)

    @staticmethod
    def incompatible(deepbow_model, ebrm_model) -> str:
        """Why these two models cannot form the hybrid ("" when they can): the EBRM model must
        carry a hybrid calibration fitted against this very DeepBoW model."""
        cfg = ebrm_model.manifest.get("hybrid")
        if not cfg:
            return ("this EBRM model has no hybrid calibration (train it with a DeepBoW model, "
                    "see `deepbow ebrm train --help`)")
        if cfg.get("deepbow_model_id") != deepbow_model.model_id:
            return (f"the hybrid was calibrated against DeepBoW model "
                    f"{cfg.get('deepbow_model_id')}, not {deepbow_model.model_id}: use that "
                    "model or recalibrate")
        return ""

    def combine(self, deepbow_scores, ebrm_scores) -> np.ndarray:
        return np.asarray(ebrm_scores) + self.beta * np.asarray(deepbow_scores) / self.scale

    def score(self, query: str, titles: Sequence[str], edits: Edits | None = None
              ) -> np.ndarray:
        return self.combine(self.deepbow.score(query, titles, edits),
                            self.ebrm.score(query, titles, edits=edits))

    def score_pairs(self, pairs: Iterable[tuple[str, str]], edits: Edits | None = None
                    ) -> np.ndarray:
        pairs = list(pairs)
        return self.combine(self.deepbow.score_pairs(pairs, edits=edits),
                            self.ebrm.score_pairs(pairs, edits=edits))

    def label(self, scores) -> np.ndarray:
        return np.digitize(np.asarray(scores, np.float64), self.thresholds)

    def explain(self, query: str, title: str, edits: Edits | None = None) -> HybridExplanation:
        d = self.deepbow.explain(query, title, edits)
        e = self.ebrm.explain(query, title, edits=edits)
        s = float(self.combine([d.score], [e.score])[0])
        return HybridExplanation(s, int(self.label([s])[0]), self.beta, self.scale, d, e)
