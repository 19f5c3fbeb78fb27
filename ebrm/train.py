"""Training the shipped EBRM model from the shared data, in three stages on this CPU:

1. the entity tagger on the Taobao NER *train* sets (a hash-chosen 5% of them picks the epoch);
2. QE pretraining: the cross-encoder on QE pairs generated from the gold tags (ebrm/qedata.py);
3. end-to-end fine-tuning on query–item labels (the e-commerce pairs of deepbow/datasets.py)
   through the soft logic: P(label ≥ 1) = sat, P(label = 2) = sat · ok, binary cross-entropy on
   both, gradients flowing through the t-norms into the cross-encoder.

The t-norm family and the 0/1/2 thresholds are chosen on the validation split of the training
titles' queries. The NER dev sets are never read here: they are the held-out evaluation.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deepbow.datasets import (
    NER_TRAIN,
    SPLITS,
    Pair,
    TaggedTitle,
    ecommerce_pairs,
    read_ner_raw,
    shared_data_dir,
    span_positions,
    split_of,
)
from deepbow.metrics import auc, best_thresholds
from deepbow.text import normalize
from ebrm.charvocab import CharVocab
from ebrm.lexicon import Entity, Lexicon
from ebrm.model import EBRM, load_tagger
from ebrm.qe import QEModel, build_net
from ebrm.qedata import QEExample, qe_examples
from ebrm.soft_logic import FAMILIES, soft_and, soft_or
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
    from deepbow.datasets import texts_containing

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
               family: str = "product", gamma: float = 1.0, brand_gamma: float | None = None):
    """Differentiable (sat, ok) for query–item pairs: one cross-encoder call per distinct
    (query, entity) of the batch, then the soft logic."""
    import torch

    from ebrm.model import EntityTable

    uniq: dict[tuple[str, tuple[str, str]], int] = {}
    prod_rows, all_rows, confs, every_w = [], [], [], []
    for q, ents in zip(queries, lists, strict=True):
        t = EntityTable([ents], gamma, brand_gamma)  # the same rows and weights as at inference
        ids = [uniq.setdefault((q, k), len(uniq)) for k in t.keys]
        all_rows.append([ids[j] for j in t.every[0] if j < len(ids)])
        prod_rows.append([ids[j] for j in t.prod[0] if j < len(ids)])
        confs.append(t.conf[0, :len(prod_rows[-1])].tolist())
        every_w.append(t.every_w[0, :len(all_rows[-1])].tolist())
    if uniq:
        probs = torch.sigmoid(qe.logits([q for q, _ in uniq], [k for _, k in uniq]))
    else:
        probs = torch.zeros((0, 2))
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


def finetune(qe: QEModel, pairs: Sequence[Pair], entities: dict[str, list[Entity]],
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


def qi_scores(qe: QEModel, pairs: Sequence[Pair], lists: Sequence[Sequence[Entity]],
              family: str = "product", gamma: float = 1.0,
              brand_gamma: float | None = None) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for a in range(0, len(pairs), 256):
            sat, ok = qi_forward(qe, [normalize(p.query) for p in pairs[a:a + 256]],
                                 lists[a:a + 256], family, gamma, brand_gamma)
            out.append((sat * (1 + ok)).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


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
                      lexicon: Lexicon, split: Callable[[str], str] = default_split,
                      seed: int = 0, tagger_epochs: int = 6, qe_epochs: int = 3,
                      ft_epochs: int = 2, qe_batch: int = 256, tagger=None,
                      word_features: bool = True, product_candidates: bool = True,
                      log: Log = print) -> EBRM:
    """The three stages over tagged titles (text, gold entities, partially annotated?).
    `split(text)` puts titles (for the tagger) and queries (for QE and QI) in train or valid.
    `tagger`: an already trained Tagger to keep (stage 1 is then skipped)."""
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    t_start = time.time()
    vocab = tagger.vocab if tagger is not None else CharVocab.build(
        [*corpus, *(t for t, _, _ in gold)], ENTITY_TYPES)
    log(f"{len(gold)} training titles, lexicon {len(lexicon.words)} words, "
        f"{len(vocab)} characters")

    # 1. tagger
    held = [g for g in gold if split(g[0]) == "valid"]
    examples = [(t, tags_from_spans(len(t), [(e.type, e.start, e.end) for e in ents]), partial)
                for t, ents, partial in gold if split(t) != "valid"]
    if tagger is None:
        tagger = train_tagger(examples, vocab, lexicon, epochs=tagger_epochs, seed=seed,
                              valid=[(t, e) for t, e, partial in held if not partial],
                              word_features=word_features, log=log)

    # 2. QE pretraining on pairs from gold tags (queries of the train split only)
    tagged = [TaggedTitle(t, [(e.type, e.text) for e in ents]) for t, ents, _ in gold]
    qe_ex = [e for e in qe_examples(tagged, seed=seed) if split(e.query) == "train"]
    log(f"{len(qe_ex)} QE pretraining pairs")
    qe = QEModel(build_net(len(vocab)), vocab)
    pretrain_qe(qe, qe_ex, qe_epochs, lr=1e-3, batch_size=qe_batch, seed=seed, log=log)

    # 3. end-to-end fine-tuning on QI labels
    pairs = ecommerce_pairs(tagged, seed=seed)
    train_pairs = [p for p in pairs if split(p.query) == "train"]
    valid_pairs = [p for p in pairs if split(p.query) == "valid"]
    gold_of = {t: ents for t, ents, _ in gold}
    model = EBRM(tagger, qe, {"family": "product", "product_candidates": product_candidates})
    finetune(qe, train_pairs, gold_of, valid_pairs, model.entities, ft_epochs, lr=3e-4,
             batch_size=max(16, qe_batch // 4), seed=seed, log=log)

    # family, candidate exponent and thresholds on validation, with the tagger's entities
    chosen = choose_logic(model, valid_pairs, log)
    manifest = {"family": chosen["family"], "thresholds": chosen["thresholds"],
                "candidate_gamma": chosen["candidate_gamma"],
                "brand_candidate_gamma": chosen["brand_candidate_gamma"],
                "query_brand_presence": chosen["query_brand_presence"],
                "query_brand_fallback": chosen["query_brand_fallback"],
                "product_backoff": chosen["product_backoff"],
                "product_candidates": product_candidates,
                "tagger": {"n_features": tagger.n_features,
                           "word_features": tagger.word_features}, "qe": {},
                "training": {"seconds": round(time.time() - t_start), "seed": seed,
                             "tagger_epochs": tagger_epochs, "qe_epochs": qe_epochs,
                             "ft_epochs": ft_epochs, "qe_pairs": len(qe_ex),
                             "qi_pairs": len(train_pairs), "titles": len(gold),
                             "valid_auc": chosen["calibration_auc"]}}
    return EBRM(tagger, qe, manifest)


GAMMAS = (0.0, 0.5, 1.0, 2.0)
BRAND_GAMMAS = (None, 0.5, 1.0, 2.0)
# (query_brand_presence, query_brand_fallback): off; the title's brand entities; the title's text
PRESENCE = ((False, False), ("entities", False), ("entities", True), ("text", False),
            ("text", True))
BACKOFFS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)  # ε of the lexical back-off in sat


def choose_logic(model: EBRM, pairs: Sequence[Pair], log: Log = print) -> dict:
    """The t-norm family and candidate exponent with the best mean of AUC(≥1) and AUC(=2) on
    `pairs`, and F1-optimal thresholds for them: manifest entries."""
    lists = model.entities([p.title for p in pairs])
    y = np.array([p.label for p in pairs])
    figures = {}
    for fam in FAMILIES:
        for g in GAMMAS:
            figures[f"{fam} γ={g}"] = (mean_auc(qi_scores(model.qe, pairs, lists, fam, g), y),
                                       fam, g)
    best = max(figures, key=lambda k: figures[k][0])
    _, family, gamma = figures[best]
    by_brand = {}
    for bg in BRAND_GAMMAS:  # then the untagged brand candidates, with that family and γ
        by_brand[bg] = mean_auc(qi_scores(model.qe, pairs, lists, family, gamma, bg), y)
        figures[f"{best} brand γ={bg}"] = (by_brand[bg], family, gamma)
    brand_gamma = max(BRAND_GAMMAS, key=lambda g: (by_brand[g], g is None))
    # then whether and how a brand the query names must be found in the title, and the
    # lexical back-off, scored by trial models sharing this one's tagger, cross-encoder, cache
    # and tagged titles
    def trial_scores(**logic) -> np.ndarray:
        trial = EBRM(model.tagger, model.qe, {
            **model.manifest, "family": family, "candidate_gamma": gamma,
            "brand_candidate_gamma": brand_gamma, **logic}, model.cache)
        trial._titles = model._titles
        return trial.score_pairs([(p.query, p.title) for p in pairs])

    by_presence = {}
    for pres, fallback in PRESENCE:
        by_presence[pres, fallback] = mean_auc(trial_scores(
            query_brand_presence=pres, query_brand_fallback=fallback), y)
        figures[f"... query brand presence={pres} fallback={fallback}"] = (
            by_presence[pres, fallback], family, gamma)
    presence, fallback = max(PRESENCE, key=lambda o: by_presence[o])  # ties: the first
    by_backoff = {}
    for eps in BACKOFFS:
        s = trial_scores(query_brand_presence=presence, query_brand_fallback=fallback,
                         product_backoff=eps)
        by_backoff[eps] = (mean_auc(s, y), s)
        figures[f"... product back-off ε={eps}"] = (by_backoff[eps][0], family, gamma)
    backoff = max(BACKOFFS, key=lambda b: by_backoff[b][0])
    thresholds = [float(x) for x in best_thresholds(by_backoff[backoff][1], y)]
    log(f"validation mean AUC ({len(pairs)} pairs): "
        + ", ".join(f"{k} {v[0]:.4f}" for k, v in figures.items())
        + f" → {best}, brand γ={brand_gamma}, query brand presence {presence} (fallback "
        f"{fallback}), back-off ε={backoff}; thresholds {thresholds}")
    return {"family": family, "candidate_gamma": gamma, "brand_candidate_gamma": brand_gamma,
            "query_brand_presence": presence, "query_brand_fallback": fallback,
            "product_backoff": backoff, "thresholds": thresholds,
            "calibration_auc": {k: v[0] for k, v in figures.items()}}


def apply_logic(model: EBRM, chosen: dict) -> None:
    cal = chosen.pop("calibration_auc")
    model.manifest.update(chosen)
    model.manifest.setdefault("training", {})["calibration_auc"] = cal


def train_ebrm(out: str | Path, data_dir: Path | None = None, seed: int = 0,
               tagger_epochs: int = 10, qe_epochs: int = 3, ft_epochs: int = 2,
               tagger_from: str | Path | None = None, log: Log = print) -> EBRM:
    """The shipped recipe over the shared data; saves to `out` and returns the loaded model."""
    from deepbow.train import default_corpus_and_words

    t_start = time.time()
    d = data_dir or shared_data_dir()
    gold = gold_titles(NER_TRAIN, d)
    corpus, _ = default_corpus_and_words(d)
    tagger = load_tagger(tagger_from) if tagger_from else None
    lexicon = tagger.lexicon if tagger is not None else lexicon_for(corpus, d)
    model = train_from_titles(gold, corpus, lexicon, seed=seed, tagger_epochs=tagger_epochs,
                              qe_epochs=qe_epochs, ft_epochs=ft_epochs, tagger=tagger, log=log)
    if tagger_from:
        model.manifest["training"]["tagger_from"] = str(tagger_from)
    # again on pairs over titles the tagger never saw too, as held-out titles will be
    apply_logic(model, choose_logic(model, calibration_pairs(d, seed), log))
    model.manifest["training"]["seconds"] = round(time.time() - t_start)
    model.save(out)
    log(f"saved {out} in {time.time() - t_start:.0f} s")
    return EBRM.load(out, cache=False)


def validation_pairs(data_dir: Path | None = None, seed: int = 0) -> list[Pair]:
    """The e-commerce pairs of the training titles whose queries fall in the valid split."""
    d = data_dir or shared_data_dir()
    tagged = [TaggedTitle(t, [(e.type, e.text) for e in ents])
              for t, ents, _ in gold_titles(NER_TRAIN, d)]
    return [p for p in ecommerce_pairs(tagged, seed=seed) if split_of(p.query) in SPLITS["valid"]]


def recalibrate(path: str | Path, deepbow_model, data_dir: Path | None = None,
                log: Log = print) -> EBRM:
    """Choose the t-norm family and thresholds again and refit the hybrid, saving in place."""
    model = EBRM.load(path, cache=False)
    apply_logic(model, choose_logic(model, calibration_pairs(data_dir), log))
    calibrate_hybrid(model, deepbow_model, path, data_dir, log)
    return model


def calibration_pairs(data_dir: Path | None = None, seed: int = 0) -> list[Pair]:
    """Validation pairs (queries of the valid split) plus the pairs built over the titles the
    tagger held out (titles of the valid split): new queries and new titles, as at inference."""
    d = data_dir or shared_data_dir()
    held = [TaggedTitle(t, [(e.type, e.text) for e in ents])
            for t, ents, _ in gold_titles(NER_TRAIN, d) if default_split(t) == "valid"]
    out = validation_pairs(d, seed)
    seen = {(p.query, p.title) for p in out}
    return out + [p for p in ecommerce_pairs(held, seed=seed) if (p.query, p.title) not in seen]


def calibrate_hybrid(model: EBRM, deepbow_model, out: str | Path, data_dir: Path | None = None,
                     log: Log = print) -> dict:
    """Fit the hybrid's β and thresholds on the calibration pairs; store them in the EBRM model."""
    from ebrm.hybrid import fit_hybrid

    valid = calibration_pairs(data_dir)
    pairs = [(p.query, p.title) for p in valid]
    d, e = deepbow_model.score_pairs(pairs), model.score_pairs(pairs)
    cfg = fit_hybrid(valid, d, e, deepbow_model.label(d), model.label(e))
    cfg["deepbow_model_id"] = deepbow_model.model_id
    gain = cfg["valid_gain_by_beta"][str(cfg["beta"])]
    log(f"hybrid: β {cfg['beta']} (validation: smallest gain over the better part "
        f"{100 * gain['min']:+.2f}, mean {100 * gain['mean']:+.2f} points), thresholds "
        f"{cfg['thresholds']}")
    model.save(out, extra={"hybrid": cfg})
    return cfg


