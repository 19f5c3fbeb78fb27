"""The two corpora of benchmarks/peers.py, as (docs × terms uint8 CSR, [(term ids, codes)]).

* "deepbow": DeepBoW-like vectors. The real Taobao titles of the NER sets (about 11k distinct
  titles) and real e-commerce queries (Multi-CPR, dev then train), encoded by the shipped model
  (or --model), so documents and queries have the model's real sizes and weights: ~31 words per
  title, ~8 per query, 8-bit title impacts and 12-bit query codes. The titles are repeated up to
  the corpus size; every copy after the first is perturbed (each posting kept with probability
  0.9, its impact times U(0.8, 1.25)), so the copies are near-duplicates rather than exact ones,
  which would make every top-10 a block of ties and let any pruning skip almost everything.
  The encodings are cached under $DEEPBOW_CACHE (or ~/.cache/deepbow)/bench by model id.
* "synthetic": the Zipfian learned-sparse corpus of benchmarks/retrieval.py (20-60 terms a doc
  over 100k terms, skewed 8-bit impacts; queries of 3-10 terms weighted like IDF).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import sparse

PERTURB_KEEP = 0.9
PERTURB_RANGE = (0.8, 1.25)


def cache_dir() -> Path:
    from deepbow.locations import default_cache_dir

    d = default_cache_dir() / "bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


def encoded_titles_and_queries(model_path=None, n_queries=1000):
    """(title codes CSR, query term ids, query codes) of the real texts, cached by model id."""
    import deepbow
    from deepbow.datasets import ner_titles, shared_data_dir
    from deepbow.readers import read_queries

    model = deepbow.load(model_path)
    n_queries = max(n_queries, 1000)  # one cache file serves every smaller run
    path = cache_dir() / f"peers-{model.model_id}-{n_queries}.npz"
    if path.is_file():
        z = np.load(path)
        titles = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]),
                                   shape=tuple(z["shape"]))
        qptr = z["qptr"]
        qt = [z["qterms"][a:b] for a, b in zip(qptr[:-1], qptr[1:], strict=True)]
        qc = [z["qcodes"][a:b] for a, b in zip(qptr[:-1], qptr[1:], strict=True)]
        return titles, qt, qc
    texts = list(dict.fromkeys(t.text for w in ("train", "dev") for t in ner_titles(w)))
    titles = model.encode_csr(texts, batch_size=256)
    queries = []
    for name in ("dev.query.txt", "train.query.txt"):
        queries += [q for _, q in read_queries(shared_data_dir() / "multicpr_ecom" / name)]
        if len(queries) >= n_queries:
            break
    vecs = [v for v in model.encode(queries[: n_queries * 2], "query") if len(v)][:n_queries]
    qt = [v.ids.astype(np.int64) for v in vecs]
    qc = [v.codes.astype(np.int64) for v in vecs]
    qptr = np.cumsum([0] + [len(t) for t in qt])
    np.savez(path, data=titles.data, indices=titles.indices, indptr=titles.indptr,
             shape=np.array(titles.shape), qptr=qptr, qterms=np.concatenate(qt),
             qcodes=np.concatenate(qc))
    return titles, qt, qc


def replicate(titles: sparse.csr_matrix, n_docs: int, rng) -> sparse.csr_matrix:
    """n_docs rows: the titles in order, then perturbed copies (see the module docstring)."""
    reps = n_docs // titles.shape[0] + 1
    big = sparse.vstack([titles] * reps, format="csr")[:n_docs]
    first = titles.shape[0]
    rows = np.repeat(np.arange(big.shape[0]), np.diff(big.indptr))
    copy = rows >= first
    scaled = big.data.astype(np.float64) * rng.uniform(*PERTURB_RANGE, big.nnz)
    data = np.where(copy, np.clip(np.rint(scaled), 1, 255), big.data).astype(np.uint8)
    keep = ~copy | (rng.random(big.nnz) < PERTURB_KEEP)
    out = sparse.csr_matrix((data[keep], (rows[keep], big.indices[keep])), shape=big.shape)
    out.sort_indices()
    return out


def deepbow_like(n_docs: int, n_queries: int, seed: int = 0, model_path=None):
    titles, qt, qc = encoded_titles_and_queries(model_path, n_queries)
    docs = replicate(titles, n_docs, np.random.default_rng(seed))
    return docs, list(zip(qt, qc, strict=True))[:n_queries]


def synthetic(n_docs: int, n_queries: int, seed: int = 0, vocab: int = 100_000,
              weights: str = "idf"):
    from retrieval import make_corpus, make_queries

    rng = np.random.default_rng(seed)
    docs = make_corpus(n_docs, vocab, 20, 60, 1.0, "skewed", rng)
    df = np.bincount(docs.indices, minlength=vocab)
    return docs, make_queries(n_queries, vocab, 1.0, rng, df, n_docs, weights)


def describe(name: str, docs: sparse.csr_matrix, queries) -> str:
    csc_len = np.bincount(docs.indices, minlength=docs.shape[1])
    per_q = np.mean([csc_len[t].sum() for t, _ in queries])
    return (f"{name}: {docs.shape[0]:,} docs, {docs.shape[1]:,} terms, {docs.nnz:,} postings "
            f"({docs.nnz / max(1, docs.shape[0]):.1f}/doc); {len(queries)} queries, "
            f"{np.mean([len(t) for t, _ in queries]):.1f} terms/query, "
            f"{per_q:,.0f} postings/query")
