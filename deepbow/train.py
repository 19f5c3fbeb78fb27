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

from deepbow.config import TrainConfig
from deepbow.datasets import Pair
from deepbow.metrics import auc, best_thresholds, macro_f1
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
    """Build the vocabulary, train, keep the best checkpoint on validation, calibrate."""
    import torch

    from deepbow.config import NetConfig
    from deepbow.encoder import DeepBoW
    from deepbow.featurize import Featurizer
    from deepbow.model import DeepBoWNet

    tp = cfg.train
    if tp.hard_negative_repeat < 1:
        raise ValueError("hard_negative_repeat must be at least 1")
    train_pairs = [p for p in train_pairs
                   for _ in range(tp.hard_negative_repeat if p.kind == "ecom-hard" else 1)]
    _set_seed(tp.seed)
    torch.set_num_threads(tp.threads)
    t0 = time.time()
    seg = Segmenter(user_words)
    vocab = Vocabulary.build((seg.words(normalize(t)) for t in corpus), user_words,
                             bigram_prefix=cfg.net.bigram_prefix, **asdict(cfg.vocab))
    log(f"vocabulary: {vocab.n_terms} terms + {vocab.n_buckets} buckets, "
        f"{len(vocab.chars)} chars ({time.time() - t0:.0f}s)")
    net = DeepBoWNet(NetConfig(n_chars=len(vocab.chars), n_terms=vocab.n_terms,
                               n_buckets=vocab.n_buckets, **asdict(cfg.net)))
    model = DeepBoW(net, vocab, seg, {"train_config": cfg.to_dict()})
    if tp.train_query_l1:
        model.query_norm = "l1"
    feat = model.featurizer
    cache: dict = {}

    def features(texts: list[str]) -> dict[str, torch.Tensor]:
        fs = []
        for t in texts:
            f = cache.get(t)
            if f is None:
                f = cache[t] = feat(t)
            fs.append(f)
        return {k: torch.from_numpy(v) for k, v in Featurizer.collate(fs).items()}

    params_decay = [p for n, p in net.named_parameters() if p.dim() >= 2 and "emb" not in n]
    params_other = [p for n, p in net.named_parameters() if not (p.dim() >= 2 and "emb" not in n)]
    opt = torch.optim.AdamW([{"params": params_decay, "weight_decay": tp.weight_decay},
                             {"params": params_other, "weight_decay": 0.0}], lr=tp.lr)
    steps_per_epoch = max(1, len(train_pairs) // tp.batch_size)
    total = steps_per_epoch * tp.epochs
    warmup = min(500, total // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / total))
    rng = random.Random(tp.seed)
    triples = hard_triples(train_pairs) if tp.pair_weight > 0 else []
    if triples:
        log(f"{len(triples)} (query, exact, hard negative) triples for the pairwise loss")
    order = list(range(len(train_pairs)))
    best: dict = {"auc": -1.0, "state": None}
    history: list[dict] = []
    deadline = t0 + tp.time_budget_minutes * 60
    step = 0

    def checkpoint(epoch: int) -> None:
        """Validate; keep the weights if they beat every earlier checkpoint."""
        net.eval()
        v = validate(model, valid_pairs)
        history.append({"epoch": epoch, "step": step, **v, "minutes": (time.time() - t0) / 60})
        log(f"epoch {epoch} step {step}: valid "
            + json.dumps({k: round(x, 4) for k, x in v.items()}))
        # with both domains, their mean AUC: a pooled AUC would also reward scores that merely
        # separate QBQTC pairs from the (easier) e-commerce ones
        crit = (v["qbqtc_auc_ge1"] + v["ecom_auc_ge1"]) / 2 if "qbqtc_auc_ge1" in v \
            else v["auc_ge1"]
        if crit > best["auc"]:
            best["auc"] = crit
            best["state"] = {k: t.detach().clone() for k, t in net.state_dict().items()}
        net.train()

    for epoch in range(tp.epochs):
        net.train()
        rng.shuffle(order)
        tot_loss = 0.0
        te = time.time()
        for bstart in range(0, steps_per_epoch * tp.batch_size, tp.batch_size):
            batch = [train_pairs[i] for i in order[bstart:bstart + tp.batch_size]]
            qd, qfull = dense(net, features([p.query for p in batch]), "query",
                              tp.train_query_l1)
            dd, dfull = dense(net, features([p.title for p in batch]), "title")
            s = (qd * dd).sum(-1)
            y = torch.tensor([p.label for p in batch])
            loss = torch.nn.functional.nll_loss(net.ordinal_logits(s), y)
            if triples:
                loss = loss + tp.pair_weight * pair_loss(
                    net, features, rng.sample(triples, min(tp.pair_batch, len(triples))),
                    tp.train_query_l1)
            if qfull is not None and tp.flops_weight > 0:
                flops = (qfull.mean(0) ** 2).sum() + (dfull.mean(0) ** 2).sum()
                loss = loss + tp.flops_weight * flops
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            tot_loss += float(loss.detach())
            # a mid-epoch checkpoint, unless the epoch's own one was only a few steps ago
            if tp.validate_every and step % tp.validate_every == 0 \
                    and step % steps_per_epoch > tp.validate_every // 10:
                checkpoint(epoch + 1)
            if step % 200 == 0:
                log(f"epoch {epoch + 1} step {step}/{total} loss {tot_loss / 200:.4f} "
                    f"({(time.time() - te) / (bstart // tp.batch_size + 1):.3f}s/step)")
                tot_loss = 0.0
            if time.time() > deadline:
                break
        checkpoint(epoch + 1)
        if time.time() > deadline:
            log("time budget reached")
            break
    net.eval()
    net.load_state_dict(best["state"])
    _round_like_saved(net)
    calibrate(model, valid_pairs, tp.calibrate_on, log)
    model.manifest.update({"history": history, "train_minutes": (time.time() - t0) / 60,
                           "n_train_pairs": len(train_pairs)})
    log(f"trained in {(time.time() - t0) / 60:.1f} min")
    return model


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

    from deepbow.modelfile import HALF

    with torch.no_grad():
        for name, p in net.named_parameters():
            if f"{name}" in HALF:
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


def default_corpus_and_words(data_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """Texts for the vocabulary (training parts only) and the jieba user dictionary words."""
    from deepbow.datasets import (
        SPLITS,
        ner_titles,
        read_pairs,
        shared_data_dir,
        split_of,
        texts_containing,
    )

    d = data_dir or shared_data_dir()
    corpus: list[str] = []
    for name in ("qbqtc/dev.jsonl", "qbqtc/pilot.jsonl"):
        for p in read_pairs(d / name):
            if split_of(p.query) in SPLITS["train"]:
                corpus += [p.query, p.title]
    titles = ner_titles("train", d)
    corpus += [t.text for t in titles]
    with open(d / "multicpr_ecom/train.query.txt", encoding="utf-8") as fh:
        corpus += [line.split("\t", 1)[-1].strip() for line in fh]
    words = set()
    for f in sorted((d / "gazetteers").glob("*.dic")):
        words |= {normalize(w) for w in f.read_text(encoding="utf-8").split("\n")}
    words |= {e for t in titles for ty, e in t.entities if ty in ("product", "brand")}
    # keep the dictionary words people actually write: those seen in the training texts
    words = {w for w in words if 2 <= len(w) <= 12}
    user = sorted(texts_containing(words, [normalize(t) for t in corpus]))
    return corpus, user


def calibrate_default(model, data_dir: Path | None = None, calibrate_on: str = "qbqtc",
                      log: Callable[[str], None] = lambda s: None) -> None:
    """Re-run the calibration of a trained model on the default validation pairs."""
    from deepbow.datasets import training_pairs

    calibrate(model, training_pairs("valid", data_dir), calibrate_on, log)


def train_default(cfg: TrainConfig, out: str | Path, data_dir: Path | None = None,
                  log: Callable[[str], None] = lambda s: None):
    from deepbow.datasets import training_pairs

    corpus, user = default_corpus_and_words(data_dir)
    train_pairs = training_pairs("train", data_dir, seed=cfg.train.seed)
    valid_pairs = training_pairs("valid", data_dir, seed=cfg.train.seed)
    log(f"{len(train_pairs)} training pairs, {len(valid_pairs)} validation pairs, "
        f"{len(user)} user-dictionary words")
    model = train_model(train_pairs, valid_pairs, corpus, user, cfg, log)
    model.save(out, {"trained_on": "shared data: qbqtc dev+pilot (train part), "
                                   "ecommerce_ner train splits, multicpr train queries, "
                                   "gazetteers"})
    log(f"saved {out} (model id {model.model_id})")
    return model
