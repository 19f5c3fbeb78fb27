"""Encoded catalogue vectors as Parquet: what a bulk load into another engine (Milvus) reads.

A directory (`vectors.parquet/`, as Spark and Ray write it) with `manifest.json` (format
`deepbow-vectors`, the model id, the title scale, the term count, the row count and each part
file's size and sha256) and Parquet part files of rows:

    doc int64            the item's number in catalogue order (ties in a ranking go to the lower)
    id string            the item id
    item string          the whole item as JSON (title and filter fields), for serving (values
                         JSON cannot hold, such as Parquet timestamps, as their str())
    terms list<int32>    term ids, increasing
    codes list<uint8>    the 8-bit title codes the index stores (weight = code × scale)
    weights list<float>  code × scale as float32, for tools that read weights only

The codes are the exact ones `Catalogue.build` puts in the postings, so an engine loaded from
here serves the same vectors. pyarrow comes with the `scale` extra; nothing else here needs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

from deepbow.errors import DeepBowError

FORMAT = "deepbow-vectors"
FORMAT_VERSION = 1


class VectorsFileError(DeepBowError):
    """A vectors directory is missing, corrupt, of another version or of another model."""


def vectors_table(docs: np.ndarray, items: Sequence[dict], codes: sparse.csr_matrix,
                  scale: float):
    """One Parquet-ready table for `items` (docs, the items and their title-code rows)."""
    import pyarrow as pa

    codes = sparse.csr_matrix(codes)
    codes.sort_indices()
    offsets = pa.array(codes.indptr.astype(np.int32))
    terms = pa.ListArray.from_arrays(offsets, pa.array(codes.indices.astype(np.int32)))
    vals = codes.data.astype(np.uint8)
    cvals = pa.ListArray.from_arrays(offsets, pa.array(vals))
    wvals = pa.ListArray.from_arrays(offsets, pa.array((vals * scale).astype(np.float32)))
    as_json = [json.dumps(it, ensure_ascii=False, default=str) for it in items]
    return pa.table({"doc": pa.array(np.asarray(docs, np.int64)),
                     "id": pa.array([str(it["id"]) for it in items], pa.string()),
                     "item": pa.array(as_json, pa.string()),
                     "terms": terms, "codes": cvals, "weights": wvals})


def table_codes(table, n_terms: int) -> sparse.csr_matrix:
    """The title codes of a vectors table as CSR rows (in the table's row order)."""
    import pyarrow.compute as pc

    terms, codes = table.column("terms").combine_chunks(), table.column("codes").combine_chunks()
    lengths = pc.list_value_length(terms).fill_null(0).to_numpy(zero_copy_only=False)
    indptr = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    idx = terms.flatten().to_numpy(zero_copy_only=False).astype(np.int32)
    val = codes.flatten().to_numpy(zero_copy_only=False).astype(np.uint8)
    return sparse.csr_matrix((val, idx, indptr), shape=(len(lengths), n_terms))


def write_manifest(folder: Path, model_id: str, scale: float, n_terms: int) -> dict:
    """List the part files of `folder` (each with its size and sha256) in manifest.json."""
    import pyarrow.parquet as pq

    from deepbow.fileio import atomic_open, sha256_file

    parts = sorted(p.name for p in folder.iterdir() if p.name.endswith(".parquet"))
    rows = sum(pq.ParquetFile(folder / p).metadata.num_rows for p in parts)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_id": model_id,
                "scale": float(scale), "n_terms": int(n_terms), "rows": int(rows),
                "files": {p: {"bytes": (folder / p).stat().st_size,
                              "sha256": sha256_file(folder / p)} for p in parts}}
    with atomic_open(folder / "manifest.json") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=2)
    return manifest


def check_out(out: Path, overwrite: bool) -> None:
    """A vectors directory is written where nothing is, or over anything with `overwrite`:
    refused before any encoding starts."""
    if Path(out).exists() and not overwrite:
        raise VectorsFileError(f"{out} exists: refusing to overwrite it (use --overwrite)")


def write_vectors(items: Sequence[dict], codes: sparse.csr_matrix, out: str | Path,
                  model_id: str, scale: float, overwrite: bool = False,
                  first_doc: int = 0) -> dict:
    """The in-process writer: one part file (staged, then renamed into place)."""
    import pyarrow.parquet as pq

    from deepbow.fileio import staged_dir

    out = Path(out)
    check_out(out, overwrite)
    docs = np.arange(first_doc, first_doc + len(items), dtype=np.int64)
    with staged_dir(out) as tmp:
        pq.write_table(vectors_table(docs, items, codes, scale), tmp / "part-00000.parquet")
        return write_manifest(tmp, model_id, scale, codes.shape[1])


def open_vectors(path: str | Path, verify: bool = False) -> dict:
    """The manifest of a vectors directory, its files checked (sizes; `verify`: sha256)."""
    from deepbow.fileio import read_manifest, sha256_file

    path = Path(path)
    manifest = read_manifest(path, FORMAT, FORMAT_VERSION, "vectors", VectorsFileError)
    for name, info in manifest.get("files", {}).items():
        fp = path / name
        if not fp.is_file() or fp.stat().st_size != info["bytes"]:
            raise VectorsFileError(f"{fp}: missing or not the size the manifest says")
        if verify and sha256_file(fp) != info["sha256"]:
            raise VectorsFileError(f"{fp}: checksum mismatch (corrupt or tampered)")
    return manifest


def iter_vectors(path: str | Path, batch_rows: int = 8192, verify: bool = False) -> Iterator:
    """pyarrow RecordBatches of every part file, in part-file order."""
    import pyarrow.parquet as pq

    manifest = open_vectors(path, verify)
    for name in sorted(manifest["files"]):
        yield from pq.ParquetFile(Path(path) / name).iter_batches(batch_size=batch_rows)


def read_vectors(path: str | Path, verify: bool = False):
    """(manifest, one table of every row sorted by doc): for tests and small sets."""
    import pyarrow as pa

    manifest = open_vectors(path, verify)
    batches = list(iter_vectors(path))
    table = pa.Table.from_batches(batches) if batches else None
    if table is not None:
        table = table.sort_by("doc")
    return manifest, table
