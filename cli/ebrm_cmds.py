"""EBRM commands: entities, and the `ebrm` group (training, calibration, the tagger's figures,
the QE cache)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cli.common import (
    Progress,
    data_option,
    ebrm_option,
    emit_json,
    finetune_pairs,
    handle_errors,
    json_option,
    log_line,
    model_option,
    valid_option,
)


@click.command()
@click.argument("titles", nargs=-1, required=True)
@ebrm_option
@click.option("--candidates", is_flag=True,
              help="Also list the untagged product and brand candidates EBRM weighs.")
@json_option
@handle_errors
def entities(titles, ebrm_path, candidates, as_json):
    """Tag each title's entities (product word, brand, model, misc) with the EBRM tagger, and
    the untagged product candidates EBRM also weighs (with the tagger's confidence)."""
    import deepbow

    model = deepbow.load_ebrm(ebrm_path, cache=None)
    for title, ents in zip(titles, model.entities(list(titles)), strict=True):
        ents = [e for e in ents if candidates or not e.candidate]
        if as_json:
            emit_json({"title": title, "entities": [e.to_json() for e in ents]})
            continue
        click.echo(title)
        if not ents:
            click.echo("  (no entities)")
        for e in ents:
            cand = f"  (untagged {e.type} candidate, confidence {e.conf:.2f})" if e.candidate \
                else ""
            click.echo(f"  {e.type:<8} {e.text:<20} [{e.start}:{e.end}]{cand}")


@click.group()
def ebrm() -> None:
    """The entity-based relevance model: training, tagger evaluation and the QE cache."""


@ebrm.command("train")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="EBRM model directory to write.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True,
                                                         dir_okay=False), default=None,
              help="The recipe (TOML; default: the shipped one, ebrm/configs/default.toml).")
@data_option
@click.option("--hybrid-with", "deepbow_path", type=click.Path(path_type=Path), default=None,
              help="DeepBoW model the hybrid is calibrated against (default: the shipped one).")
@click.option("--tagger-from", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Keep the tagger of this EBRM directory instead of training one.")
@click.option("--init", "init_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="With --pairs: the EBRM model to fine-tune.")
@click.option("--pairs", "pairs_path", type=click.Path(path_type=Path, exists=True,
                                                       dir_okay=False), default=None,
              help="Fine-tune on these labelled pairs (0/1/2 or E/S/C/I) instead of training "
                   "from the shared data; needs --init.")
@valid_option
@handle_errors
def ebrm_train(out_dir, config_path, data_dir, deepbow_path, tagger_from, init_dir, pairs_path,
               valid_path):
    """Train the tagger, pretrain the QE cross-encoder, fine-tune through the soft logic, then
    calibrate the hybrid with DeepBoW (see the README for the shipped recipe); or fine-tune a
    model (--init) on your own labelled pairs (--pairs)."""
    import deepbow
    from ebrm.calibrate import calibrate_hybrid
    from ebrm.config import EbrmConfig, default_config_path
    from ebrm.train import train_ebrm, train_on_pairs

    cfg = EbrmConfig.from_toml(config_path or default_config_path())
    if pairs_path is not None:
        pairs, valid = finetune_pairs(pairs_path, valid_path, init_dir)
        train_on_pairs(init_dir, pairs, valid, cfg, out_dir, deepbow.load(deepbow_path),
                       log=log_line)
        return
    model = train_ebrm(out_dir, cfg, data_dir, tagger_from=tagger_from, log=log_line)
    calibrate_hybrid(model, deepbow.load(deepbow_path), out_dir, data_dir, log=log_line)


@ebrm.command("calibrate")
@click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="EBRM model directory to recalibrate in place.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True,
                                                         dir_okay=False), default=None,
              help="A recipe whose [logic] to use (default: the one stored in the model).")
@data_option
@model_option
@handle_errors
def ebrm_calibrate(ebrm_path, config_path, data_dir, model_path):
    """Choose the logic and 0/1/2 thresholds again and refit the hybrid against the DeepBoW
    model (--model), on validation pairs (the last steps of `deepbow ebrm train`)."""
    import deepbow
    from ebrm.calibrate import recalibrate
    from ebrm.config import EbrmConfig

    cfg = EbrmConfig.from_toml(config_path) if config_path else None
    recalibrate(ebrm_path, deepbow.load(model_path), data_dir, log=log_line, cfg=cfg)


