"""Beyond one machine: encoding on Ray, serving from Milvus (the `scale` extra).

    encode-catalogue IN... --out vectors.parquet [--ray [ADDRESS]]
    index export-milvus DIR --collection NAME [--uri URI]   (records DIR/milvus.json)
    index load-milvus vectors.parquet --collection NAME [--uri URI]
    index sync-milvus DIR

and what the other command groups use: the --ray options of `index build|add|update`, the
--backend options of `search`, `explain --item` and `studio`, and `follow`, which keeps an
index's Milvus copy in step after a command changed the index or its per-item weights.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from cli.common import Progress, handle_errors, model_option, open_index
from deepbow.errors import DeepBowError

LOCAL_RAY = "local"


# -- options ---------------------------------------------------------------------------------
def ray_options(fn):
    """--ray [ADDRESS], --ray-actors N, --ray-cpus-per-actor F."""
    fn = click.option("--ray-cpus-per-actor", type=click.FloatRange(0.01), default=0.5,
                      show_default=True, help="CPUs Ray reserves per actor (each runs one "
                                              "torch thread).")(fn)
    fn = click.option("--ray-actors", type=click.IntRange(1), default=None,
                      help="Encoding actors (default: one per CPU of the Ray cluster).")(fn)
    return click.option("--ray", "ray_address", is_flag=False, flag_value=LOCAL_RAY,
                        default=None, metavar="[ADDRESS]",
                        help="Encode on Ray: alone, a local Ray of this machine's CPUs; with an "
                             "ADDRESS (ray://head:10001, auto), that cluster. Write --ray=ADDRESS "
                             "or put --ray last.")(fn)


uri_option = click.option("--uri", default=None, help="Milvus URI: http(s)://host:port, or a "
                          "milvus-lite file ending in .db (default: deepbow-milvus.db).")


def backend_options(fn):
    """--backend local|milvus, and which Milvus copy: --index DIR or --collection/--uri."""
    fn = uri_option(fn)
    fn = click.option("--collection", default=None, help="Milvus collection.")(fn)
    return click.option("--backend", type=click.Choice(["local", "milvus"]), default="local",
                        show_default=True, help="Rank with the local index, or with its Milvus "
                        "copy (the one --index DIR was exported to, or --collection).")(fn)


def uri_options(fn):
    fn = click.option("--shards", type=click.IntRange(1, 64), default=None,
                      help="Milvus shards (DML channels) of a new collection, for a cluster.")(fn)
    fn = click.option("--overwrite", is_flag=True, help="Replace the collection if it exists.")(fn)
    fn = click.option("--collection", required=True, help="Milvus collection to write.")(fn)
    return uri_option(fn)


def ray_config(address: str | None, actors: int | None, cpus: float, paths=()):
    """The RayConfig for --ray, or None without it. A value that names one of the catalogue
    paths was swallowed by --ray: say so rather than dial it."""
    if address is None:
        return None
    if address != LOCAL_RAY and (Path(address).exists() or address in map(str, paths)):
        raise click.UsageError(f"--ray took {address!r} as a Ray address; write --ray=ADDRESS "
                               "or put --ray after the catalogue")
    from index.shards import require

    require("ray", "--ray")
    from index.ray_encode import RayConfig

    return RayConfig(address=None if address == LOCAL_RAY else address, actors=actors,
                     cpus_per_actor=cpus)


def model_dir(model_path: Path | None) -> Path:
    """The model directory as every Ray node must see it (an absolute path)."""
    from deepbow.locations import default_model_path

    return Path(model_path or default_model_path()).resolve()


def ray_note(cfg) -> None:
    where = cfg.address or "a local Ray"
    actors = f"{cfg.actors} actors" if cfg.actors else "an actor per CPU"
    click.echo(f"encoding on {where} ({actors}, {cfg.cpus_per_actor:g} CPU each)...", err=True)


# -- keeping a Milvus copy in step -----------------------------------------------------------
def link_state(index_dir: Path) -> str | None:
    """The index's state before a change, when it has a Milvus copy to follow it."""
    from index.milvus_link import index_state, read_link

    return index_state(index_dir) if read_link(index_dir) is not None else None


def follow(cat, ids=None, before: str | None = None) -> None:
    """After a change of `cat`: bring its Milvus copy (if any) in step, saying what was done;
    if that fails, say that the change itself stands and how to mend the copy."""
    from index.milvus_link import sync

    try:
        msg = sync(cat, ids, before)
    except DeepBowError as e:
        raise click.ClickException(
            f"the index changed, but its Milvus copy did not follow: {e}; run `deepbow index "
            f"sync-milvus {cat.path}` when Milvus is reachable") from None
    if msg is not None:
        click.echo(f"Milvus copy: {msg}", err=True)


def after_edit(cat):
    """For the studio: a callable that keeps the copy in step after each edit, or None."""
    from index.milvus_link import read_link, sync

    return (lambda: sync(cat)) if read_link(cat.path) is not None else None


def open_served(index_dir: Path | None, uri: str | None, collection: str | None,
                edits_path: Path | None, model):
    """The Milvus copy to rank with: `collection` at `uri` (applying the journal at
    `edits_path` or `index_dir`), else the copy `index_dir` was exported to."""
    import deepbow

    if collection is None and index_dir is None:
        raise click.UsageError("--backend milvus needs --index DIR (exported with "
                               "`index export-milvus`) or --collection NAME [--uri URI]")
    if collection is None:
        if uri is not None or edits_path is not None:
            raise click.UsageError("--uri and --edits go with --collection; --index DIR "
                                   "names its own copy and journal")
        return deepbow.open_milvus(index=index_dir, model=model)
    return deepbow.open_milvus(uri, collection, model, index=edits_path or index_dir)


