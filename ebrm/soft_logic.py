"""Soft logic for EBRM: combine query–entity judgements into a query–item score.

The reading of Cai et al. (WWW 2023) we follow (see ../shared/PAPERS.md; the paper's public text
gives no formula):

    relevant(q, item) = OR_{e ∈ product entities} s_e   AND   AND_{e ∈ all entities} c_e

where s_e ∈ [0, 1] says entity e satisfies the query's product intent and c_e ∈ [0, 1] says e
does not conflict with the query. OR and AND are a t-conorm and a t-norm of one family:

    product:      AND = Π x_i              OR = 1 − Π (1 − x_i)
    Łukasiewicz:  AND = max(0, Σ x_i − (n − 1))   OR = min(1, Σ x_i)
    Gödel:        AND = min x_i            OR = max x_i

All operators are pure functions of arrays (numpy or torch: only +, −, *, prod/min/max over the
last axis), exact on {0, 1} (the Boolean truth tables), monotone, and differentiable almost
everywhere, so the QE model can be fine-tuned end to end through them. The empty AND is 1 (no
entity conflicts) and the empty OR is 0 (no product entity satisfies the query).
"""

from __future__ import annotations

import numpy as np

FAMILIES = ("product", "lukasiewicz", "godel")


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _reduce(x, kind: str):
    if _is_torch(x):
        if kind == "prod":
            return x.prod(dim=-1)
        if kind == "sum":
            return x.sum(dim=-1)
        if kind == "min":
            return x.min(dim=-1).values if x.shape[-1] else x.new_ones(x.shape[:-1])
        return x.max(dim=-1).values if x.shape[-1] else x.new_zeros(x.shape[:-1])
    x = np.asarray(x, np.float64)
    if kind == "prod":
        return np.prod(x, axis=-1)
    if kind == "sum":
        return np.sum(x, axis=-1)
    if kind == "min":
        return np.min(x, axis=-1, initial=1.0)
    return np.max(x, axis=-1, initial=0.0)


def _clip01(x):
    return x.clamp(0.0, 1.0) if _is_torch(x) else np.clip(x, 0.0, 1.0)


def soft_and(x, family: str = "product"):
    """t-norm over the last axis of x (values in [0, 1])."""
    if family == "product":
        return _reduce(x, "prod")
    if family == "lukasiewicz":
        n = x.shape[-1]
        return _clip01(_reduce(x, "sum") - (n - 1)) if n else _reduce(x, "prod")
    if family == "godel":
        return _reduce(x, "min")
    raise ValueError(f"unknown t-norm family {family!r}; one of {FAMILIES}")


def soft_or(x, family: str = "product"):
    """t-conorm over the last axis of x: the dual of soft_and, 1 − AND(1 − x)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown t-norm family {family!r}; one of {FAMILIES}")
    return 1.0 - soft_and(1.0 - x, family)
