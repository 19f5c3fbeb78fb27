"""Choosing EBRM's logic and the hybrid's weight on validation pairs (never the held-out files).

The t-norm family and the candidates' weight first, then the untagged brand candidates, then
whether a brand the query names must be present in the title, then the lexical back-off, each
by the mean of AUC(≥1) and AUC(=2), the earlier choices kept; then F1-optimal thresholds. The
hybrid's β is chosen so that the hybrid gains most over the better of its parts where it gains
least (ebrm/hybrid.py). Also the tagger's figures on the NER dev sets (`deepbow ebrm
eval-tagger`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deepbow.datasets import NER_TRAIN, SPLITS, TaggedTitle, ecommerce_pairs, split_of
from deepbow.locations import shared_data_dir
from deepbow.metrics import best_thresholds
from deepbow.readers import Pair
from ebrm.config import PRESENCE_OPTIONS, EbrmConfig, LogicParams
from ebrm.lexicon import Lexicon
from ebrm.model import EBRM
from ebrm.modeldir import load_tagger
from ebrm.train import default_split, gold_titles, mean_auc, qi_judgements, qi_scores

Log = Callable[[str], None]


def choose_logic(model: EBRM, pairs: Sequence[Pair], logic: LogicParams,
                 log: Log = print) -> dict:
    """Manifest entries of the logic with the best mean of AUC(≥1) and AUC(=2) on `pairs`,
    chosen one setting after the other, and F1-optimal thresholds for it."""
    model = model.with_logic(**logic.fixed())
    lists = model.entities([p.title for p in pairs])
    y = np.array([p.label for p in pairs])
    figures: dict[str, float] = {}
    judged = qi_judgements(model.qe, pairs, lists)  # the same for every setting below
    by = {(fam, g): mean_auc(qi_scores(model.qe, pairs, lists, fam, g, judged=judged), y)
          for fam in logic.families for g in logic.candidate_gammas}
    figures |= {f"{fam} γ={g}": v for (fam, g), v in by.items()}
    family, gamma = max(by, key=lambda k: by[k])
    by_brand = {bg: mean_auc(qi_scores(model.qe, pairs, lists, family, gamma, bg, judged), y)
                for bg in logic.brand_gamma_values()}
    figures |= {f"{family} γ={gamma} brand γ={bg}": v for bg, v in by_brand.items()}
    brand_gamma = max(by_brand, key=lambda g: (by_brand[g], g is None))
    # then the brand presence and the back-off, scored by trial models sharing this one's
    # tagger, cross-encoder, cache and tagged titles
    trial = model.with_logic(family=family, candidate_gamma=gamma,
                             brand_candidate_gamma=brand_gamma)
    qt = [(p.query, p.title) for p in pairs]
    by_presence = {}
    for name in logic.presence:
        pres, fallback = PRESENCE_OPTIONS[name]
        by_presence[name] = mean_auc(trial.with_logic(
            query_brand_presence=pres, query_brand_fallback=fallback).score_pairs(qt), y)
        figures[f"... query brand presence={pres} fallback={fallback}"] = by_presence[name]
    presence, fallback = PRESENCE_OPTIONS[max(logic.presence, key=lambda o: by_presence[o])]
    by_backoff = {}
    for eps in logic.backoffs:
        s = trial.with_logic(query_brand_presence=presence, query_brand_fallback=fallback,
                             product_backoff=eps).score_pairs(qt)
        by_backoff[eps] = (mean_auc(s, y), s)
        figures[f"... product back-off ε={eps}"] = by_backoff[eps][0]
    backoff = max(logic.backoffs, key=lambda b: by_backoff[b][0])
    thresholds = [float(x) for x in best_thresholds(by_backoff[backoff][1], y)]
    log(f"validation mean AUC ({len(pairs)} pairs): "
        + ", ".join(f"{k} {v:.4f}" for k, v in figures.items())
        + f" → {family} γ={gamma}, brand γ={brand_gamma}, query brand presence {presence} "
        f"(fallback {fallback}), back-off ε={backoff}; thresholds {thresholds}")
    return {"family": family, "candidate_gamma": gamma, "brand_candidate_gamma": brand_gamma,
            "query_brand_presence": presence, "query_brand_fallback": fallback,
            "product_backoff": backoff, "thresholds": thresholds, **logic.fixed(),
            "calibration_auc": figures}


def apply_logic(model: EBRM, chosen: dict) -> None:
    cal = chosen.pop("calibration_auc")
    model.manifest.update(chosen)
    model.manifest.setdefault("training", {})["calibration_auc"] = cal


def validation_pairs(data_dir: Path | None = None, seed: int = 0) -> list[Pair]:
    """The e-commerce pairs of the training titles whose queries fall in the valid split."""
    d = data_dir or shared_data_dir()
    tagged = [TaggedTitle(t, [(e.type, e.text) for e in ents])
              for t, ents, _ in gold_titles(NER_TRAIN, d)]
    return [p for p in ecommerce_pairs(tagged, seed=seed) if split_of(p.query) in SPLITS["valid"]]


def recalibrate(path: str | Path, deepbow_model, data_dir: Path | None = None,
                log: Log = print, cfg: EbrmConfig | None = None) -> EBRM:
    """Choose the logic and thresholds again and refit the hybrid, saving in place, with the
    logic of `cfg` (default: the model's own recipe, stored in its manifest; a new one given
    is stored in its place)."""
    model = EBRM.load(path, cache=False)
    if cfg is None:
        cfg = EbrmConfig.from_dict(model.manifest.get("config", {}))
    model.manifest["config"] = cfg.to_dict()
    apply_logic(model, choose_logic(model, calibration_pairs(data_dir), cfg.logic, log))
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
                     log: Log = print, pairs: Sequence[Pair] | None = None) -> dict:
    """Fit the hybrid's β and thresholds on `pairs` (default: the calibration pairs of the
    shared data); store them in the EBRM model saved at `out`."""
    from ebrm.hybrid import fit_hybrid

    valid = list(pairs) if pairs is not None else calibration_pairs(data_dir)
    pairs = [(p.query, p.title) for p in valid]
    d, e = deepbow_model.score_pairs(pairs), model.score_pairs(pairs)
    betas = EbrmConfig.from_dict(model.manifest.get("config", {})).hybrid.betas
    cfg = fit_hybrid(valid, d, e, deepbow_model.label(d), model.label(e), betas)
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
    from deepbow.datasets import NER_DEV
    from deepbow.locations import default_ebrm_path
    from deepbow.text import normalize_chars
    from ebrm.tagger import ENTITY_TYPES, entity_prf

    d = data_dir or shared_data_dir()
    tagger = load_tagger(ebrm_path or default_ebrm_path())
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
        res["gazetteer"] = entity_prf(gp, [gaz.longest_match(normalize_chars(t)) for t in texts],
                                      ("product", "brand"))
        res["tagger-pb"] = entity_prf(gp, keep(pred, ("product", "brand")),
                                      ("product", "brand"))
        out[Path(f).name] = res
    return out
