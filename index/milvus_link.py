"""An index directory's Milvus copy: where it is, whether it is in step, and keeping it so.

`export_linked` writes a local index into a collection and records it in `DIR/milvus.json`:
the URI (a milvus-lite file as an absolute path), the collection, and what the copy holds: the
sha256 of the index's manifest.json when it was written (any add, update, delete, compact or
build changes the manifest) and the journal's last seq it reflects. A token is never written
there: it comes from $DEEPBOW_MILVUS_TOKEN (deepbow/locations.py).

`sync` brings the copy in step after a change, the cheapest way that is still exact:
- the index is as the copy recorded (only the journal moved): upsert the items that `set`
  edits name (word scales, bans and links act on query vectors and need nothing);
- the caller says which ids changed and the copy was in step just before: upsert or delete
  those (`mirror`), then the items of `set` edits;
- otherwise (a compaction renumbered the docs, a build replaced the index, or changes were
  made without a sync): export the whole index again, replacing the collection.

`open_linked` refuses a copy that is behind (its recorded state differs from the directory's,
or the journal holds `set`/`undo` records it has not seen), naming the command that mends it,
so a search from Milvus never silently answers from an older catalogue.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from deepbow.fileio import atomic_write_text
from index.editor import journal_of
from index.folder import LINK_FILE
from index.milvus import MilvusError, MilvusIndex, check_uri
from index.milvus_catalogue import MilvusCatalogue, export_catalogue, mirror, sync_item_edits

FORMAT = "deepbow-milvus-link"
ITEM_OPS = ("set", "undo")  # journal records that may change an item's vector in the copy


@dataclass
class Link:
    uri: str
    collection: str
    index_state: str  # sha256 of the manifest.json the copy reflects
    journal_seq: int  # the journal's last seq the copy reflects


def index_state(index_dir: str | Path) -> str:
    """What the index holds, as one hash: its manifest names every segment and deletion."""
    try:
        return hashlib.sha256((Path(index_dir) / "manifest.json").read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""


def read_link(index_dir: str | Path) -> Link | None:
    """DIR's Milvus copy, or None when it has none."""
    path = Path(index_dir) / LINK_FILE
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MilvusError(f"{path}: unreadable ({e}); export again or remove it") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise MilvusError(f"{path}: not a deepbow Milvus link")
    try:
        return Link(str(d["uri"]), str(d["collection"]), str(d["index_state"]),
                    int(d["journal_seq"]))
    except (KeyError, TypeError, ValueError):
        raise MilvusError(f"{path}: missing or bad fields; export again") from None


def write_link(index_dir: str | Path, link: Link) -> None:
    atomic_write_text(Path(index_dir) / LINK_FILE,
                      json.dumps({"format": FORMAT, **asdict(link)}, ensure_ascii=False,
                                 indent=2) + "\n")


def _last_seq(records: list[dict]) -> int:
    return max((int(r["seq"]) for r in records), default=0)


def export_linked(cat, uri: str, collection: str, overwrite: bool = False,
                  shards: int | None = None, progress=None) -> int:
    """Export a catalogue (its journal's per-item weights included) into a collection and
    record it as the directory's copy; returns the rows written."""
    uri = check_uri(uri)
    records = journal_of(cat.path).read()
    state = index_state(cat.path)
    with export_catalogue(cat, uri, collection, overwrite=overwrite, progress=progress,
                          shards=shards) as mix:
        n = mix.count()
    write_link(cat.path, Link(uri, collection, state, _last_seq(records)))
    return n


def stale_reason(index_dir: str | Path, link: Link, records: list[dict] | None = None
                 ) -> str | None:
    """Why DIR's copy is behind the directory, or None when it is in step. `records`: the
    journal's, when the caller has just read them."""
    if link.index_state != index_state(index_dir):
        return "the index changed since it was written"
    if records is None:
        records = journal_of(index_dir).read()
    later = [r for r in records if r["seq"] > link.journal_seq and r["op"] in ITEM_OPS]
    if later:
        return f"{len(later)} per-item weight edit(s) or undo(s) since it was written"
    return None


def open_linked(index_dir: str | Path, model) -> MilvusCatalogue:
    """DIR's Milvus copy as a catalogue that applies DIR's journal; refused when behind."""
    link = read_link(index_dir)
    if link is None:
        raise MilvusError(f"{index_dir} has no Milvus copy: run `deepbow index export-milvus "
                          f"{index_dir} --collection NAME` first")
    why = stale_reason(index_dir, link)
    if why is not None:
        raise MilvusError(f"the Milvus copy of {index_dir} ({link.collection} at {link.uri}) is "
                          f"behind: {why}; run `deepbow index sync-milvus {index_dir}`")
    return MilvusCatalogue.open(link.uri, link.collection, model, journal=index_dir)


def sync(cat, changed_ids=None, before: str | None = None) -> str | None:
    """Bring the directory's copy in step (see the module docstring): `changed_ids` the ids
    an add, update or delete touched, `before` the index_state just before it. Returns what
    was done, or None when the directory has no copy."""
    link = read_link(cat.path)
    if link is None:
        return None
    records = journal_of(cat.path).read()
    now = index_state(cat.path)
    if link.index_state == now and stale_reason(cat.path, link, records) is None:
        write_link(cat.path, Link(link.uri, link.collection, now, _last_seq(records)))
        return f"{link.collection} at {link.uri}: in step"
    if link.index_state != now and not (changed_ids is not None
                                        and before == link.index_state):
        n = export_linked(cat, link.uri, link.collection, overwrite=True)
        return f"exported again: {n} items → {link.collection} at {link.uri}"
    with MilvusIndex.open(link.uri, link.collection) as mix:
        up = gone = 0
        if link.index_state != now:
            up, gone = mirror(cat, mix, changed_ids)
        edited = sync_item_edits(cat, mix, journal_records=records)
    write_link(cat.path, Link(link.uri, link.collection, now, _last_seq(records)))
    return (f"{link.collection} at {link.uri}: {up} upserted, {gone} deleted, "
            f"{edited} edited item(s) rewritten")
