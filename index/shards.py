"""Catalogue shards: several JSONL/TSV files, or Parquet files, read as one catalogue.

`index build`, `encode-catalogue` and their Ray path (index/ray_encode.py) take files or
directories of shards; the catalogue is the shards in the order given (a directory: its files
sorted by name), each in file order. Text shards are read line by line exactly as
`deepbow.readers.read_catalogue` reads one file (lines split on b"\\n", a byte-order mark
dropped at a file's start, blank lines skipped, errors naming file:line), so the in-process
path and Ray number the same items the same way: that numbering decides which titles are
encoded together, hence their exact codes. Parquet shards need pyarrow (the `scale` extra).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from deepbow.errors import DeepBowError, InputError
from deepbow.readers import BOM, catalogue_item, check_item, decode_line, read_catalogue

TEXT_SUFFIXES = (".jsonl", ".json", ".tsv", ".txt")


def shard_files(paths: Sequence[str | Path]) -> tuple[list[str], str]:
    """The shard files in catalogue order and their kind ("text" or "parquet")."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                            and q.suffix in (*TEXT_SUFFIXES, ".parquet"))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such catalogue file or directory")
    if not files:
        raise InputError(f"no catalogue shards in {', '.join(map(str, paths))}")
    kinds = {"parquet" if f.suffix == ".parquet" else "text" for f in files}
    if len(kinds) > 1:
        raise InputError("catalogue shards mix Parquet and text files; give one kind")
    return [str(f) for f in files], kinds.pop()


def split_lines(stream) -> Iterator[tuple[bytes, int]]:
    """(raw line, line number) of the non-blank lines of a binary stream, split on b"\\n" as
    iterating a file does; blank as read_lines judges it (after decoding, a first line's
    byte-order mark dropped)."""
    rest, lineno = b"", 0
    while True:
        buf = stream.read(1 << 23)
        if not buf:
            break
        parts = (rest + buf).split(b"\n")
        rest = parts.pop()
        for raw in parts:
            lineno += 1
            if not _blank(raw, lineno == 1):
                yield raw + b"\n", lineno
    if rest and not _blank(rest, lineno == 0):
        yield rest, lineno + 1


def _blank(raw: bytes, first: bool) -> bool:
    text = raw.decode("utf-8", errors="replace")
    return not (text.removeprefix(BOM) if first else text).strip()


def parse_line(raw: bytes, path: str, lineno: int) -> dict:
    """One catalogue line as `read_catalogue` reads it; errors name the file and line."""
    where = f"{path}:{lineno}"
    return catalogue_item(decode_line(raw, where, first=lineno == 1), where)


def parquet_item(row: dict, where: str) -> dict:
    """A Parquet row as a catalogue item, checked as a line's item is."""
    return check_item(row, where)


def read_shards(paths: Sequence[str | Path]) -> list[dict]:
    """Every item of the shards, in catalogue order (in this process; duplicate ids across
    shards are left to the caller: `Catalogue.build` refuses them)."""
    files, kind = shard_files(paths)
    if kind == "text":
        return [it for f in files for it in read_catalogue(f)]
    pq = require("pyarrow.parquet", "reading Parquet shards")
    out: list[dict] = []
    for f in files:
        for n, row in enumerate(pq.read_table(f).to_pylist()):
            out.append(parquet_item(row, f"{f}: row {n + 1}"))
    return out


def require(module: str, what: str):
    """An optional dependency of the `scale` extra, or an error saying how to install it."""
    import importlib
    import warnings

    try:
        with warnings.catch_warnings():  # milvus-lite 2.5 imports the deprecated pkg_resources
            warnings.simplefilter("ignore", UserWarning)
            return importlib.import_module(module)
    except ImportError as e:
        raise ScaleExtraMissing(f"{what} needs {module.split('.')[0]} ({e.msg}): install the "
                                f"scale extra, pip install 'deepbow[scale]'") from None


class ScaleExtraMissing(DeepBowError):
    """An optional dependency of the `scale` extra is not installed."""
