"""What an index directory must hold before anything reads it, checked when it is opened.

The kernels (index/kernels.py) trust their arrays: they index the doc mask by doc number, walk
each posting list assuming increasing doc numbers (galloping search, a window accumulator) and
prune with each term's largest impact. A damaged file of the right size (a disk error, a bad
copy, a hand edit) would make them read out of bounds or rank wrongly, so `check_segment`
proves those properties with a few vectorised passes over the postings (O(postings), blocks of
a bounded size) before any kernel sees the arrays; `check_manifest` proves the manifest has
the shape the loader reads (a manifest of valid JSON but of the wrong shape is as damaged as a
truncated one). Each failure is an IndexFileError naming the file and what is wrong.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from deepbow.errors import DeepBowError


class IndexFileError(DeepBowError):
    """An index directory is missing, corrupt, of another version or built by another model."""


FORMAT = "deepbow-index"
FORMAT_VERSION = 2
UID = re.compile(r"[0-9a-f]{1,32}\Z")
SHA256 = re.compile(r"[0-9a-f]{64}\Z")
DTYPES = {"indptr": np.int64, "docs": np.int32, "impacts": np.uint8, "max_impact": np.uint8,
          "bptr": np.int64, "blk_last": np.int32, "blk_max": np.uint8}
V1_ARRAYS = ("indptr", "docs", "impacts", "max_impact")  # version 2 adds the block maxima
PASS = 1 << 22  # postings per pass of the order check: bounded temporaries on a large index


def plain_name(name: object) -> bool:
    """A file name inside the index folder: no path separators, not hidden, not . or .."""
    return isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name \
        and "\0" not in name and not name.startswith(".")


def _count(obj: dict, key: str, where: str) -> int:
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise IndexFileError(f"{where}: {key!r} must be a non-negative integer, got {v!r}")
    return v


def check_manifest(mpath: Path, m: dict) -> None:
    """The manifest's shape: counts, scale, segments (contiguous doc numbers), the deleted
    set's file and the listed files with their sizes and checksums."""
    where = str(mpath)
    for key in ("n_terms", "n_docs", "n_deleted", "n_postings"):
        _count(m, key, where)
    scale = m.get("scale")
    if not isinstance(scale, int | float) or isinstance(scale, bool) or \
            not math.isfinite(scale) or scale <= 0:
        raise IndexFileError(f"{where}: 'scale' must be a positive number, got {scale!r}")
    files = m.get("files")
    if not isinstance(files, dict):
        raise IndexFileError(f"{where}: 'files' must be an object of file name → size, sha256")
    for name, info in files.items():
        if not plain_name(name):
            raise IndexFileError(f"{where}: {name!r} is not a file name of the index")
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) \
                or not SHA256.match(info["sha256"]):
            raise IndexFileError(f"{where}: file {name} needs its bytes and sha256")
        _count(info, "bytes", f"{where}: file {name}")
    segs = m.get("segments")
    if not isinstance(segs, list):
        raise IndexFileError(f"{where}: 'segments' must be a list")
    base = postings = 0
    for i, sm in enumerate(segs):
        at = f"{where}: segment {i}"
        if not isinstance(sm, dict) or not isinstance(sm.get("uid"), str) \
                or not UID.match(sm["uid"]):
            raise IndexFileError(f"{at} needs a uid of hex digits")
        if _count(sm, "doc_base", at) != base:
            raise IndexFileError(f"{at}: doc_base {sm['doc_base']}, expected {base}")
        base += _count(sm, "n_docs", at)
        postings += _count(sm, "n_postings", at)
        arrays = V1_ARRAYS if m.get("format_version") == 1 else DTYPES
        missing = [n for n in (f"seg-{sm['uid']}.{a}.npy" for a in arrays) if n not in files]
        if missing:
            raise IndexFileError(f"{at}: {missing[0]} is not among the listed files")
    if (base, postings) != (m["n_docs"], m["n_postings"]):
        raise IndexFileError(f"{where}: segments hold {base} docs and {postings} postings, "
                             f"the manifest says {m['n_docs']} and {m['n_postings']}")
    if m.get("deleted") not in files:
        raise IndexFileError(f"{where}: 'deleted' must name a listed file")
    if not isinstance(m.get("model_id", ""), str):
        raise IndexFileError(f"{where}: 'model_id' must be a string")
    check_folded(where, m.get("folded_edits", []))


def check_folded(where: str, folded: object) -> None:
    """Per-product weights folded in by compactions: a list of {"item", "word", "code",
    "original"} (or the older object keyed "item<TAB>word")."""
    rows = folded.values() if isinstance(folded, dict) else folded
    ok = isinstance(folded, list | dict) and all(
        isinstance(r, dict) and all(isinstance(r.get(k), int) and not isinstance(r[k], bool)
                                    and 0 <= r[k] <= 255 for k in ("code", "original"))
        for r in rows)
    if isinstance(folded, list):
        ok = ok and all(isinstance(r.get("item"), str) and isinstance(r.get("word"), str)
                        for r in folded)
    elif isinstance(folded, dict):
        ok = ok and all(isinstance(k, str) and "\t" in k for k in folded)
    if not ok:
        raise IndexFileError(f"{where}: 'folded_edits' is damaged")


