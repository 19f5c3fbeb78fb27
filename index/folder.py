"""The index folder's files: which are ours, whether a folder may be replaced by a new index,
and the clean-up of files no manifest names (older generations, a killed writer's temp files).
"""

from __future__ import annotations

import json
from pathlib import Path

from index.integrity import IndexFileError, read_index_manifest
from index.journal import JOURNAL

LINK_FILE = "milvus.json"  # where the index's Milvus copy is (index/milvus_link.py)
OWN_FILES = ("manifest.json", ".lock", JOURNAL, LINK_FILE)


def check_replaceable(path: Path, overwrite: bool) -> None:
    """A new index may be written at `path` when nothing is there, or, with `overwrite`, when
    an index is there and nothing else: a folder of other files is never deleted."""
    path = Path(path)
    if not path.exists():
        return
    if not overwrite:
        raise IndexFileError(f"{path} exists: refusing to overwrite it (use --overwrite)")
    if not path.is_dir() or not (path / "manifest.json").is_file():
        raise IndexFileError(f"{path} is not an index (no manifest.json): refusing to replace "
                             "it; choose another --out")
    manifest = read_index_manifest(path)
    named = set(manifest.get("files", {})) if isinstance(manifest.get("files"), dict) else set()
    other = sorted(p.name for p in path.iterdir()
                   if p.name not in named and p.name not in OWN_FILES
                   and not p.name.startswith((".", "seg-", "deleted-")))
    if other:
        raise IndexFileError(f"{path} holds files that are not the index's ({', '.join(other[:5])}"
                             f"): refusing to replace it")
    if Path.cwd().resolve().is_relative_to(path.resolve()):
        raise IndexFileError(f"{path} is the current directory (or holds it): refusing to "
                             "replace it from inside")


def listed_files(folder: Path) -> dict | None:
    """The files the manifest now in `folder` lists (None when there is none or it is
    damaged)."""
    try:
        files = json.loads((folder / "manifest.json").read_text("utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(files, dict):
        return None
    return {k: v for k, v in files.items() if isinstance(v, dict)}


def prune(folder: Path, keep) -> list[str]:
    """Remove our files that `keep` does not name: segment and deletion files of older
    generations, and temp files a killed writer left. Call it holding the folder's lock
    (no other writer is mid-write then); readers keep what they opened (see catalogue.py)."""
    removed = []
    for p in folder.iterdir():
        ours = p.name.startswith(("seg-", "deleted-")) or (
            p.name.startswith((".seg-", ".deleted-", ".manifest.json.")) and
            p.name.endswith(".tmp"))
        if ours and p.name not in keep and p.is_file():
            try:
                p.unlink()
                removed.append(p.name)
            except FileNotFoundError:
                pass
    return removed
