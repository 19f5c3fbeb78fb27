"""Training EBRM in three stages on this CPU:

1. the entity tagger on the Taobao NER *train* sets (a hash-chosen 5% of them picks the epoch);
2. QE pretraining: the cross-encoder on QE pairs generated from the gold tags (ebrm/qedata.py);
3. end-to-end fine-tuning on query–item labels (the e-commerce pairs of deepbow/datasets.py)
   through the soft logic: P(label ≥ 1) = sat, P(label = 2) = sat · ok, binary cross-entropy on
   both, gradients flowing through the t-norms into the cross-encoder.

Every epoch count, rate and shape comes from an EbrmConfig (ebrm/config.py; the shipped recipe
is ebrm/configs/default.toml), stored whole in the model's manifest. The logic and thresholds are
then chosen on validation (ebrm/calibrate.py). The NER dev sets are never read here: they are
the held-out evaluation.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from deepbow.datasets import (
    NER_TRAIN,
    SPLITS,
    TaggedTitle,
    default_corpus,
    ecommerce_pairs,
    finetune_split,
    read_ner_raw,
    span_positions,
    split_of,
    texts_containing,
)
from deepbow.locations import shared_data_dir
from deepbow.metrics import auc
from deepbow.readers import Pair
from deepbow.text import normalize
from ebrm.config import EbrmConfig
from ebrm.lexicon import Entity, Lexicon
from ebrm.model import EBRM
from ebrm.modeldir import load_tagger
from ebrm.qe import QEModel, build_net, char_vocab
from ebrm.qedata import QEExample, qe_examples
from ebrm.soft_logic import soft_and, soft_or
from ebrm.tagger import ENTITY_TYPES, tags_from_spans, train_tagger

Log = Callable[[str], None]


def gold_titles(files: Sequence[str], data_dir: Path) -> list[tuple[str, list[Entity], bool]]:
    """(text, gold entities with spans, partially annotated?) for NER files; the brand/product
    set tags only products and brands, so it is partial."""
    out = []
    for f in files:
        partial = f.endswith(".bieos")
        for text, tags in read_ner_raw(data_dir / f):
            ents = [Entity(t, normalize(text[a:b]), a, b) for t, a, b in span_positions(tags)
                    if normalize(text[a:b])]
            out.append((text, ents, partial))
    return out


def lexicon_for(corpus: Sequence[str], data_dir: Path) -> Lexicon:
    """Gazetteer words that occur in the training texts (the gazetteers are not shipped whole)."""
    full = Lexicon.from_gazetteers(data_dir / "gazetteers")
    seen = set(texts_containing(set(full.words), [normalize(t) for t in corpus]))
    return Lexicon(sorted(seen & set(full.of_type("product"))),
                   sorted(seen & set(full.of_type("brand"))))


def _bce(p, y):
    import torch

    return torch.nn.functional.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), y)


def shuffled_batches(items: Sequence, batch_size: int, rng: np.random.Generator):
    """One epoch of minibatches in a fresh random order."""
    order = rng.permutation(len(items))
    for a in range(0, len(order), batch_size):
        yield [items[i] for i in order[a:a + batch_size]]


def pretrain_qe(qe: QEModel, examples: Sequence[QEExample], epochs: int, lr: float,
                batch_size: int = 256, seed: int = 0, log: Log = print) -> None:
    """Stage 2: the cross-encoder on generated QE pairs (s masked out where undefined)."""
    import torch

    net = qe.net
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    steps = epochs * ((len(examples) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    for epoch in range(epochs):
        net.train()
        total, t0 = 0.0, time.time()
        for ex in shuffled_batches(examples, batch_size, rng):
            logits = qe.logits([e.query for e in ex], [(e.type, e.entity) for e in ex])
            y = torch.tensor([[max(e.s, 0.0), e.c] for e in ex], dtype=torch.float32)
            m = torch.tensor([[float(e.s >= 0), 1.0] for e in ex], dtype=torch.float32)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y, reduction="none") * m).sum() / m.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(ex)
        log(f"QE pretraining epoch {epoch + 1}: loss {total / len(examples):.4f} "
            f"({time.time() - t0:.0f} s)")
    net.eval()


def qi_forward(qe: QEModel, queries: Sequence[str], lists: Sequence[Sequence[Entity]],
               family: str = "product", gamma: float = 1.0, brand_gamma: float | None = None,
               probs=None):
    """Differentiable (sat, ok) for query–item pairs: one cross-encoder call per distinct
    (query, entity) of the batch, then the soft logic. `probs`: those calls' results, already
    computed for this very batch (qi_judgements)."""
    import torch

    from ebrm.table import EntityTable

    uniq: dict[tuple[str, tuple[str, str]], int] = {}
    prod_rows, all_rows, confs, every_w = [], [], [], []
    for q, ents in zip(queries, lists, strict=True):
        t = EntityTable([ents], gamma, brand_gamma)  # the same rows and weights as at inference
        ids = [uniq.setdefault((q, k), len(uniq)) for k in t.keys]
        all_rows.append([ids[j] for j in t.every[0] if j < len(ids)])
        prod_rows.append([ids[j] for j in t.prod[0] if j < len(ids)])
        confs.append(t.conf[0, :len(prod_rows[-1])].tolist())
        every_w.append(t.every_w[0, :len(all_rows[-1])].tolist())
    if probs is None:
        probs = _qe_probs(qe, list(uniq))
    s = torch.cat([probs[:, 0], torch.zeros(1)])
    c = torch.cat([probs[:, 1], torch.ones(1)])

    def pad(rows, fill, dtype):
        width = max((len(r) for r in rows), default=0)
        out = torch.full((len(rows), width), fill, dtype=dtype)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.tensor(r, dtype=dtype)
        return out

    conf = pad(confs, 1.0, torch.float32)
    w = pad(every_w, 1.0, torch.float32)
    return (soft_or(s[pad(prod_rows, len(uniq), torch.long)] * conf, family),
            soft_and(1.0 - w * (1.0 - c[pad(all_rows, len(uniq), torch.long)]), family))


def _qe_probs(qe: QEModel, uniq: Sequence[tuple[str, tuple[str, str]]]):
    """sigmoid of the cross-encoder's logits for distinct (query, entity key) pairs."""
    import torch

    if not uniq:
        return torch.zeros((0, 2))
    return torch.sigmoid(qe.logits([q for q, _ in uniq], [k for _, k in uniq]))


