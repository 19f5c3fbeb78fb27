"""Pair commands: encode, explain, score, eval; and the DeepBoW model's training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.common import (
    Progress,
    data_option,
    emit_explanation,
    emit_json,
    finetune_pairs,
    handle_errors,
    json_option,
    labelled_pairs,
    log_line,
    model_option,
    scorer_options,
    valid_option,
)
from cli.scale_cmds import backend_options, explain_item

pairs_option = click.option(
    "--pairs", "pairs_path", required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help='JSONL, one {"query", "title", ["label" or "esci"], ...} a line.')


def _edits(edits_path: Path | None):
    import deepbow

    return deepbow.read_edits(edits_path) if edits_path is not None else None


@click.command()
@click.argument("texts", nargs=-1, required=True)
@click.option("--top", type=click.IntRange(1), default=None,
              help="Show at most this many words per text.")
@click.option("--side", type=click.Choice(["title", "query"]), default="title", show_default=True,
              help="Encode as a product title (8-bit weights) or a query (12-bit).")
@model_option
@json_option
@handle_errors
def encode(texts, top, side, model_path, as_json):
    """Print each TEXT's sparse bag of words: word → weight, heaviest first.

    Words marked + come from synonym expansion (not in the text)."""
    import deepbow

    for text, vec in zip(texts, deepbow.load(model_path).encode(list(texts), side), strict=True):
        rows = vec.top(top)
        if as_json:
            emit_json({"text": text, "terms": [{"word": w, "weight": round(x, 6),
                                                "expanded": e} for w, x, e in rows]})
            continue
        click.echo(f"{text}  ({len(vec)} words)")
        for w, x, e in rows:
            click.echo(f"  {'+' if e else ' '} {w:<16} {x:.4f}")


@click.command()
@click.argument("query")
@click.argument("title", required=False)
@click.option("--item", "item_id", default=None,
              help="Instead of TITLE: an indexed item, read from --index DIR or its Milvus "
                   "copy (--backend milvus), as search scores it.")
@click.option("--index", "index_path", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="With --item: the index directory.")
@backend_options
@model_option
@scorer_options
@json_option
@handle_errors
def explain(query, title, item_id, index_path, backend, collection, uri, model_path, scorer,
            ebrm_path, edits_path, as_json):
    """Show QUERY–TITLE relevance: the sum of its matched words (deepbow), the entity-by-entity
    judgements and their soft logic (ebrm), or both parts (hybrid)."""
    import deepbow

    if (title is None) == (item_id is None):
        raise click.UsageError("give a TITLE or --item ID")
    if item_id is not None and scorer != "deepbow":
        raise click.UsageError("--item explains the index's DeepBoW score; for EBRM's view "
                               "use `weights show DIR ITEM QUERY --entities`")
    ex = explain_item(query, item_id, backend, index_path, uri, collection, edits_path,
                      model_path) if item_id is not None else deepbow.load_scorer(
        scorer, model_path, ebrm_path).explain(query, title, edits=_edits(edits_path))
    emit_explanation(ex, as_json)


@click.command()
@pairs_option
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              required=True, help='JSONL out, one {"score", "label"} a line, same order.')
@click.option("--batch-size", type=click.IntRange(1), default=4096, show_default=True,
              help="Pairs scored per chunk.")
@model_option
@scorer_options
@handle_errors
def score(pairs_path, out_path, batch_size, model_path, scorer, ebrm_path, edits_path):
    """Score query–title pairs; label 2 = exact match, 1 = partly relevant, 0 = irrelevant.

    The output is written to a temp file and renamed at the end: a bad line stops the run with
    its line number and leaves any earlier OUT untouched."""
    import deepbow
    from deepbow.fileio import atomic_open
    from deepbow.readers import read_pairs

    model = deepbow.load_scorer(scorer, model_path, ebrm_path)
    edits = _edits(edits_path)
    total = _count_lines(pairs_path) if sys.stderr.isatty() else None
    chunk: list = []

    def flush(out, bar):
        scores = model.score_pairs([(p.query, p.title) for p in chunk], edits=edits)
        for s, lab in zip(scores.tolist(), model.label(scores).tolist(), strict=True):
            out.write(json.dumps({"score": round(s, 6), "label": lab}) + "\n")
        bar(len(chunk))
        chunk.clear()

    with Progress(total, "scoring", enabled=bool(total and total >= 10_000)) as bar, \
            atomic_open(out_path) as out:
        for p in read_pairs(pairs_path):
            chunk.append(p)
            if len(chunk) >= batch_size:
                flush(out, bar)
        if chunk:
            flush(out, bar)
    click.echo(f"scored {bar.done} pairs → {out_path}", err=True)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


@click.command("eval")
@pairs_option
@click.option("--no-baseline", is_flag=True, help="Skip the BM25 baseline.")
@click.option("--failures", is_flag=True,
              help="Also list each query that ranks a hard negative at or above an exact "
                   "match (judged files: a complement at or above an exact match E, or a "
                   "title other than an E on top), with titles and scores.")
@model_option
@scorer_options
@json_option
@handle_errors
def eval_cmd(pairs_path, no_baseline, failures, model_path, scorer, ebrm_path, edits_path,
             as_json):
    """AUC (label≥1, label=2), nDCG@10 by query, macro-F1, accuracy, F1 of label 1 and
    AUC(1 vs 0), hard negatives, beside BM25. --scorer takes a comma list or "all"."""
    import deepbow
    from deepbow.evaluate import evaluate, to_text

    pairs = labelled_pairs(pairs_path)
    names = list(deepbow.SCORERS) if scorer == "all" else scorer.split(",")
    scorers = deepbow.load_scorers(names, model_path, ebrm_path)
    base = scorers.get("deepbow") or getattr(scorers.get("hybrid"), "deepbow", None) \
        or deepbow.load(model_path)
    res = evaluate(scorers, pairs, baseline=not no_baseline, segmenter=base.segmenter,
                   failures=failures, edits=_edits(edits_path))
    if as_json:
        emit_json(res)
        return
    click.echo(to_text(res))
    click.echo("(percent" + ("" if no_baseline else
                            "; BM25 labels use thresholds tuned on this file") + ")", err=True)


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True,
                                                         dir_okay=False), default=None,
              help="The recipe (TOML; default: deepbow/configs/default.toml, or finetune.toml "
                   "with --pairs).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Model directory to write.")
@click.option("--init", "init_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Start from this model (its vocabulary and weights): "
                                 "fine-tuning.")
@click.option("--pairs", "pairs_path", type=click.Path(path_type=Path, exists=True,
                                                       dir_okay=False), default=None,
              help="Train on these labelled pairs (0/1/2 or E/S/C/I) instead of the shared "
                   "data; needs --init.")
@valid_option
@data_option
@handle_errors
def train(config_path, out_dir, init_dir, pairs_path, valid_path, data_dir):
    """Train a DeepBoW model from the shared data (the shipped recipe, see the README), or
    fine-tune one (--init) on your own labelled query–title pairs (--pairs)."""
    from deepbow.config import TrainConfig, default_config_path
    from deepbow.train import train_default, train_on_pairs

    cfg = TrainConfig.from_toml(config_path or default_config_path(
        "finetune.toml" if pairs_path else "default.toml"))
    if pairs_path is None:
        train_default(cfg, out_dir, data_dir, log=log_line, init=init_dir)
        return
    pairs, valid = finetune_pairs(pairs_path, valid_path, init_dir)
    train_on_pairs(init_dir, pairs, valid, cfg.train, out_dir, log=log_line)


@click.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Model directory to recalibrate in place.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True,
                                                         dir_okay=False), default=None,
              help="Give the model this recipe's product-word priors ([priors]) first.")
@data_option
@handle_errors
def calibrate(model_path, config_path, data_dir):
    """Refit a model's weight scales, query normalisation, expansion on/off and label
    thresholds on the validation pairs (the last step of `deepbow train`), and save it in
    place; with --config, with that recipe's product-word priors."""
    import deepbow
    from deepbow.config import TrainConfig
    from deepbow.train import recalibrate

    model = deepbow.load(model_path)
    priors = TrainConfig.from_toml(config_path).priors if config_path is not None else None
    recalibrate(model, priors, data_dir, log=log_line)
    click.echo(f"saved {model_path} (model id {model.save(model_path)})", err=True)