def searcher(args: tuple[str, ...], backend: str, index_dir: Path | None, uri, collection,
             edits_path, model_path):
    """(query or None, a context giving what to search) from `search`'s arguments."""
    import deepbow

    positional = 1 if backend == "milvus" or index_dir is not None else 2
    if len(args) > positional or (positional == 2 and not args):
        raise click.UsageError("give INDEX_DIR [QUERY], or --index DIR / --backend milvus "
                               "with QUERY alone")
    query = args[positional - 1] if len(args) == positional else None
    if backend == "local":
        if uri or collection or edits_path:
            raise click.UsageError("--uri, --collection and --edits go with --backend milvus")
        return query, contextlib.nullcontext(open_index(Path(index_dir or args[0]), model_path))
    model = deepbow.load(model_path)
    return query, open_served(index_dir, uri, collection, edits_path, model)


def explain_item(query: str, item: str, backend: str, index_dir, uri, collection,
                 edits_path, model_path):
    """The Explanation of an indexed item, from the local index or its Milvus copy."""
    import deepbow

    if backend == "local":
        if index_dir is None or uri or collection or edits_path:
            raise click.UsageError("--item needs --index DIR (or --backend milvus); the index "
                                   "applies its own journal")
        return open_index(index_dir, model_path).explain(query, item)
    with open_served(index_dir, uri, collection, edits_path, deepbow.load(model_path)) as served:
        return served.explain(query, item)


# -- commands --------------------------------------------------------------------------------
@click.command("encode-catalogue")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path, exists=True),
                metavar="IN...")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="The vectors directory to write (Parquet parts + manifest).")
@click.option("--overwrite", is_flag=True, help="Replace an existing vectors directory.")
@ray_options
@model_option
@handle_errors
def encode_catalogue(inputs, out_dir, overwrite, ray_address, ray_actors, ray_cpus_per_actor,
                     model_path):
    """Encode catalogue shards (JSONL/TSV files, Parquet files, or directories of them) into
    a Parquet vectors directory: ids, items and exact title codes and weights, for bulk loads
    (`index load-milvus`). With --ray the actors write the parts; nothing passes the driver."""
    import deepbow
    from index.catalogue import INDEX_BATCH, encode_items, validate_items
    from index.shards import read_shards, require

    require("pyarrow", "encode-catalogue")
    from index import ray_encode, vectors

    cfg = ray_config(ray_address, ray_actors, ray_cpus_per_actor, inputs)
    if not inputs:
        raise click.UsageError("give the catalogue file(s) or directories to encode")
    model = deepbow.load(model_path)
    if cfg is not None:
        ray_note(cfg)
        m = ray_encode.write_vectors(inputs, model, model_dir(model_path), out_dir, cfg,
                                     overwrite)
    else:
        vectors.check_out(out_dir, overwrite)
        items = validate_items(read_shards(inputs))
        with Progress(len(items), "encoding titles") as bar:
            codes = encode_items(model, items, INDEX_BATCH, bar)
        m = vectors.write_vectors(items, codes, out_dir, model.model_id,
                                  model.scales["title"], overwrite)
    click.echo(f"encoded {m['rows']} items → {out_dir}", err=True)


@click.command("export-milvus")
@click.argument("index_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@uri_options
@model_option
@handle_errors
def export_milvus(index_dir, uri, collection, overwrite, shards, model_path):
    """Write INDEX_DIR's items into a Milvus collection (exact title vectors, ids, filter
    fields, per-item weight edits applied) and record it in INDEX_DIR/milvus.json, so that
    later changes of the index follow it. A token comes from $DEEPBOW_MILVUS_TOKEN."""
    import deepbow

    cat = open_index(index_dir, model_path)
    with Progress(cat.index.n_alive, "exporting") as bar:
        n = deepbow.export_milvus(cat, uri, collection, overwrite, shards, bar)
    click.echo(f"exported {n} items → collection {collection}; recorded in "
               f"{index_dir / 'milvus.json'}", err=True)


@click.command("load-milvus")
@click.argument("vectors_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@uri_options
@model_option
@handle_errors
def load_milvus(vectors_dir, uri, collection, overwrite, shards, model_path):
    """Bulk-load an `encode-catalogue` vectors directory into a new Milvus collection."""
    import deepbow
    from index.milvus import DEFAULT_URI
    from index.milvus_catalogue import load_vectors
    from index.vectors import open_vectors

    rows = open_vectors(vectors_dir)["rows"]
    with Progress(rows, "loading") as bar, load_vectors(
            vectors_dir, uri or DEFAULT_URI, collection, deepbow.load(model_path), overwrite,
            progress=bar, shards=shards) as mix:
        n = mix.count()
    click.echo(f"loaded {n} items → collection {collection}", err=True)


@click.command("sync-milvus")
@click.argument("index_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@model_option
@handle_errors
def sync_milvus(index_dir, model_path):
    """Bring INDEX_DIR's Milvus copy in step: the items of per-item weight edits, or (when the
    index itself changed without it following) the whole index exported again."""
    from index.milvus_link import read_link

    if read_link(index_dir) is None:
        raise click.ClickException(f"{index_dir} has no Milvus copy (index export-milvus)")
    follow(open_index(index_dir, model_path))