def check_files(path: Path, manifest: dict, verify: bool) -> None:
    """Every listed file is there with its size; with verify, with its sha256 too."""
    from deepbow.fileio import sha256_file

    for fname, info in manifest["files"].items():
        fp = path / fname
        try:
            size = fp.stat().st_size
        except FileNotFoundError:
            raise IndexFileError(f"{path}: missing file {fname}") from None
        if size != info["bytes"]:
            raise IndexFileError(f"{fp}: {size} bytes, manifest says {info['bytes']} "
                                 f"(truncated or replaced)")
        if verify and sha256_file(fp) != info["sha256"]:
            raise IndexFileError(f"{fp}: checksum mismatch (corrupt or tampered)")


def check_arrays(arrays: dict, n_docs: int, n_terms: int, where: str) -> None:
    """A segment's arrays, before anything reads them: shapes and types, then what the
    kernels rely on: indptr starts at 0, never decreases and ends at the number of postings;
    doc numbers lie in 0..n_docs-1 and increase within each term; each term's max_impact is
    its largest impact; and the block maxima, when given, are those of the postings."""
    for name, a in arrays.items():
        if a.ndim != 1 or a.dtype != DTYPES[name]:
            raise IndexFileError(f"{where}.{name}.npy: expected a 1-d "
                                 f"{np.dtype(DTYPES[name])} array, found {a.ndim}-d {a.dtype}")
    ip, docs, impacts = arrays["indptr"], arrays["docs"], arrays["impacts"]
    if len(ip) != n_terms + 1 or len(arrays["max_impact"]) != n_terms:
        raise IndexFileError(f"{where}: arrays for {len(ip) - 1} terms, the index has {n_terms}")
    if ip[0] != 0 or ip[-1] != len(docs) or len(impacts) != len(docs) \
            or np.any(np.diff(ip) < 0):
        raise IndexFileError(f"{where}.indptr.npy: term offsets are damaged (not increasing "
                             "from 0 to the number of postings)")
    if len(docs) and (int(docs.min()) < 0 or int(docs.max()) >= n_docs):
        raise IndexFileError(f"{where}.docs.npy: doc numbers outside 0..{n_docs - 1}")
    starts = np.zeros(len(docs) + 1, bool)
    starts[ip] = True  # positions where a term's list begins
    for a in range(1, len(docs), PASS):
        b = min(a + PASS, len(docs))
        if np.any((docs[a:b] <= docs[a - 1:b - 1]) & ~starts[a:b]):
            raise IndexFileError(f"{where}.docs.npy: doc numbers do not increase within a term")
    nonempty = np.diff(ip) > 0
    top = np.maximum.reduceat(impacts, ip[:-1][nonempty]) if len(docs) else \
        np.zeros(0, np.uint8)
    mx = arrays["max_impact"]
    if np.any(mx[nonempty] != top) or np.any(mx[~nonempty] != 0):
        raise IndexFileError(f"{where}.max_impact.npy: does not match the impacts")
    if "bptr" in arrays:
        _check_blocks(arrays, where)


def _check_blocks(arrays: dict, where: str) -> None:
    """The block-max arrays (index/kernels_blockmax.py): each term's postings in blocks of
    BLOCK, the doc number of each block's last posting and its largest impact."""
    from index.kernels_blockmax import BLOCK

    ip, docs = arrays["indptr"], arrays["docs"]
    lens = np.diff(ip)
    per_term = (lens + BLOCK - 1) // BLOCK
    bptr = arrays["bptr"]
    if len(bptr) != len(ip) or bptr[0] != 0 or np.any(np.diff(bptr) != per_term):
        raise IndexFileError(f"{where}.bptr.npy: block offsets do not match the postings")
    n_blocks = int(bptr[-1])
    if len(arrays["blk_last"]) != n_blocks or len(arrays["blk_max"]) != n_blocks:
        raise IndexFileError(f"{where}: {n_blocks} blocks, the block arrays hold others")
    if not n_blocks:
        return
    first = np.repeat(bptr[:-1], per_term)
    block_starts = np.repeat(ip[:-1], per_term) + BLOCK * (np.arange(n_blocks) - first)
    ends = np.minimum(block_starts + BLOCK, np.repeat(ip[1:], per_term))
    if np.any(arrays["blk_last"] != docs[ends - 1]):
        raise IndexFileError(f"{where}.blk_last.npy: does not match the postings")
    if np.any(arrays["blk_max"] != np.maximum.reduceat(arrays["impacts"], block_starts)):
        raise IndexFileError(f"{where}.blk_max.npy: does not match the impacts")


def check_deleted(deleted, n_docs: int, where: str) -> None:
    if len(deleted) and deleted.max() >= n_docs:
        raise IndexFileError(f"{where}: deleted doc number {deleted.max()} is beyond the "
                             f"{n_docs} docs")


def read_index_manifest(path: Path) -> dict:
    """The manifest of a version-2 index, or of a version-1 one (no block-max arrays: load
    computes them); any other version is refused with the version-2 message."""
    from deepbow.fileio import read_manifest

    try:
        return read_manifest(path, FORMAT, FORMAT_VERSION, "index", IndexFileError)
    except IndexFileError as current:
        try:
            return read_manifest(path, FORMAT, 1, "index", IndexFileError)
        except IndexFileError:
            raise current from None
