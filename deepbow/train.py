"""Training DeepBoW: vocabulary from the corpus, ordinal cross-entropy plus a FLOPS penalty.

`train_model` is data-agnostic (pairs in, model out) so that tests can train a tiny model on a
handful of pairs; `train_default` is the recipe of the shipped model over the shared data.
The FLOPS regulariser (SPLADE) is Σ_t (mean over the batch of the expansion weight of t)²: it
pushes rarely useful expansions to zero so vectors stay sparse.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from deepbow.config import TrainConfig, TrainParams
from deepbow.metrics import auc, best_thresholds, macro_f1
from deepbow.readers import Pair
from deepbow.text import Segmenter, normalize
from deepbow.vocab import Vocabulary


def _set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_model(train_pairs: Sequence[Pair], valid_pairs: Sequence[Pair],
                corpus: Sequence[str], user_words: Sequence[str], cfg: TrainConfig,
                log: Callable[[str], None] = lambda s: None):
    """Build the vocabulary and the network, train, keep the best checkpoint on validation,
    calibrate."""
    import torch

    _set_seed(cfg.train.seed)
    torch.set_num_threads(cfg.train.threads)
    t0 = time.time()
    model = new_model(corpus, user_words, cfg, log)
    return fit(model, train_pairs, valid_pairs, cfg.train, log, t0)


def new_model(corpus: Sequence[str], user_words: Sequence[str], cfg: TrainConfig,
              log: Callable[[str], None] = lambda s: None):
    """An untrained DeepBoW model: vocabulary from `corpus`, network shaped by cfg.net."""
    from deepbow.config import NetConfig
    from deepbow.encoder import DeepBoW
    from deepbow.model import DeepBoWNet

    t0 = time.time()
    seg = Segmenter(user_words)
    vocab = Vocabulary.build((seg.words(normalize(t)) for t in corpus), user_words,
                             bigram_prefix=cfg.net.bigram_prefix, **asdict(cfg.vocab))
    log(f"vocabulary: {vocab.n_terms} terms + {vocab.n_buckets} buckets, "
        f"{len(vocab.chars)} chars ({time.time() - t0:.0f}s)")
    net = DeepBoWNet(NetConfig(n_chars=len(vocab.chars), n_terms=vocab.n_terms,
                               n_buckets=vocab.n_buckets, **asdict(cfg.net)))
    model = DeepBoW(net, vocab, seg, {"train_config": cfg.to_dict()})
    if cfg.train.train_query_l1:
        model.query_norm = "l1"
    return model


def fit(model, train_pairs: Sequence[Pair], valid_pairs: Sequence[Pair], tp: TrainParams,
        log: Callable[[str], None] = lambda s: None, t0: float | None = None):
    """Train `model`'s network on the pairs (from scratch or from trained weights), keep the
    best checkpoint on validation, calibrate; returns the model."""
    if tp.hard_negative_repeat < 1:
        raise ValueError("hard_negative_repeat must be at least 1")
    t0 = time.time() if t0 is None else t0
    train_pairs = [p for p in train_pairs
                   for _ in range(tp.hard_negative_repeat if p.kind == "ecom-hard" else 1)]
    loop = _Loop(model, train_pairs, valid_pairs, tp, log, t0)
    loop.run()
    model.net.eval()
    model.net.load_state_dict(loop.best_state)
    _round_like_saved(model.net)
    calibrate(model, valid_pairs, tp.calibrate_on, log)
    model.manifest.update({"history": loop.history, "train_minutes": (time.time() - t0) / 60,
                           "n_train_pairs": len(train_pairs)})
    log(f"trained in {(time.time() - t0) / 60:.1f} min")
    return model


class _Loop:
    """The training loop's state: optimiser, schedule, sampling, the best checkpoint so far."""

    def __init__(self, model, pairs: Sequence[Pair], valid: Sequence[Pair], tp: TrainParams,
                 log: Callable[[str], None], t0: float) -> None:
        import torch

        self.model, self.net, self.pairs, self.valid = model, model.net, pairs, valid
        self.tp, self.log, self.t0 = tp, log, t0
        self.features = _feature_cache(model.featurizer)
        decay = [p for n, p in self.net.named_parameters() if p.dim() >= 2 and "emb" not in n]
        other = [p for n, p in self.net.named_parameters()
                 if not (p.dim() >= 2 and "emb" not in n)]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": tp.weight_decay},
                                      {"params": other, "weight_decay": 0.0}], lr=tp.lr)
        self.steps_per_epoch = max(1, len(pairs) // tp.batch_size)
        total = self.total = self.steps_per_epoch * tp.epochs
        warmup = min(500, total // 10 + 1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / total))
        self.rng = random.Random(tp.seed)
        self.triples = hard_triples(pairs) if tp.pair_weight > 0 else []
        if self.triples:
            log(f"{len(self.triples)} (query, exact, hard negative) triples for the pairwise "
                "loss")
        self.best_auc, self.best_state = -1.0, None
        self.history: list[dict] = []
        self.deadline = t0 + tp.time_budget_minutes * 60
        self.step = 0

    def run(self) -> None:
        order = list(range(len(self.pairs)))
        for epoch in range(self.tp.epochs):
            self.net.train()
            self.rng.shuffle(order)
            self.epoch(epoch + 1, order)
            self.checkpoint(epoch + 1)
            if time.time() > self.deadline:
                self.log("time budget reached")
                break

    def epoch(self, epoch: int, order: list[int]) -> None:
        tp, tot_loss, te = self.tp, 0.0, time.time()
        for n, bstart in enumerate(range(0, self.steps_per_epoch * tp.batch_size,
                                         tp.batch_size)):
            tot_loss += self.train_step([self.pairs[i]
                                         for i in order[bstart:bstart + tp.batch_size]])
            # a mid-epoch checkpoint, unless the epoch's own one was only a few steps ago
            if tp.validate_every and self.step % tp.validate_every == 0 \
                    and self.step % self.steps_per_epoch > tp.validate_every // 10:
                self.checkpoint(epoch)
            if self.step % 200 == 0:
                self.log(f"epoch {epoch} step {self.step}/{self.total} loss "
                         f"{tot_loss / 200:.4f} ({(time.time() - te) / (n + 1):.3f}s/step)")
                tot_loss = 0.0
            if time.time() > self.deadline:
                break

    def train_step(self, batch: list[Pair]) -> float:
        import torch

        net, tp, features = self.net, self.tp, self.features
        qd, qfull = dense(net, features([p.query for p in batch]), "query", tp.train_query_l1)
        dd, dfull = dense(net, features([p.title for p in batch]), "title")
        y = torch.tensor([p.label for p in batch])
        loss = torch.nn.functional.nll_loss(net.ordinal_logits((qd * dd).sum(-1)), y)
        if self.triples:
            loss = loss + tp.pair_weight * pair_loss(
                net, features, self.rng.sample(self.triples, min(tp.pair_batch,
                                                                 len(self.triples))),
                tp.train_query_l1)
        if qfull is not None and tp.flops_weight > 0:
            flops = (qfull.mean(0) ** 2).sum() + (dfull.mean(0) ** 2).sum()
            loss = loss + tp.flops_weight * flops
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.step += 1
        return float(loss.detach())

    def checkpoint(self, epoch: int) -> None:
        """Validate; keep the weights if they beat every earlier checkpoint."""
        self.net.eval()
        v = validate(self.model, self.valid)
        self.history.append({"epoch": epoch, "step": self.step, **v,
                             "minutes": (time.time() - self.t0) / 60})
        self.log(f"epoch {epoch} step {self.step}: valid "
                 + json.dumps({k: round(x, 4) for k, x in v.items()}))
        # with both domains, their mean AUC: a pooled AUC would also reward scores that merely
        # separate QBQTC pairs from the (easier) e-commerce ones
        crit = (v["qbqtc_auc_ge1"] + v["ecom_auc_ge1"]) / 2 if "qbqtc_auc_ge1" in v \
            else v["auc_ge1"]
        if crit > self.best_auc:
            self.best_auc = crit
            self.best_state = {k: t.detach().clone() for k, t in self.net.state_dict().items()}
        self.net.train()


def _feature_cache(featurizer):
    """Texts → a collated batch of tensors, each text featurised once per training run."""
    import torch

    from deepbow.featurize import Featurizer

    cache: dict = {}

    def features(texts: list[str]) -> dict:
        fs = []
        for t in texts:
            f = cache.get(t)
            if f is None:
                f = cache[t] = featurizer(t)
            fs.append(f)
        return {k: torch.from_numpy(v) for k, v in Featurizer.collate(fs).items()}

    return features


def hard_triples(pairs: Sequence[Pair]) -> list[tuple[str, str, str]]:
    """(query, exact-match title, hard-negative title) for every e-commerce query that has both,
    queries in sorted order, titles in file order."""
    from deepbow.metrics import hard_negative_groups

    exact = [p.label if p.kind.startswith("ecom") and p.kind != "ecom-hard" else -1
             for p in pairs]  # exact matches: e-commerce pairs of label 2 only
    groups = hard_negative_groups([p.query for p in pairs], exact, [p.kind for p in pairs])
    groups.sort(key=lambda g: pairs[g[0][0]].query)
    return [(pairs[a].query, pairs[a].title, pairs[b].title)
            for pos, hard in groups for a in pos for b in hard]


def dense(net, batch, side: str, query_l1: bool = False):
    """The network's dense vectors for one side of a training batch; with `query_l1` queries
    are L1-normalised, so a score becomes the weighted share of the query matched."""
    v, full = net.forward_dense(batch, side)
    if side == "query" and query_l1:
        v = v / (v.sum(-1, keepdim=True) + 1e-6)
    return v, full


def pair_loss(net, features, triples: Sequence[tuple[str, str, str]], query_l1: bool = False):
    """RankNet loss −log σ(a (s_exact − s_hard)), a the ordinal head's scale, so the pairwise
    term speaks in the same score units as the graded one."""
    import torch.nn.functional as F

    q, _ = dense(net, features([t[0] for t in triples]), "query", query_l1)
    d, _ = dense(net, features([t[1] for t in triples] + [t[2] for t in triples]), "title")
    n = len(triples)
    diff = (q * d[:n]).sum(-1) - (q * d[n:]).sum(-1)
    return F.softplus(-F.softplus(net.ord_scale) * diff).mean()


def calibrate(model, valid_pairs: Sequence[Pair], calibrate_on: str = "qbqtc",
              log: Callable[[str], None] = lambda s: None) -> None:
    """Fit the quantisation scales, choose the query normalisation, whether the expansion head
    adds words, and the label thresholds, all on validation pairs: the options with the highest
    AUC(label ≥ 1) on the calibration pairs win (the first listed on a tie), then thresholds
    maximise macro-F1."""
    texts = sorted({t for p in valid_pairs for t in (p.query, p.title)})
    calib = [p for p in valid_pairs if calibrate_on == "all" or p.kind == "qbqtc"] \
        or list(valid_pairs)
    labels = np.array([p.label for p in calib])
    found = {}
    trained_l1 = model.manifest.get("train_config", {}).get("train", {}).get("train_query_l1")
    expansions = (True, False) if model.net.cfg.expansion_k > 0 else (True,)
    for expansion in expansions:
        for norm in ("l1",) if trained_l1 else ("none", "l1"):
            model.query_norm, model.expansion = norm, expansion
            model.fit_scales(texts)
            scores = model.score_pairs([(p.query, p.title) for p in calib])
            found[norm, expansion] = (auc(scores, labels >= 1), dict(model.scales), scores)
    best = max(found, key=lambda k: found[k][0])
    model.query_norm, model.expansion = best
    model.scales = found[best][1]
    model.thresholds = best_thresholds(found[best][2], labels)

    def name(k: tuple[str, bool]) -> str:
        return k[0] + ("" if k[1] else ", no expansion")

    model.manifest["calibration"] = {
        "pairs": len(calib), "on": calibrate_on,
        "auc_ge1_by_option": {name(k): round(v[0], 4) for k, v in found.items()}}
    log(f"calibration: query_norm={best[0]}, expansion={best[1]} (valid AUC≥1 " +
        "; ".join(f"{name(k)} {v[0]:.4f}" for k, v in found.items()) +
        f"), thresholds {model.thresholds}")


def _round_like_saved(net) -> None:
    """Round the tables stored as float16, so calibration sees the numbers users will get."""
    import torch

    from deepbow.encoder import FORMAT

    with torch.no_grad():
        for name, p in net.named_parameters():
            if name in FORMAT.half:
                p.copy_(p.half().float())


def validate(model, pairs: Sequence[Pair]) -> dict[str, float]:
    scores = model.score_pairs([(p.query, p.title) for p in pairs])
    labels = np.array([p.label for p in pairs])
    out = {"auc_ge1": auc(scores, labels >= 1), "auc_eq2": auc(scores, labels == 2)}
    q = np.array([p.kind == "qbqtc" for p in pairs])
    if q.any() and (~q).any():
        out["qbqtc_auc_ge1"] = auc(scores[q], labels[q] >= 1)
        out["ecom_auc_ge1"] = auc(scores[~q], labels[~q] >= 1)
        t = best_thresholds(scores[q], labels[q])
        out["qbqtc_f1_oracle"] = macro_f1(np.digitize(scores[q], t), labels[q])
    return out


def recalibrate(model, priors=None, data_dir: Path | None = None,
                log: Callable[[str], None] = lambda s: None) -> None:
    """Re-run the calibration of a trained model on the default validation pairs, with the
    pairs its recipe calibrated on; with `priors` (PriorParams), give it those product-word
    priors first and record them in its recipe (`deepbow calibrate --config`)."""
    from deepbow.datasets import training_pairs

    calibrate_on = model.manifest.get("train_config", {}).get("train", {}).get(
        "calibrate_on", "qbqtc")
    if priors is not None:
        set_priors(model, priors, data_dir, log)
        model.manifest.setdefault("train_config", {})["priors"] = priors.to_dict()
    calibrate(model, training_pairs("valid", data_dir), calibrate_on, log)


def set_priors(model, params, data_dir: Path | None = None,
               log: Callable[[str], None] = lambda s: None) -> None:
    """Give a model the product-word priors of `params` (deepbow/priors.py), with the lexicon
    built from the shared data; priors off (the default) leave it without."""
    from deepbow.datasets import product_lexicon
    from deepbow.priors import ProductPriors

    rates = product_lexicon(data_dir) if params.active else {}
    model.priors = ProductPriors(rates, params, model.vocab, model.segmenter)
    if params.active:
        log(f"priors {params.to_dict()}, lexicon of {len(rates)} product words")


def recipe_pairs(cfg: TrainConfig, segmenter: Segmenter, data_dir: Path | None = None
                 ) -> tuple[list[Pair], list[Pair]]:
    """The shared-data recipe's (train, valid) pairs: QBQTC, the e-commerce pairs of the NER
    train titles and, with cfg.train.shopper_queries, shopper-like queries (deepbow/
    shopper_queries.py), each split by a hash of the query."""
    from deepbow.datasets import SPLITS, ner_titles, split_of, training_pairs
    from deepbow.shopper_queries import shopper_pairs

    seed = cfg.train.seed
    train, valid = (training_pairs(s, data_dir, seed=seed) for s in ("train", "valid"))
    if cfg.train.recipe_share < 1.0:
        train = random.Random(seed).sample(train, int(len(train) * cfg.train.recipe_share))
    if cfg.train.shopper_queries:
        shop = shopper_pairs(ner_titles("train", data_dir), segmenter,
                             cfg.train.shopper_queries, seed)
        train += [p for p in shop if split_of(p.query) in SPLITS["train"]]
        valid += [p for p in shop if split_of(p.query) in SPLITS["valid"]]
    return train, valid


def train_default(cfg: TrainConfig, out: str | Path, data_dir: Path | None = None,
                  log: Callable[[str], None] = lambda s: None, init: str | Path | None = None):
    """The shared-data recipe: a new model, or with `init` that model trained further (its
    vocabulary and network kept; cfg.vocab and cfg.net are then unused)."""
    import torch

    from deepbow.datasets import default_corpus_and_words

    _set_seed(cfg.train.seed)
    torch.set_num_threads(cfg.train.threads)
    if init is not None:
        from deepbow.encoder import DeepBoW

        model = DeepBoW.load(init)
        model.manifest["train_config"] = {**cfg.to_dict(), "init": str(init),
                                          "init_model_id": model.model_id}
        user: list[str] = model.segmenter.user_words
    else:
        corpus, user = default_corpus_and_words(data_dir)
        model = new_model(corpus, user, cfg, log)
    set_priors(model, cfg.priors, data_dir, log)
    train_pairs, valid_pairs = recipe_pairs(cfg, model.segmenter, data_dir)
    log(f"{len(train_pairs)} training pairs, {len(valid_pairs)} validation pairs, "
        f"{len(user)} user-dictionary words")
    fit(model, train_pairs, valid_pairs, cfg.train, log)
    model.save(out, {"trained_on": "shared data: qbqtc dev+pilot (train part), "
                                   "ecommerce_ner train splits, multicpr train queries, "
                                   "gazetteers" + (", shopper-like queries from the NER train "
                                                   "titles" if cfg.train.shopper_queries
                                                   else "")})
    log(f"saved {out} (model id {model.model_id})")
    return model


def train_on_pairs(init: str | Path, train_pairs: Sequence[Pair],
                   valid_pairs: Sequence[Pair] | None, tp: TrainParams, out: str | Path,
                   log: Callable[[str], None] = lambda s: None):
    """Fine-tune a model on a user's own labelled pairs (0/1/2, or E/S/C/I letters), without
    the shared data: its vocabulary and network kept, the best checkpoint on `valid_pairs`
    (default: a query-disjoint 15% of the pairs) kept, then calibrated on them."""
    import torch

    from deepbow.datasets import finetune_split
    from deepbow.encoder import DeepBoW

    train_pairs, valid_pairs = finetune_split(train_pairs, valid_pairs)
    _set_seed(tp.seed)
    torch.set_num_threads(tp.threads)
    model = DeepBoW.load(init)
    model.manifest["train_config"] = {"train": asdict(tp), "init": str(init),
                                      "init_model_id": model.model_id,
                                      "pairs": len(train_pairs), "valid_pairs": len(valid_pairs)}
    log(f"fine-tuning {init} on {len(train_pairs)} pairs, validating on {len(valid_pairs)}")
    fit(model, train_pairs, valid_pairs, tp, log)
    model.save(out, {"trained_on": "the user's labelled pairs, from " + str(init)})
    log(f"saved {out} (model id {model.model_id})")
    return model
