"""Index commands: build and maintain an inverted index of a catalogue, and search it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from cli.common import (
    Progress,
    catalogue_file,
    emit_json,
    handle_errors,
    index_dir,
    json_option,
    k_option,
    model_option,
    open_index,
    parse_filters,
)


@click.group("index")
def index_group() -> None:
    """Build and maintain an inverted index of a product catalogue."""


@index_group.command("build")
@catalogue_file
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True)
@click.option("--overwrite", is_flag=True,
              help="Replace an existing index at --out (its edit journal is kept); a folder "
                   "that is not an index is never replaced.")
@model_option
@handle_errors
def index_build(catalogue, out_dir, overwrite, model_path):
    """Encode CATALOGUE (JSONL {id, title, ...} or TSV id<TAB>title) into an index."""
    import deepbow
    from deepbow.readers import read_catalogue
    from index.folder import check_replaceable

    check_replaceable(out_dir, overwrite)  # before minutes of encoding
    items = read_catalogue(catalogue)
    t0 = time.time()
    with Progress(len(items), "encoding titles") as bar:
        cat = deepbow.build_index(items, out_dir, deepbow.load(model_path), overwrite, bar)
    st = cat.stats()
    click.echo(f"indexed {st['docs']} items in {time.time() - t0:.1f}s "
               f"({st['postings']} postings, {st['bytes_on_disk'] / 1e6:.1f} MB) → {out_dir}",
               err=True)


def _add(index_dir: Path, catalogue: Path, model_path: Path | None, replace: bool) -> None:
    from deepbow.readers import read_catalogue

    items = read_catalogue(catalogue)
    n = open_index(index_dir, model_path).add(items, replace=replace)
    click.echo(f"{'updated' if replace else 'added'} {n} items", err=True)


@index_group.command("add")
@index_dir
@catalogue_file
@model_option
@handle_errors
def index_add(index_dir, catalogue, model_path):
    """Add the items of CATALOGUE (new ids only)."""
    _add(index_dir, catalogue, model_path, replace=False)


@index_group.command("update")
@index_dir
@catalogue_file
@model_option
@handle_errors
def index_update(index_dir, catalogue, model_path):
    """Replace (or add) the items of CATALOGUE by id."""
    _add(index_dir, catalogue, model_path, replace=True)


@index_group.command("delete")
@index_dir
@click.argument("ids", nargs=-1, required=True)
@model_option
@handle_errors
def index_delete(index_dir, ids, model_path):
    """Delete items by id."""
    n = open_index(index_dir, model_path).delete(ids)
    click.echo(f"deleted {n} items", err=True)


@index_group.command("compact")
@index_dir
@model_option
@handle_errors
def index_compact(index_dir, model_path):
    """Fold added segments and deletions into one segment."""
    cat = open_index(index_dir, model_path)
    cat.compact()
    click.echo(f"compacted: {cat.index.n_docs} items in one segment", err=True)


@index_group.command("stats")
@index_dir
@model_option
@json_option
@handle_errors
def index_stats(index_dir, model_path, as_json):
    """Documents, terms, postings, bytes, deletions."""
    st = open_index(index_dir, model_path).stats()
    if as_json:
        emit_json(st)
        return
    for k, v in st.items():
        click.echo(f"{k:<18} {v:.2f}" if isinstance(v, float) else f"{k:<18} {v}")


@index_group.command("verify")
@index_dir
@model_option
@handle_errors
def index_verify(index_dir, model_path):
    """Check format version, every file's checksum and the model match."""
    cat = open_index(index_dir, model_path, verify=True)
    click.echo(f"ok: {cat.index.n_docs} docs, {len(cat.index.segments)} segment(s), "
               f"model {cat.index.meta.get('model_id')}")


@click.command()
@index_dir
@click.argument("query", required=False)
@k_option(10)
@click.option("--filter", "filters", multiple=True,
              help="FIELD=VALUE[,VALUE...]; repeat to AND several fields.")
@click.option("--queries", "queries_path", type=click.Path(path_type=Path, exists=True,
                                                           dir_okay=False),
              help="Batch: a file of queries (one a line, or 'qid<TAB>query').")
@click.option("--run", "run_path", type=click.Path(path_type=Path, dir_okay=False),
              help="With --queries: write a run file (.jsonl for JSONL, else TREC).")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
              help="With --queries: walk the postings on this many threads.")
@model_option
@json_option
@handle_errors
def search(index_dir, query, k, filters, queries_path, run_path, threads, model_path, as_json):
    """Rank the catalogue in INDEX_DIR for QUERY (or for each line of --queries)."""
    cat = open_index(index_dir, model_path)
    flt = parse_filters(filters)
    if queries_path is None:
        if not query:
            raise click.UsageError("give a QUERY or --queries FILE")
        hits = cat.search(query, k, flt)
        if as_json:
            emit_json({"query": query, "hits": [h.to_json() for h in hits]})
            return
        if not hits:
            click.echo("no matching items")
        for rank, h in enumerate(hits, 1):
            words = ", ".join(f"{w} {c:.3f}" for w, c in h.matched)
            click.echo(f"{rank:>3}. {h.score:8.4f}  {h.id:<12} {h.title[:48]}  [{words}]")
        return
    _batch(cat, queries_path, k, flt, run_path, threads)


def _batch(cat, queries_path: Path, k: int, flt, run_path: Path | None, threads: int) -> None:
    """Search every query of a file; a TREC or JSONL run on stdout or into --run."""
    from deepbow.fileio import atomic_open
    from deepbow.readers import read_queries

    qs = read_queries(queries_path)
    with Progress(len(qs), "searching") as bar:
        results = cat.batch_search([q for _, q in qs], k, flt, progress=bar, threads=threads)
    trec = run_path is not None and run_path.suffix != ".jsonl"
    lines = (f"{qid} Q0 {h.id} {rank} {h.score:.6f} deepbow" if trec else
             json.dumps({"qid": qid, "query": q, "rank": rank, **h.to_json()},
                        ensure_ascii=False)
             for (qid, q), hits in zip(qs, results, strict=True)
             for rank, h in enumerate(hits, 1))
    if run_path is None:
        for line in lines:
            click.echo(line)
        return
    with atomic_open(run_path) as out:
        for line in lines:
            out.write(line + "\n")
    click.echo(f"{len(qs)} queries → {run_path}", err=True)