def tagger_figures(ebrm_path: str | Path | None = None, data_dir: Path | None = None) -> dict:
    """{dev file: {"tagger"|"gazetteer": {type: (P, R, F1)}}} on the NER dev sets. The
    brand/product set is scored on products and brands only (all it annotates); the gazetteer
    baseline uses the full gazetteer files and knows products and brands only."""
    import deepbow
    from deepbow.datasets import NER_DEV
    from ebrm.charvocab import norm_chars
    from ebrm.tagger import entity_prf

    d = data_dir or shared_data_dir()
    tagger = load_tagger(ebrm_path or deepbow.default_ebrm_path())
    gaz = Lexicon.from_gazetteers(d / "gazetteers")
    out = {}
    for f in NER_DEV:
        gold = gold_titles([f], d)
        types = ("product", "brand") if f.endswith(".bieos") else ENTITY_TYPES
        texts = [t for t, _, _ in gold]

        def keep(lists, types=types):
            return [[e for e in ents if e.type in types] for ents in lists]

        g = keep([ents for _, ents, _ in gold])
        pred = tagger.tag(texts)  # tagged entities only, no candidates
        res = {"tagger": entity_prf(g, keep(pred), types)}
        gp = [[e for e in ents if e.type in ("product", "brand")] for ents in g]
        res["gazetteer"] = entity_prf(gp, [gaz.longest_match(norm_chars(t)) for t in texts],
                                      ("product", "brand"))
        res["tagger-pb"] = entity_prf(gp, keep(pred, ("product", "brand")),
                                      ("product", "brand"))
        out[Path(f).name] = res
    return out