def finetune(qe: QEModel, pairs: Sequence[Pair], entities: Mapping[str, list[Entity]],
             valid: Sequence[Pair], valid_entities: Callable[[Sequence[str]], list],
             epochs: int, lr: float, batch_size: int = 64, seed: int = 0,
             log: Log = print) -> None:
    """End-to-end on QI labels through the soft logic; keeps the best epoch on validation."""
    import torch

    net = qe.net
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    best, best_state = qi_valid_auc(qe, valid, valid_entities), copy.deepcopy(net.state_dict())
    log(f"fine-tuning: validation AUC before {best:.4f}")
    for epoch in range(epochs):
        net.train()
        total, t0 = 0.0, time.time()
        for batch in shuffled_batches(pairs, batch_size, rng):
            sat, ok = qi_forward(qe, [normalize(p.query) for p in batch],
                                 [entities[p.title] for p in batch])
            y = torch.tensor([p.label for p in batch], dtype=torch.float32)
            loss = _bce(sat, (y >= 1).float()) + _bce(sat * ok, (y == 2).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        net.eval()
        v = qi_valid_auc(qe, valid, valid_entities)
        log(f"fine-tuning epoch {epoch + 1}: loss {total / len(pairs):.4f}  validation AUC "
            f"{v:.4f} ({time.time() - t0:.0f} s)")
        if v > best:
            best, best_state = v, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    net.eval()


QI_BATCH = 256  # pairs per cross-encoder batch when scoring (qi_scores, qi_judgements)


def qi_scores(qe: QEModel, pairs: Sequence[Pair], lists: Sequence[Sequence[Entity]],
              family: str = "product", gamma: float = 1.0,
              brand_gamma: float | None = None, judged: Sequence | None = None) -> np.ndarray:
    """sat · (1 + ok) per pair; `judged`: qi_judgements of these pairs, so that a search over
    the logic settings runs the cross-encoder once, not once per setting."""
    import torch

    out = []
    with torch.inference_mode():
        for n, a in enumerate(range(0, len(pairs), QI_BATCH)):
            sat, ok = qi_forward(qe, [normalize(p.query) for p in pairs[a:a + QI_BATCH]],
                                 lists[a:a + QI_BATCH], family, gamma, brand_gamma,
                                 None if judged is None else judged[n])
            out.append((sat * (1 + ok)).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def qi_judgements(qe: QEModel, pairs: Sequence[Pair], lists: Sequence[Sequence[Entity]]
                  ) -> list:
    """The cross-encoder's (s, c) of each batch of qi_scores: they depend on the pairs and the
    entities, not on the logic (family, γ, brand γ), so one set serves every setting tried."""
    import torch

    from ebrm.table import EntityTable

    out = []
    with torch.inference_mode():
        for a in range(0, len(pairs), QI_BATCH):
            uniq = dict.fromkeys((normalize(p.query), k) for p, ents in zip(
                pairs[a:a + QI_BATCH], lists[a:a + QI_BATCH], strict=True)
                for k in EntityTable([ents]).keys)  # in qi_forward's order
            out.append(_qe_probs(qe, list(uniq)))
    return out


def mean_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean of AUC(label ≥ 1) and AUC(label = 2): what every validation choice here maximises."""
    return (auc(scores, labels >= 1) + auc(scores, labels == 2)) / 2


def qi_valid_auc(qe: QEModel, valid: Sequence[Pair], entities_of) -> float:
    s = qi_scores(qe, valid, entities_of([p.title for p in valid]))
    return mean_auc(s, np.array([p.label for p in valid]))


def default_split(text: str) -> str:
    """"train", "valid" or "test": the query-disjoint split shared with DeepBoW training."""
    b = split_of(text)
    return next(name for name, r in SPLITS.items() if b in r)


def train_from_titles(gold: Sequence[tuple[str, list[Entity], bool]], corpus: Sequence[str],
                      lexicon: Lexicon, cfg: EbrmConfig,
                      split: Callable[[str], str] = default_split, tagger=None,
                      log: Log = print) -> EBRM:
    """The three stages over tagged titles (text, gold entities, partially annotated?), then
    the logic chosen on the validation pairs. `split(text)` puts titles (for the tagger) and
    queries (for QE and QI) in train or valid. `tagger`: an already trained Tagger to keep
    (stage 1 is then skipped)."""
    import torch

    seed = cfg.run.seed
    torch.manual_seed(seed)
    random.seed(seed)
    t_start = time.time()
    if tagger is None:
        vocab = char_vocab([*corpus, *(t for t, _, _ in gold)], ENTITY_TYPES,
                           cfg.tagger.min_char_count)
        log(f"{len(gold)} training titles, lexicon {len(lexicon.words)} words, "
            f"{len(vocab)} characters")
        tagger = _train_tagger_stage(gold, vocab, lexicon, cfg, split, log)
    tagged = [TaggedTitle(t, [(e.type, e.text) for e in ents]) for t, ents, _ in gold]
    qe, n_qe = _pretrain_stage(tagged, tagger.vocab, cfg, split, log)
    pairs = ecommerce_pairs(tagged, seed=seed)
    train_pairs = [p for p in pairs if split(p.query) == "train"]
    valid_pairs = [p for p in pairs if split(p.query) == "valid"]
    model = EBRM(tagger, qe, {"family": "product",
                              "product_candidates": cfg.logic.product_candidates})
    finetune(qe, train_pairs, {t: ents for t, ents, _ in gold}, valid_pairs, model.entities,
             cfg.finetune.epochs, lr=cfg.finetune.lr, batch_size=cfg.finetune.batch_size,
             seed=seed, log=log)
    from ebrm.calibrate import choose_logic

    model.manifest.update({
        "tagger": tagger_shape(tagger, cfg), "qe": cfg.qe.shape(), "config": cfg.to_dict(),
        "training": {"seconds": round(time.time() - t_start), "seed": seed,
                     "tagger_epochs": cfg.tagger.epochs, "qe_epochs": cfg.qe.pretrain_epochs,
                     "ft_epochs": cfg.finetune.epochs, "qe_pairs": n_qe,
                     "qi_pairs": len(train_pairs), "titles": len(gold)}})
    # family, candidate exponent and thresholds on validation, with the tagger's entities
    chosen = choose_logic(model, valid_pairs, cfg.logic, log)
    model.manifest["training"]["valid_auc"] = chosen.pop("calibration_auc")
    model.manifest.update(chosen)
    return model


def tagger_shape(tagger, cfg: EbrmConfig) -> dict:
    """The tagger's network shape, as its manifest entry (what loading rebuilds)."""
    return {"n_features": tagger.n_features, "word_features": tagger.word_features,
            "hidden": cfg.tagger.hidden, "char_dim": cfg.tagger.char_dim,
            "bigram_dim": cfg.tagger.bigram_dim}


def _train_tagger_stage(gold, vocab, lexicon: Lexicon, cfg: EbrmConfig,
                        split: Callable[[str], str], log: Log):
    """Stage 1: the tagger on the titles of the train split, its epoch chosen on the others."""
    held = [g for g in gold if split(g[0]) == "valid"]
    examples = [(t, tags_from_spans(len(t), [(e.type, e.start, e.end) for e in ents]), partial)
                for t, ents, partial in gold if split(t) != "valid"]
    tc = cfg.tagger
    return train_tagger(examples, vocab, lexicon, epochs=tc.epochs, batch_size=tc.batch_size,
                        lr=tc.lr, seed=cfg.run.seed,
                        valid=[(t, e) for t, e, partial in held if not partial],
                        word_features=tc.word_features,
                        shape={"hidden": tc.hidden, "char_dim": tc.char_dim,
                               "bigram_dim": tc.bigram_dim}, log=log)


def _pretrain_stage(tagged: list[TaggedTitle], vocab, cfg: EbrmConfig,
                    split: Callable[[str], str], log: Log) -> tuple[QEModel, int]:
    """Stage 2: QE pretraining on pairs from gold tags (queries of the train split only)."""
    q = cfg.qe
    examples = [e for e in qe_examples(tagged, seed=cfg.run.seed, n_each=q.pairs_per_query,
                                       min_titles=q.min_titles) if split(e.query) == "train"]
    log(f"{len(examples)} QE pretraining pairs")
    qe = QEModel(build_net(len(vocab), **q.shape()), vocab)
    pretrain_qe(qe, examples, q.pretrain_epochs, lr=q.pretrain_lr, batch_size=q.batch_size,
                seed=cfg.run.seed, log=log)
    return qe, len(examples)


def train_ebrm(out: str | Path, cfg: EbrmConfig, data_dir: Path | None = None,
               tagger_from: str | Path | None = None, log: Log = print) -> EBRM:
    """The shipped recipe over the shared data; saves to `out` and returns the loaded model."""
    from ebrm.calibrate import apply_logic, calibration_pairs, choose_logic

    t_start = time.time()
    d = data_dir or shared_data_dir()
    gold = gold_titles(NER_TRAIN, d)
    corpus = default_corpus(d)  # the training texts; the user words are DeepBoW's
    tagger = load_tagger(tagger_from) if tagger_from else None
    lexicon = tagger.lexicon if tagger is not None else lexicon_for(corpus, d)
    model = train_from_titles(gold, corpus, lexicon, cfg, tagger=tagger, log=log)
    if tagger_from:
        model.manifest["training"]["tagger_from"] = str(tagger_from)
    # again on pairs over titles the tagger never saw too, as held-out titles will be
    apply_logic(model, choose_logic(model, calibration_pairs(d, cfg.run.seed), cfg.logic, log))
    model.manifest["training"]["seconds"] = round(time.time() - t_start)
    model.save(out)
    log(f"saved {out} in {time.time() - t_start:.0f} s")
    return EBRM.load(out, cache=False)


def train_on_pairs(init: str | Path, train_pairs: Sequence[Pair],
                   valid_pairs: Sequence[Pair] | None, cfg: EbrmConfig, out: str | Path,
                   deepbow_model=None, log: Log = print) -> EBRM:
    """Fine-tune an EBRM model's cross-encoder on a user's own labelled query–title pairs
    through the soft logic (its tagger and logic kept; titles' entities from its tagger), the
    best epoch on `valid_pairs` (default: a query-disjoint 15% of the pairs); then the
    thresholds, and the hybrid's β against `deepbow_model`, fitted on the validation pairs."""
    import torch

    from deepbow.metrics import best_thresholds
    from ebrm.calibrate import calibrate_hybrid

    train_pairs, valid_pairs = finetune_split(train_pairs, valid_pairs)
    torch.manual_seed(cfg.run.seed)
    model = EBRM.load(init, cache=False)
    ents = dict(zip((ts := sorted({p.title for p in train_pairs})), model.entities(ts),
                    strict=True))
    ft = cfg.finetune
    finetune(model.qe, train_pairs, ents, valid_pairs, model.entities, ft.epochs,
             lr=ft.lr, batch_size=ft.batch_size, seed=cfg.run.seed, log=log)
    model.cache.clear()  # judgements of the weights before
    y = np.array([p.label for p in valid_pairs])
    scores = model.score_pairs([(p.query, p.title) for p in valid_pairs])
    model.manifest["thresholds"] = [float(x) for x in best_thresholds(scores, y)]
    model.manifest["training"] = {**model.manifest.get("training", {}), "init": str(init),
                                  "init_model_id": model.model_id,
                                  "pairs": len(train_pairs), "valid_pairs": len(valid_pairs),
                                  "finetune": asdict(ft)}
    model.save(out)
    if deepbow_model is not None and "hybrid" in model.manifest:
        calibrate_hybrid(model, deepbow_model, out, log=log, pairs=valid_pairs)
    log(f"saved {out} (model id {model.model_id})")
    return EBRM.load(out, cache=False)