@click.group()
def data() -> None:
    """Build the evaluation and training pair files from the shared data."""


@data.command("prepare")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True)
@data_option
@handle_errors
def data_prepare(out_dir, data_dir):
    """Write ecom_dev.jsonl (NER dev titles, never trained on), qbqtc_test.jsonl (query-disjoint
    held-out QBQTC) and the train/valid pairs the default recipe uses."""
    from deepbow.datasets import evaluation_files, write_pairs

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, pairs in evaluation_files(data_dir).items():
        write_pairs(pairs, out_dir / name)
        click.echo(f"{out_dir / name}: {len(pairs)} pairs")


@data.command("split")
@pairs_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True)
@click.option("--share", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.6, show_default=True, help="Share of each query kind's queries in tune.")
@handle_errors
def data_split(pairs_path, out_dir, share):
    """Split a judged file into query-disjoint tune.jsonl and check.jsonl (stratified by query
    kind, by a hash of the qid): choose and train on tune, measure on check."""
    from deepbow.datasets import split_judged, write_pairs
    from deepbow.readers import read_pairs

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in zip(("tune.jsonl", "check.jsonl"),
                          split_judged(list(read_pairs(pairs_path)), share), strict=True):
        write_pairs(part, out_dir / name)
        click.echo(f"{out_dir / name}: {len(part)} pairs, "
                   f"{len({p.qid or p.query for p in part})} queries")
