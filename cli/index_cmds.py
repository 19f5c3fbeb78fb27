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
from cli.scale_cmds import (
    backend_options,
    export_milvus,
    follow,
    link_state,
    load_milvus,
    model_dir,
    ray_config,
    ray_note,
    ray_options,
    searcher,
    sync_milvus,
)


@click.group("index")
def index_group() -> None:
    """Build and maintain an inverted index of a product catalogue."""


@index_group.command("build")
@click.argument("catalogue", nargs=-1, metavar="CATALOGUE...",
                type=click.Path(path_type=Path, exists=True))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True)
@click.option("--overwrite", is_flag=True,
              help="Replace an existing index at --out (its edit journal and Milvus copy are "
                   "kept; the copy is exported again); a folder that is not an index is never "
                   "replaced.")
@ray_options
@model_option
@handle_errors
def index_build(catalogue, out_dir, overwrite, ray_address, ray_actors, ray_cpus_per_actor,
                model_path):
    """Encode CATALOGUE (JSONL {id, title, ...} or TSV id<TAB>title; several files, Parquet
    files or directories of shards are one catalogue, in the order given) into an index."""
    import deepbow
    from index.folder import check_replaceable
    from index.shards import read_shards

    cfg = ray_config(ray_address, ray_actors, ray_cpus_per_actor, catalogue)
    if not catalogue:
        raise click.UsageError("give the CATALOGUE file(s) or directories to index")
    check_replaceable(out_dir, overwrite)  # before minutes of encoding
    model, t0, codes = deepbow.load(model_path), time.time(), None
    if cfg is None:
        items = read_shards(catalogue)
    else:
        from index.ray_encode import encode_shards

        ray_note(cfg)
        items, codes = encode_shards(catalogue, model, model_dir(model_path), cfg)
    with Progress(len(items) if codes is None else None, "encoding titles",
                  enabled=None if codes is None else False) as bar:
        cat = deepbow.build_index(items, out_dir, model, overwrite, bar, codes)
    st = cat.stats()
    click.echo(f"indexed {st['docs']} items in {time.time() - t0:.1f}s "
               f"({st['postings']} postings, {st['bytes_on_disk'] / 1e6:.1f} MB) → {out_dir}",
               err=True)
    follow(cat)


def _add(index_dir: Path, catalogue: Path, model_path: Path | None, replace: bool,
         ray: tuple) -> None:
    from deepbow.readers import read_catalogue

    cfg = ray_config(*ray, [catalogue])
    items = read_catalogue(catalogue)
    cat = open_index(index_dir, model_path)
    codes = None
    if cfg is not None:
        from index.ray_encode import encode_items

        ray_note(cfg)
        codes = encode_items(items, cat.model, model_dir(model_path), cfg)
    before = link_state(index_dir)
    n = cat.add(items, replace=replace, codes=codes)
    click.echo(f"{'updated' if replace else 'added'} {n} items", err=True)
    follow(cat, [it["id"] for it in items], before)


@index_group.command("add")
@index_dir
@catalogue_file
@ray_options
@model_option
@handle_errors
def index_add(index_dir, catalogue, ray_address, ray_actors, ray_cpus_per_actor, model_path):
    """Add the items of CATALOGUE (new ids only)."""
    _add(index_dir, catalogue, model_path, False, (ray_address, ray_actors, ray_cpus_per_actor))


@index_group.command("update")
@index_dir
@catalogue_file
@ray_options
@model_option
@handle_errors
def index_update(index_dir, catalogue, ray_address, ray_actors, ray_cpus_per_actor,
                 model_path):
    """Replace (or add) the items of CATALOGUE by id."""
    _add(index_dir, catalogue, model_path, True, (ray_address, ray_actors, ray_cpus_per_actor))


@index_group.command("delete")
@index_dir
@click.argument("ids", nargs=-1, required=True)
@model_option
@handle_errors
def index_delete(index_dir, ids, model_path):
    """Delete items by id."""
    cat, before = open_index(index_dir, model_path), link_state(index_dir)
    n = cat.delete(ids)
    click.echo(f"deleted {n} items", err=True)
    follow(cat, ids, before)


@index_group.command("compact")
@index_dir
@model_option
@handle_errors
def index_compact(index_dir, model_path):
    """Fold added segments and deletions into one segment (a Milvus copy is exported again:
    the doc numbers change)."""
    cat = open_index(index_dir, model_path)
    cat.compact()
    click.echo(f"compacted: {cat.index.n_docs} items in one segment", err=True)
    follow(cat)


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
@click.argument("args", nargs=-1, metavar="[INDEX_DIR] [QUERY]")
@k_option(10)
@click.option("--filter", "filters", multiple=True,
              help="FIELD=VALUE[,VALUE...]; repeat to AND several fields.")
@click.option("--queries", "queries_path", type=click.Path(path_type=Path, exists=True,
                                                           dir_okay=False),
              help="Batch: a file of queries (one a line, or 'qid<TAB>query').")
@click.option("--run", "run_path", type=click.Path(path_type=Path, dir_okay=False),
              help="With --queries: write a run file (.jsonl for JSONL, else TREC).")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
              help="With --queries: walk the postings on this many threads (with --backend "
                   "milvus: Milvus calls in flight).")
@click.option("--index", "index_path", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="The index directory (instead of INDEX_DIR).")
@backend_options
@click.option("--edits", "edits_path", type=click.Path(path_type=Path, exists=True),
              default=None, help="With --backend milvus --collection: the journal (a file or "
                                 "an index directory) whose word edits apply.")
@model_option
@json_option
@handle_errors
def search(args, k, filters, queries_path, run_path, threads, index_path, backend, collection,
           uri, edits_path, model_path, as_json):
    """Rank the catalogue in INDEX_DIR for QUERY (or for each line of --queries); with
    --backend milvus, rank its Milvus copy: the same hits, scores and filters."""
    query, opened = searcher(args, backend, index_path, uri, collection, edits_path,
                             model_path)
    flt = parse_filters(filters)
    with opened as cat:
        if queries_path is not None:
            _batch(cat, queries_path, k, flt, run_path, threads)
            return
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


for _command in (export_milvus, load_milvus, sync_milvus):
    index_group.add_command(_command)
