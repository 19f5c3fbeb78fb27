"""The append-only edit journal of an index: `<index>/edits.jsonl`, one JSON record a line.

Appends hold an exclusive lock on the journal, read it, validate the new record against it,
write one line with a single write, check that all of it reached the file, and fsync: a failed
or short write (a full disk) is an error and the journal is cut back to what it was, so an
acknowledged record is never lost and a refused one never half-written. A line torn by a crash
(no newline at the end) is ignored on read and cut off by the next append. A line in the middle
that cannot be read is an error naming its line.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from deepbow.errors import DeepBowError, InputError
from deepbow.readers import decode_line, parse_json

JOURNAL = "edits.jsonl"
FORMAT_VERSION = 1
CheckArgs = Callable[[str, object], dict]


class EditError(DeepBowError):
    """An edit is refused (the message says why) or a journal cannot be read."""


def parse_records(data: bytes, where: str, check: CheckArgs) -> list[dict]:
    """The records of a journal's bytes; a torn last line (no newline) is left out. Each
    record is checked as an edit is when it is made (`check(op, args)` returns the arguments,
    normalised, or raises EditError), so a damaged or hand-edited line is an error naming
    its line, never a crash later in a replay."""
    lines = data.split(b"\n")
    lines.pop()  # b"" when the data ends with a newline; else a torn last write, ignored
    out: list[dict] = []
    for n, raw in enumerate(lines, 1):
        try:
            text = decode_line(raw, f"{where}:{n}", first=n == 1)
            if not text.strip():
                continue
            rec = parse_json(text, f"{where}:{n}")
        except InputError as e:
            raise EditError(f"unreadable journal line: {e}") from None
        out.append(_record(rec, f"{where}:{n}", out[-1]["seq"] if out else 0, check))
    return out


def _record(rec: object, where: str, last_seq: int, check: CheckArgs) -> dict:
    if not isinstance(rec, dict):
        raise EditError(f"{where}: not a journal record")
    v = rec.get("v")
    if v != FORMAT_VERSION:
        raise EditError(f"{where}: journal format version {v!r}; this deepbow "
                        f"reads version {FORMAT_VERSION} (written by another version?)")
    seq = rec.get("seq")
    if not isinstance(rec.get("op"), str) or not isinstance(seq, int) or isinstance(seq, bool) \
            or "args" not in rec:
        raise EditError(f"{where}: record without an op, a seq and its args")
    if seq <= last_seq:
        raise EditError(f"{where}: seq {seq} does not follow {last_seq}")
    try:
        args = check(rec["op"], rec["args"])
    except EditError as e:
        raise EditError(f"{where}: {e}") from None
    if rec["op"] == "undo" and args["target"] >= seq:
        raise EditError(f"{where}: undo of #{args['target']}, not an earlier edit")
    for key in ("by", "reason", "ts"):
        if not isinstance(rec.get(key, ""), str):
            raise EditError(f"{where}: {key!r} must be a string")
    if not isinstance(rec.get("figures", {}), dict):
        raise EditError(f"{where}: 'figures' must be an object")
    return {"by": "", "reason": "", "ts": "", "figures": {}, **rec, "args": args}


class Journal:
    """The journal file of one index. `check_args(op, args)` checks one record's arguments
    (index/edits.py), for every record read; `append`'s `check(records, new)` also validates
    a new record against the journal as it stands (EditError refuses it)."""

    def __init__(self, path: str | Path, check_args: CheckArgs) -> None:
        self.path = Path(path)
        self.check_args = check_args

    def signature(self) -> tuple[int, int]:
        """(size, mtime_ns): changes whenever anyone appends."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_size, st.st_mtime_ns)

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise EditError(f"{self.path}: cannot read the journal ({e.strerror})") from None
        return parse_records(data, str(self.path), self.check_args)

    def append(self, entries: Sequence[dict], check: Callable[[list[dict], dict], dict]
               ) -> list[dict]:
        """Append records made from `entries` ({"op", "args", "by", "reason", "figures",
        ...}) under the lock: each numbered, stamped and checked against the journal with
        the earlier ones of the batch; all of them are written, or none."""
        fd = self._open_locked()
        try:
            size, records = self._read_locked(fd)
            new = []
            for entry in entries:
                rec = {"v": FORMAT_VERSION, "seq": (records[-1]["seq"] + 1) if records else 1,
                       "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
                rec["args"] = check(records, rec)
                records.append(rec)
                new.append(rec)
            self._write_locked(fd, size, new)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return new

    def _open_locked(self) -> int:
        """The journal open and locked. A rebuild of the index (`index build --overwrite`)
        carries the journal over by copying it under this lock and swapping the folder: a
        writer that waited for the lock then holds the old file and opens the new one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise EditError(f"{self.path}: cannot open the journal ({e.strerror})") \
                    from None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read_locked(self, fd: int) -> tuple[int, list[dict]]:
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0) if size else b""
        if data and not data.endswith(b"\n"):  # a torn write from a crash: drop it
            size = data.rfind(b"\n") + 1
            os.ftruncate(fd, size)
            data = data[:size]
        return size, parse_records(data, str(self.path), self.check_args)

    def _write_locked(self, fd: int, size: int, records: list[dict]) -> None:
        try:  # NaN or Infinity would make the journal unreadable: JSON has no such numbers
            blob = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n"
                           for r in records).encode()
        except ValueError as e:
            raise EditError(f"the edit was not saved: {e}") from None
        try:
            written = os.pwrite(fd, blob, size)
            if written != len(blob):
                raise OSError(28, f"short write ({written} of {len(blob)} bytes)")
            os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise EditError(f"{self.path}: the edit was not saved ({e.strerror or e}); the "
                            "journal is as it was") from None
