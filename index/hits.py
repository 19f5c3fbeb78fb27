"""A hit and an explanation from a query's integer contributions to one item: what a local
catalogue (index/catalogue.py) and a Milvus-served one (index/milvus_catalogue.py) both return,
built in one place so that the two agree to the last digit."""

from __future__ import annotations

import numpy as np

from deepbow.explain import Explanation, MatchRow
from deepbow.sparse import SparseVector
from index.segments import Hit


def make_hit(qv: SparseVector, item: dict, contrib: np.ndarray, score_int: int,
             title_scale: float, n_words: int) -> Hit:
    """A search hit from the query's integer contributions to one item: its score and its
    `n_words` best matched words (the same Hit from a local or a Milvus-served catalogue)."""
    scale = qv.scale * title_scale
    order = np.argsort(-contrib, kind="stable")[:n_words]
    matched = [(qv.words[i], float(contrib[i] * scale)) for i in order if contrib[i] > 0]
    fields = {k: v for k, v in item.items() if k not in ("id", "title")}
    return Hit(item["id"], score_int * scale, item["title"], fields, matched)


def make_explanation(model, query: str, title: str, qv: SparseVector, dcodes: np.ndarray,
                     contrib: np.ndarray, title_scale: float) -> Explanation:
    """The word-by-word Explanation of a query–item score from the item's codes for the
    query's terms (`dcodes`) and their integer contributions: it sums to the index's score."""
    scale = qv.scale * title_scale
    exp = qv.expanded if qv.expanded is not None else np.zeros(len(qv), bool)
    rows = [MatchRow(qv.words[i], float(qv.weights[i]), float(dcodes[i] * title_scale),
                     float(contrib[i] * scale), bool(exp[i]), False)
            for i in np.nonzero(dcodes)[0]]
    rows.sort(key=lambda r: -r.contribution)
    score = int(contrib.sum()) * scale
    return Explanation(query, title, score, int(model.label([score])[0]), rows,
                       qv, SparseVector(np.zeros(0, np.int32), np.zeros(0, np.int32)))