@ebrm.command("eval-tagger")
@ebrm_option
@data_option
@json_option
@handle_errors
def ebrm_eval_tagger(ebrm_path, data_dir, as_json):
    """Entity precision / recall / F1 on the NER dev sets: the tagger beside the gazetteer-only
    longest-match baseline (full gazetteers), per type and over all types."""
    from ebrm.calibrate import tagger_figures

    res = tagger_figures(ebrm_path, data_dir)
    if as_json:
        emit_json(res)
        return
    for dev, by_model in res.items():
        click.echo(f"[{dev}]")
        click.echo(f"  {'tagger':<12}{'type':<9}{'P':>7}{'R':>7}{'F1':>7}")
        for name, by_type in by_model.items():
            for typ, (p, r, f) in by_type.items():
                click.echo(f"  {name:<12}{typ:<9}{100 * p:7.2f}{100 * r:7.2f}{100 * f:7.2f}")


@ebrm.group("cache")
def ebrm_cache() -> None:
    """The QE cache: cross-encoder judgements per (normalised query, entity), on disk."""


def cache_option(fn):
    fn = click.option("--cache", "cache_path", type=click.Path(path_type=Path, dir_okay=False),
                      default=None, help="SQLite cache file (default: the model's file under "
                                         "$DEEPBOW_CACHE or ~/.cache/deepbow).")(fn)
    return ebrm_option(fn)


def _open(ebrm_path, cache_path):
    import deepbow

    return deepbow.load_ebrm(ebrm_path, cache=cache_path or True)


@ebrm_cache.command("stats")
@cache_option
@json_option
@handle_errors
def ebrm_cache_stats(ebrm_path, cache_path, as_json):
    """Entries, distinct queries, bytes on disk."""
    st = _open(ebrm_path, cache_path).cache.stats()
    if as_json:
        emit_json(st)
        return
    for k in ("path", "model_id", "entries", "queries", "bytes"):
        click.echo(f"{k:<9} {st[k]}")


@ebrm_cache.command("warm")
@click.option("--queries", "queries_path", type=click.Path(path_type=Path, exists=True,
                                                           dir_okay=False), required=True,
              help="Queries, one a line (or qid<TAB>query).")
@click.option("--titles", "titles_path", type=click.Path(path_type=Path, exists=True,
                                                         dir_okay=False), required=True,
              help="Catalogue JSONL {id, title, ...} or TSV id<TAB>title.")
@cache_option
@handle_errors
def ebrm_cache_warm(queries_path, titles_path, ebrm_path, cache_path):
    """Judge every (query, distinct entity of the titles) pair ahead of time."""
    from deepbow.readers import read_catalogue, read_queries

    model = _open(ebrm_path, cache_path)
    items = read_catalogue(titles_path)
    queries = [q for _, q in read_queries(queries_path)]
    t0 = time.perf_counter()
    table = model.table([it["title"] for it in items])
    t1 = time.perf_counter()
    with Progress(len(queries), "warming", enabled=len(queries) >= 20) as bar:
        new = model.warm(queries, table, progress=bar)
    t2 = time.perf_counter()
    click.echo(f"tagged {len(items)} titles ({len(items) / max(t1 - t0, 1e-9):,.0f}/s), "
               f"{len(table.keys)} distinct entities; {len(queries)} queries: {new} new QE "
               f"judgements ({new / max(t2 - t1, 1e-9):,.0f} entities/s), hit rate "
               f"{model.cache.stats()['hit_rate']:.1%}", err=True)


@ebrm_cache.command("clear")
@cache_option
@handle_errors
def ebrm_cache_clear(ebrm_path, cache_path):
    """Delete every cached judgement of this cache file (a damaged cache file is replaced by
    a new, empty one)."""
    import deepbow
    from ebrm.cache import QECache, cache_file

    model_id = deepbow.load_ebrm(ebrm_path, cache=None).model_id
    path = cache_path or cache_file(model_id)
    n = QECache.reset(path, model_id)
    click.echo(f"cleared {n} entries from {path}", err=True)
