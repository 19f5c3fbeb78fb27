"""A catalogue's consistent view of its directory: the index and its segments' stores, read
from one manifest even while a writer replaces it.

The signature of a view is the manifest's bytes: every write makes a new manifest (its
deletions file gets a new name), so equal bytes mean the same view. A stat would miss a change
made within one clock tick by a file that reused the old one's inode.
"""

from __future__ import annotations

from pathlib import Path

from index.integrity import IndexFileError
from index.inverted import InvertedIndex
from index.segments import SegmentStore

STALE = b"\0"  # a signature no manifest has: the view is read again at the next call


def signature(path: Path) -> bytes | None:
    """The manifest's bytes (None when there is none)."""
    try:
        return (path / "manifest.json").read_bytes()
    except OSError:
        return None


def open_view(path: Path, model, previous=None, mmap: bool = True, verify: bool = False,
              tries: int = 8):
    """(index, stores, manifest signature) read consistently. A writer that replaces the
    manifest while this reads may remove files of the one being read; that shows as a
    missing file with a changed manifest, and the read starts again on the new one.
    `previous` (a Catalogue) lends the segments and stores that did not change."""
    for attempt in range(tries):
        sig = signature(path)
        try:
            index = _load_checked(path, model, mmap, verify,
                                  previous.index if previous is not None else None)
            old = previous.stores if previous is not None else {}
            stores = {s.uid: old.get(s.uid) or SegmentStore(path, s.uid, s.n_docs)
                      for s in index.segments}
            return index, stores, sig
        except (IndexFileError, FileNotFoundError) as e:
            if attempt == tries - 1 or signature(path) == sig:
                if isinstance(e, FileNotFoundError):
                    raise IndexFileError(f"{path}: missing file {Path(e.filename).name}"
                                         ) from None
                raise
    raise AssertionError("unreachable")


def _load_checked(path: Path, model, mmap: bool = True, verify: bool = False,
                  previous: InvertedIndex | None = None) -> InvertedIndex:
    """The index at `path`, refused unless it was built by `model`."""
    index = InvertedIndex.load(path, mmap=mmap, verify=verify, previous=previous)
    want = index.meta.get("model_id")
    if want != model.model_id:
        raise IndexFileError(f"{path}: built with model {want}, but the model given is "
                             f"{model.model_id}; rebuild the index or pass --model")
    if index.n_terms != model.vocab.size:
        raise IndexFileError(f"{path}: {index.n_terms} terms, the model has "
                             f"{model.vocab.size}")
    return index
