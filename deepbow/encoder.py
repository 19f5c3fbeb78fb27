"""The DeepBoW model at run time: encode texts into sparse vectors, score, label and explain.

The CLI, the Python API and the index all go through this class, so a score is computed one way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from deepbow.edits import Edits, WordEdits
from deepbow.errors import InputError, ModelFileError
from deepbow.explain import Explanation, MatchRow
from deepbow.featurize import Featurizer
from deepbow.modelfile import ModelFormat, load_model_dir, save_model_dir
from deepbow.priors import PriorParams, ProductPriors
from deepbow.sparse import QUERY_MAX_CODE, TITLE_MAX_CODE, SparseVector, dot, matched, quantize
from deepbow.text import Segmenter, normalize
from deepbow.vocab import Vocabulary

# the large embedding tables are stored as float16; the model is calibrated after that rounding
FORMAT = ModelFormat("deepbow-model", 1, "model", ("terms.txt", "chars.txt", "userdict.txt"),
                     id_keys=("net", "scales", "query_norm", "min_weight", "priors"),
                     half=("term_emb.weight", "char_emb.weight"), optional=("products.txt",))


class DeepBoW:
    def __init__(self, net, vocab: Vocabulary, segmenter: Segmenter, manifest: dict,
                 product_rates: dict[str, float] | None = None) -> None:
        self.net = net.eval()
        self.vocab = vocab
        self.segmenter = segmenter
        self.manifest = manifest
        cfg = net.cfg
        self.featurizer = Featurizer(vocab, segmenter, cfg.max_chars, cfg.max_words,
                                     cfg.char_bigrams, cfg.head_words)
        self.thresholds = tuple(manifest.get("thresholds", (0.0, float("inf"))))
        self.min_weight = float(manifest.get("min_weight", 1e-3))
        # quantisation steps per side (see deepbow.sparse); fitted at the end of training
        self.scales: dict[str, float] = dict(manifest.get("scales", {"query": 1e-3,
                                                                      "title": 1e-2}))
        # "l1": query weights sum to 1, so a score is the weighted share of the query a title
        # covers: comparable across queries (global thresholds, AUC), same ranking per query
        self.query_norm: str = manifest.get("query_norm", "none")
        # whether the synonym-expansion head adds words; calibration keeps it only where it
        # helps on validation
        self.expansion: bool = bool(manifest.get("expansion", True))
        # product-word priors (deepbow/priors.py), with the lexicon of products.txt
        self.priors = ProductPriors(product_rates or {}, PriorParams(**manifest.get(
            "priors", {})), vocab, segmenter)

    @property
    def model_id(self) -> str:
        return self.manifest.get("model_id", "unsaved")

    # -- loading and saving ---------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> DeepBoW:
        import torch

        from deepbow.config import NetConfig
        from deepbow.model import DeepBoWNet

        manifest, arrays, texts = load_model_dir(path, FORMAT, verify)
        terms, chars, user_words = (texts[f] for f in FORMAT.text_files)
        rates = {w: float(r) for w, _, r in (x.partition("\t")
                                              for x in texts.get("products.txt", []))}
        try:
            cfg = NetConfig(**manifest["net"])
            vocab = Vocabulary(terms, chars, cfg.n_buckets, cfg.bigram_prefix)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: manifest does not describe a network ({e})") from None
        if vocab.n_terms != cfg.n_terms or len(chars) != cfg.n_chars:
            raise ModelFileError(f"{path}: vocabulary files do not match the network "
                                 f"({vocab.n_terms} terms / {len(chars)} chars in the files, "
                                 f"{cfg.n_terms} / {cfg.n_chars} in the manifest)")
        net = DeepBoWNet(cfg)
        expected = net.state_dict()
        if set(arrays) != set(expected):
            missing = sorted(set(expected) - set(arrays))[:3]
            extra = sorted(set(arrays) - set(expected))[:3]
            raise ModelFileError(f"{path}: weights do not match the network "
                                 f"(missing {missing}, unexpected {extra})")
        for k, v in arrays.items():
            if tuple(v.shape) != tuple(expected[k].shape):
                raise ModelFileError(f"{path}: weight {k} has shape {v.shape}, the network "
                                     f"expects {tuple(expected[k].shape)}")
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                             for k, v in arrays.items()})
        return cls(net, vocab, Segmenter(user_words), manifest, rates)

    def save(self, path: str | Path, extra: dict | None = None) -> str:
        state = {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        manifest = {**self.manifest, **(extra or {}), "net": self.net.cfg.to_dict(),
                    "thresholds": list(self.thresholds), "min_weight": self.min_weight,
                    "scales": self.scales, "query_norm": self.query_norm,
                    "expansion": self.expansion}
        texts = {"terms.txt": self.vocab.terms, "chars.txt": self.vocab.chars,
                 "userdict.txt": self.segmenter.user_words}
        if self.priors.params.active:
            manifest["priors"] = self.priors.params.to_dict()
            texts["products.txt"] = [f"{w}\t{r:.4f}" for w, r in sorted(self.priors.rates.items())]
        self.manifest = save_model_dir(path, FORMAT, state, texts, manifest)
        return self.model_id

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], side: str = "query", batch_size: int = 128,
               progress: Callable[[int], None] | None = None) -> list[SparseVector]:
        """Sparse bags of words for `texts`, in order; `side` is "query" or "title" (the tower
        is shared; the sides differ in quantisation, and in how terms are weighted when the
        network has sigmoid title weights). Empty text gives an empty vector."""
        if side not in ("query", "title"):
            raise InputError(f"side must be 'query' or 'title', not {side!r}")
        scale = self.scales[side]
        max_code = QUERY_MAX_CODE if side == "query" else TITLE_MAX_CODE
        out = []
        for ids, w, words, exp in self._weights(texts, side, batch_size, progress):
            w = self._normalize(w, side)
            codes = quantize(w, scale, max_code)
            keep = codes > 0
            out.append(SparseVector(ids[keep], codes[keep], scale,
                                    [x for x, k in zip(words, keep, strict=True) if k],
                                    exp[keep]))
        return out

    def _normalize(self, w: np.ndarray, side: str) -> np.ndarray:
        if side == "query" and self.query_norm == "l1" and w.sum() > 0:
            return w / w.sum()
        return w

    def fit_scales(self, texts: Sequence[str]) -> None:
        """Set each side's quantisation step so that the largest weight seen (plus 10%) gets
        the top code; larger weights saturate."""
        # the sides weigh a text's terms alike unless titles have sigmoid weights of their own
        sides = ("query", "title") if self.net.cfg.title_weights == "sigmoid" else ("query",)
        raw = {side: [w for _, w, _, _ in self._weights(texts, side) if len(w)]
               for side in sides}
        raw.setdefault("title", raw["query"])
        top = {side: max((float(self._normalize(w, side).max()) for w in raw[side]),
                         default=1.0) for side in ("query", "title")}
        self.scales = {"query": 1.1 * top["query"] / QUERY_MAX_CODE,
                       "title": 1.1 * top["title"] / TITLE_MAX_CODE}

    def _weights(self, texts: Sequence[str], side: str, batch_size: int = 128, progress=None):
        """_encode_raw with the product-word priors applied (when the model has them)."""
        raw = self._encode_raw(texts, side, batch_size, progress)
        if not self.priors.params.active:
            return raw
        return [(ids, self.priors.apply(normalize(t), side, w, words), words, exp)
                for t, (ids, w, words, exp) in zip(texts, raw, strict=True)]

    def _encode_raw(self, texts: Sequence[str], side: str = "query", batch_size: int = 128,
                    progress=None):
        """(term ids, float weights, words, expanded) per text, before quantisation."""
        import torch

        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"text {i} is {type(t).__name__}, not str")
        feats = [self.featurizer(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(feats[i].char_ids))
        out: list[tuple | None] = [None] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = {k: torch.from_numpy(v)
                         for k, v in Featurizer.collate([feats[i] for i in idx]).items()}
                tw, h_c, h_w = self.net.term_weights(batch, side)
                tw = tw.numpy()
                if self.net.cfg.expansion_k > 0 and self.expansion:
                    ev, eids, _ = self.net.expansion(batch["term_ids"], h_c, h_w)
                    ev, eids = ev.numpy(), eids.numpy()
                else:
                    ev = eids = None
                for row, i in enumerate(idx):
                    f = feats[i]
                    out[i] = self._to_sparse(
                        f.term_ids, [t.surface for t in f.terms], tw[row, : len(f.terms)],
                        None if ev is None else eids[row], None if ev is None else ev[row])
                if progress is not None:
                    progress(len(idx))
        return out  # type: ignore[return-value]

    def _to_sparse(self, term_ids, surfaces, tweights, exp_ids, exp_vals) -> tuple:
        weights: dict[int, float] = {}
        words: dict[int, str] = {}
        for tid, s, w in zip(term_ids, surfaces, tweights, strict=True):
            weights[tid] = weights.get(tid, 0.0) + float(w)
            words.setdefault(tid, s)
        in_text = set(weights)
        if exp_ids is not None:
            for tid, w in zip(exp_ids.tolist(), exp_vals.tolist(), strict=True):
                if w > self.min_weight:
                    weights[tid] = weights.get(tid, 0.0) + w
                    words.setdefault(tid, self.vocab.term_name(tid))
        ids = np.array(sorted(t for t, w in weights.items() if w > self.min_weight), np.int32)
        return (ids, np.array([weights[t] for t in ids.tolist()], np.float64),
                [words[t] for t in ids.tolist()],
                np.array([t not in in_text for t in ids.tolist()], bool))

    def encode_csr(self, texts: Sequence[str], batch_size: int = 128, progress=None):
        """Title codes as rows of a scipy CSR matrix (docs × vocabulary size), for the index;
        weight = code × self.scales["title"]."""
        from scipy import sparse

        vecs = self.encode(texts, "title", batch_size, progress)
        indptr = np.zeros(len(vecs) + 1, np.int64)
        np.cumsum([len(v) for v in vecs], out=indptr[1:])
        ids = np.concatenate([v.ids for v in vecs]) if vecs else np.zeros(0, np.int32)
        c = np.concatenate([v.codes for v in vecs]) if vecs else np.zeros(0, np.int32)
        return sparse.csr_matrix((c.astype(np.uint8), ids, indptr),
                                 shape=(len(vecs), self.vocab.size))

    # -- scoring ----------------------------------------------------------------------------
    def query_vector(self, query: str, edits: Edits | WordEdits | None = None) -> SparseVector:
        """A query's vector with the operators' word edits applied (scales, bans, links)."""
        words = edits if isinstance(edits, WordEdits) else WordEdits.compile(edits, self.vocab)
        return words.apply(self.encode([query], "query")[0])

    def score(self, query: str, titles: Sequence[str], edits: Edits | None = None
              ) -> np.ndarray:
        q = self.query_vector(query, edits)
        return np.array([dot(q, d) for d in self.encode(titles, "title")], np.float64)

    def score_pairs(self, pairs: Iterable[tuple[str, str]], batch_size: int = 256,
                    edits: Edits | None = None) -> np.ndarray:
        """Scores of (query, title) pairs; each distinct text is encoded once."""
        pairs = list(pairs)
        queries = sorted({q for q, _ in pairs})
        titles = sorted({t for _, t in pairs})
        words = WordEdits.compile(edits, self.vocab)
        qv = dict(zip(queries, map(words.apply, self.encode(queries, "query", batch_size)),
                      strict=True))
        tv = dict(zip(titles, self.encode(titles, "title", batch_size), strict=True))
        return np.array([dot(qv[q], tv[t]) for q, t in pairs], np.float64)

    def label(self, scores) -> np.ndarray:
        """Grades 0/1/2 from scores with the thresholds calibrated at training time."""
        return np.digitize(np.asarray(scores, np.float64), self.thresholds).astype(np.int64)

    def explain(self, query: str, title: str, edits: Edits | None = None) -> Explanation:
        q, d = self.query_vector(query, edits), self.encode([title], "title")[0]
        qi, di, contrib = matched(q, d)
        qe = q.expanded if q.expanded is not None else np.zeros(len(q), bool)
        de = d.expanded if d.expanded is not None else np.zeros(len(d), bool)
        rows = [MatchRow(d.words[b] if not de[b] else q.words[a], float(q.weights[a]),
                         float(d.weights[b]), float(c), bool(qe[a]), bool(de[b]))
                for a, b, c in zip(qi, di, contrib, strict=True)]
        rows.sort(key=lambda r: -r.contribution)
        score = dot(q, d)
        return Explanation(query, title, score, int(self.label([score])[0]), rows, q, d)
