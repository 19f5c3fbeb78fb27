"""Query arrays for the kernels: batches flattened (terms, values and a pointer array, one
kernel call per chunk), weights quantised to codes for many queries at once, and the
per-segment top-k lists merged."""

from __future__ import annotations

import numpy as np

from deepbow.sparse import QUERY_MAX_CODE


def flatten(queries: list[tuple], dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat term ids and values of many (term_ids, values) queries, and their pointer array."""
    ts = [np.asarray(t, np.int64).ravel() for t, _ in queries]
    vs = [np.asarray(v, dtype).ravel() for _, v in queries]
    lens = list(map(len, ts))
    if lens != list(map(len, vs)):
        raise ValueError("term_ids and weights (or codes) differ in length")
    q_ptr = np.zeros(len(ts) + 1, np.int64)
    np.cumsum(lens, out=q_ptr[1:])
    if not ts:
        return np.zeros(0, np.int64), np.zeros(0, dtype), q_ptr
    return np.concatenate(ts), np.concatenate(vs), q_ptr


def quantize_flat(w: np.ndarray, q_ptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """InvertedIndex.quantize_query for many queries at once: the same codes and scales."""
    if w.size and (not np.all(np.isfinite(w)) or w.min() < 0):
        raise ValueError("query weights must be finite and non-negative")
    lens = np.diff(q_ptr)
    top = np.zeros(len(lens))
    full = lens > 0
    if w.size:
        top[full] = np.maximum.reduceat(w, q_ptr[:-1][full])
    qscale = np.where(top > 0, top / QUERY_MAX_CODE, 1.0)
    return np.rint(w / np.repeat(qscale, lens)).astype(np.int64), qscale


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of several segments' top-k lists: score descending, then doc number."""
    d = np.concatenate([p[0] for p in parts])
    s = np.concatenate([p[1] for p in parts])
    order = np.lexsort((d, -s))[:k]
    return d[order], s[order]
