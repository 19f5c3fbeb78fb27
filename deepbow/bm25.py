"""The BM25 baseline that `deepbow eval` prints beside the model: bm25s over our segmenter.

IDF comes from the evaluated file's own distinct titles. The baseline uses the same jieba user
dictionary as the model, so it is not handicapped by worse segmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepbow.text import Segmenter, normalize


def bm25_pair_scores(queries: Sequence[str], titles: Sequence[str],
                     segmenter: Segmenter) -> np.ndarray:
    import bm25s

    docs = sorted(set(titles))
    doc_index = {t: i for i, t in enumerate(docs)}
    corpus_tokens = [segmenter.words(normalize(t)) or ["<empty>"] for t in docs]
    retriever = bm25s.BM25()
    ids, vocab = _vocab_ids(corpus_tokens)
    retriever.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    cache: dict[str, np.ndarray] = {}
    out = np.zeros(len(queries), np.float64)
    for i, (q, t) in enumerate(zip(queries, titles, strict=True)):
        if q not in cache:
            ids = [vocab[w] for w in segmenter.words(normalize(q)) if w in vocab]
            cache[q] = (retriever.get_scores(ids) if ids
                        else np.zeros(len(docs), np.float32))
        out[i] = cache[q][doc_index[t]]
    return out


def _vocab_ids(token_lists: list[list[str]]) -> tuple[list[list[int]], dict[str, int]]:
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(w, len(vocab)) for w in toks] for toks in token_lists]
    return ids, vocab
