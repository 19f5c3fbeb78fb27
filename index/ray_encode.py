"""Encode a catalogue's titles on a Ray cluster, with exactly the codes of the in-process path.

Why the work is cut the way it is: a title's float weights depend, in their last bits, on the
other titles of its batch (padding length and batch shape change the order of float sums), and
a last bit can move a weight across an 8-bit rounding boundary. The in-process path
(`index.catalogue.encode_items`) encodes chunks of INDEX_BATCH items in catalogue order, each
with `encode_csr(titles, batch_size=256)`. So here every item gets its catalogue row number,
rows are grouped into the same chunks (row // INDEX_BATCH) and each chunk is encoded by that same
call on an actor that loaded the model once: the codes are bit-identical by construction, not by
luck (on the same CPU type and torch build; see the README's "Beyond one machine").

Reading: JSONL/TSV shards through a Ray datasource that splits lines on b"\\n" exactly as
`deepbow.readers.read_catalogue` does (index/shards.py; errors name file:line), or Parquet
shards with `ray.data.read_parquet`; shards in the order given (a directory: its files sorted by
name). Actors take 0.5 CPU each by default, one per CPU of the cluster: with 1 CPU each on a
2-CPU machine the read task starves.
Blocks cross process boundaries as Arrow tables (numpy object columns would become tensors).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepbow.errors import DeepBowError, InputError
from index.catalogue import INDEX_BATCH
from index.shards import parquet_item, parse_line, shard_files, split_lines
from index.vectors import check_out, table_codes, vectors_table, write_manifest

LINES_PER_BLOCK = 65536


class RayError(DeepBowError):
    """Ray could not be started or reached."""


@dataclass
class RayConfig:
    """Where and how wide: `address` None starts (and stops) a local cluster of `num_cpus`
    (default: this machine's CPUs); `actors` None: one actor per CPU of the cluster."""

    address: str | None = None
    num_cpus: int | None = None
    actors: int | None = None
    cpus_per_actor: float = 0.5
    threads: int = 1  # torch threads per actor
    chunk: int = INDEX_BATCH  # items encoded together: must be what the in-process path uses


@contextmanager
def ray_session(cfg: RayConfig):
    """Use the running Ray, or start one for the call and shut it down after (quietly: the
    library prints nothing; Ray's progress bars and its logs below ERROR are switched off)."""
    import ray
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = True
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    if ray.is_initialized():
        yield
        return
    kwargs = {"include_dashboard": False, "log_to_driver": False,
              "logging_level": logging.ERROR}
    try:
        if cfg.address:
            _probe(cfg.address)
            ray.init(address=cfg.address, **kwargs)
        else:
            ray.init(num_cpus=cfg.num_cpus or os.cpu_count() or 1, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RayError(f"cannot start or reach Ray at {cfg.address or 'a local cluster'}: "
                       f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _probe(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a host:port nobody listens on (ray.init would retry for many minutes)."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise RayError(f"cannot reach Ray at {address}: {e.strerror or e}") from None


def _lines_datasource(paths: list[str]):
    import pyarrow as pa
    from ray.data.datasource import FileBasedDatasource

    class CatalogueLines(FileBasedDatasource):
        """Rows (line bytes, path, line number) of catalogue text shards."""

        def _read_stream(self, f, path: str):
            rows: dict[str, list] = {"line": [], "path": [], "lineno": []}
            for raw, n in split_lines(f):
                rows["line"].append(raw)
                rows["path"].append(path)
                rows["lineno"].append(n)
                if len(rows["line"]) >= LINES_PER_BLOCK:
                    yield pa.table({"line": pa.array(rows["line"], pa.binary()),
                                    "path": rows["path"], "lineno": rows["lineno"]})
                    rows = {k: [] for k in rows}
            if rows["line"]:
                yield pa.table({"line": pa.array(rows["line"], pa.binary()),
                                "path": rows["path"], "lineno": rows["lineno"]})

    return CatalogueLines(paths)


class TitleEncoder:
    """A Ray Data actor: loads the model once, then encodes one chunk (a group) per call."""

    def __init__(self, model_path: str, model_id: str, threads: int, kind: str) -> None:
        import torch

        from deepbow.encoder import DeepBoW

        torch.set_num_threads(threads)
        self.model = DeepBoW.load(model_path)
        if self.model.model_id != model_id:  # e.g. another model at that path on this node
            raise InputError(f"{model_path}: holds model {self.model.model_id} on this Ray "
                             f"node, the driver's is {model_id}")
        self.kind = kind

    def items(self, table) -> list[dict]:
        if self.kind == "text":
            return [parse_line(raw, p, n) for raw, p, n in zip(
                table.column("line").to_pylist(), table.column("path").to_pylist(),
                table.column("lineno").to_pylist(), strict=True)]
        rows = table.drop_columns(["_row", "_chunk"]).to_pylist()
        return [parquet_item(it, f"catalogue row {n + 1}")
                for it, n in zip(rows, table.column("_row").to_pylist(), strict=True)]

    def __call__(self, table):
        table = table.sort_by("_row")
        items = self.items(table)
        codes = self.model.encode_csr([it["title"] for it in items], batch_size=256)
        return vectors_table(table.column("_row").to_numpy(), items, codes,
                             self.model.scales["title"])


def _with_chunk(table, chunk: int):
    """The chunk of each row: the in-process path encodes rows [c·B, (c+1)·B) together."""
    import pyarrow.compute as pc

    return table.append_column("_chunk", pc.divide(table.column("_row"), chunk))


def _numbered(ds, chunk: int):
    """Each row's catalogue number (`_row`) and chunk (`_chunk`), in read order."""
    import ray

    ds = ds.materialize()
    n = ds.count()
    if n == 0:
        raise InputError("the catalogue shards hold no items")
    rows = ray.data.range(n).rename_columns({"id": "_row"})
    with warnings.catch_warnings():  # zip is deprecated after 2.60 (the extra pins 2.60.0)
        warnings.simplefilter("ignore", DeprecationWarning)
        zipped = ds.zip(rows)
    return zipped.map_batches(_with_chunk, batch_format="pyarrow", batch_size=None,
                              fn_kwargs={"chunk": chunk})


def actor_count(cfg: RayConfig) -> int:
    """`cfg.actors`, or one actor per CPU of the running cluster."""
    import ray

    if cfg.actors:
        return cfg.actors
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _encoded(ds, model, model_path: str | Path, cfg: RayConfig, kind: str):
    """Chunks grouped and encoded on an actor pool: a dataset of vectors rows."""
    from ray.data import ActorPoolStrategy

    return ds.groupby("_chunk").map_groups(
        TitleEncoder, batch_format="pyarrow",
        compute=ActorPoolStrategy(size=actor_count(cfg)),
        num_cpus=cfg.cpus_per_actor,
        fn_constructor_kwargs={"model_path": str(model_path), "model_id": model.model_id,
                               "threads": cfg.threads, "kind": kind})


def _shards(paths: Sequence[str | Path]) -> tuple[list[str], str]:
    """The shard files as absolute paths (every Ray node reads them), and their kind."""
    files, kind = shard_files(paths)
    return [str(Path(f).resolve()) for f in files], kind


def _read(files: list[str], kind: str):
    import ray

    if kind == "parquet":
        return ray.data.read_parquet(files)
    return ray.data.read_datasource(_lines_datasource(files))


@contextmanager
def _clean_errors():
    """Ray wraps an actor's InputError in its own exceptions: give the caller the message."""
    try:
        yield
    except DeepBowError:
        raise
    except Exception as e:  # RayTaskError, UserCodeException, ...
        seen, cur = set(), e
        while cur is not None and id(cur) not in seen:
            if isinstance(cur, DeepBowError):
                raise InputError(str(cur).splitlines()[-1]) from None
            seen.add(id(cur))
            cur = getattr(cur, "cause", None) or cur.__cause__
        for line in str(e).splitlines()[::-1]:
            if "InputError:" in line:
                raise InputError(line.split("InputError:", 1)[1].strip()) from None
        raise


def _collect(ds, n_terms: int):
    """(items, codes) of a vectors dataset, in catalogue order."""
    import pyarrow as pa

    parts = list(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    if not parts:
        return [], _empty(n_terms)
    table = pa.concat_tables(parts).sort_by("doc")
    items = [json.loads(s) for s in table.column("item").to_pylist()]
    return items, table_codes(table, n_terms)


def _empty(n_terms: int):
    from scipy import sparse

    return sparse.csr_matrix((0, n_terms), dtype=np.uint8)


def encode_items(items: Sequence[dict], model, model_path: str | Path,
                 cfg: RayConfig | None = None):
    """Title codes of items already in memory (what `index add|update --ray` needs): the CSR
    `index.catalogue.encode_items(model, items, INDEX_BATCH)` returns, computed on Ray.
    `model` is the driver's copy (its id is checked on every actor), `model_path` its
    directory as the Ray nodes see it."""
    import pyarrow as pa
    import ray

    cfg = cfg or RayConfig()
    if not items:
        return _empty(model.vocab.size)
    table = pa.table({"_row": np.arange(len(items), dtype=np.int64),
                      "id": [str(it["id"]) for it in items],
                      "title": [it["title"] for it in items]})
    with ray_session(cfg), _clean_errors():
        ds = ray.data.from_arrow(_with_chunk(table, cfg.chunk))
        _, codes = _collect(_encoded(ds, model, model_path, cfg, "rows"), model.vocab.size)
    return codes


def encode_shards(paths: Sequence[str | Path], model, model_path: str | Path,
                  cfg: RayConfig | None = None) -> tuple[list[dict], object]:
    """(items, title codes) of JSONL/TSV or Parquet shards read with Ray Data, in catalogue
    order (what `index build --ray` needs: the items go to the segment store)."""
    files, kind = _shards(paths)
    cfg = cfg or RayConfig()
    with ray_session(cfg), _clean_errors():
        ds = _encoded(_numbered(_read(files, kind), cfg.chunk), model, model_path, cfg, kind)
        return _collect(ds, model.vocab.size)


def write_vectors(paths: Sequence[str | Path], model, model_path: str | Path,
                  out: str | Path, cfg: RayConfig | None = None,
                  overwrite: bool = False) -> dict:
    """Encode shards on Ray and write a vectors directory (index/vectors.py) without
    collecting anything on the driver (what `encode-catalogue IN --out vectors.parquet` needs).
    Duplicate ids are not checked across shards here."""
    from deepbow.fileio import staged_dir

    out = Path(out)
    check_out(out, overwrite)
    files, kind = _shards(paths)
    cfg = cfg or RayConfig()
    with ray_session(cfg), _clean_errors(), staged_dir(out) as tmp:
        ds = _encoded(_numbered(_read(files, kind), cfg.chunk), model, model_path, cfg, kind)
        ds.write_parquet(str(tmp))
        return write_manifest(tmp, model.model_id, model.scales["title"], model.vocab.size)
