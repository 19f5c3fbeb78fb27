"""Writes that fail: a full disk at every write of every command, a read-only index, a
journal write cut short, an import with a bad record, a rebuild over other files or while an
edit is appended. Each is an `Error:` line (exit 1); the index and the journal stay as they
were, with no orphan files; nothing acknowledged is lost."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import threading
import time

import pytest

from index.catalogue import Catalogue
from index.editor import append_edit, journal_of
from tests.conftest import ITEMS, write_jsonl
from tests.reliability.conftest import clean_error, state


class Faults:
    """Counts the durable steps of a write (file creations, fsyncs, journal writes) and makes
    step `fail_at` fail with `err`, as a full disk (ENOSPC) or read-only folder would."""

    def __init__(self, monkeypatch, fail_at: int | None = None, err: int = errno.ENOSPC):
        self.calls, self.fail_at, self.err = 0, fail_at, err
        real_fsync, real_mkstemp, real_pwrite = os.fsync, tempfile.mkstemp, os.pwrite

        def step(name: str) -> None:
            self.calls += 1
            if self.calls == self.fail_at:
                raise OSError(self.err, os.strerror(self.err))

        def fsync(fd):
            step("fsync")
            return real_fsync(fd)

        def mkstemp(*a, **k):
            step("create")
            return real_mkstemp(*a, **k)

        def pwrite(fd, data, offset):
            step("write")
            return real_pwrite(fd, data, offset)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(os, "pwrite", pwrite)


def listing(path) -> set[str]:
    return {p.name for p in path.iterdir()} - {".lock"}


WRITES = {
    "index add": lambda p, t: ("index", "add", p, t / "new.jsonl"),
    "index update": lambda p, t: ("index", "update", p, t / "upd.jsonl"),
    "index delete": lambda p, t: ("index", "delete", p, "a1", "a2"),
    "index compact": lambda p, t: ("index", "compact", p),
    "weights set": lambda p, t: ("weights", "set", p, "a1", "华为", "0.5"),
    "weights ban": lambda p, t: ("weights", "ban", p, "包邮"),
    "weights import": lambda p, t: ("weights", "import", p, t / "edits.jsonl"),
}


def prepare(cat, tmp_path):
    """An index with a deletion, a second segment and an edit, so compact has work; and the
    input files of WRITES."""
    cat.delete(["a7"])
    cat.add([{"id": "b1", "title": "华为手机壳", "brand": "华为"}])
    cat.editor.set_weight("a2", "手机", 0.3)
    write_jsonl(tmp_path / "new.jsonl", [{"id": "n1", "title": "小米手机"},
                                         {"id": "n2", "title": "罗技鼠标"}])
    write_jsonl(tmp_path / "upd.jsonl", [{"id": "a3", "title": "耐克运动鞋"}])
    cat.editor.export(tmp_path / "edits.jsonl")


@pytest.mark.parametrize("command", WRITES)
def test_a_full_disk_at_every_write_step_loses_nothing_and_leaves_no_file(
        cat, cli, tiny_model, tmp_path, monkeypatch, command):
    prepare(cat, tmp_path)
    args = WRITES[command](cat.path, tmp_path)
    with monkeypatch.context() as m:  # how many durable steps the command takes
        dry = Faults(m)
        scratch = tmp_path / "scratch"
        shutil.copytree(cat.path, scratch)
        assert cli(*WRITES[command](scratch, tmp_path)).exit_code == 0
        n_steps = dry.calls
    assert n_steps >= 1
    before, files = state(cat.path, tiny_model), listing(cat.path)
    for fail_at in range(1, n_steps + 1):
        with monkeypatch.context() as m:
            Faults(m, fail_at)
            r = cli(*args)
        clean_error(r, "No space left on device")
        assert state(cat.path, tiny_model) == before, (command, fail_at)
        assert listing(cat.path) == files, (command, fail_at)
    assert cli(*args).exit_code == 0  # and with space again, the command works
    assert state(cat.path, tiny_model) != before


def test_a_short_journal_write_is_an_error_and_the_journal_is_cut_back(cat, cli, monkeypatch):
    cat.editor.ban("包邮")
    journal = cat.path / "edits.jsonl"
    data = journal.read_bytes()
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, b, off: real(fd, b[:len(b) // 2], off))
    clean_error(cli("weights", "set", cat.path, "a1", "华为", "0.5"), "not saved",
                "journal is as it was")
    monkeypatch.undo()
    assert journal.read_bytes() == data
    assert [r["op"] for r in journal_of(cat.path).read()] == ["ban"]


@contextlib.contextmanager
def read_only(monkeypatch, folder):
    """Every open for writing under `folder` fails with EROFS, as on a read-only mount
    (chmod does not stop root, who runs CI here)."""
    real_open, real_mkstemp = os.open, tempfile.mkstemp
    root = str(folder)

    def ro_open(path, flags, *a, **k):
        if str(path).startswith(root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *a, **k)

    def ro_mkstemp(*a, dir=None, **k):
        if str(dir).startswith(root):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*a, dir=dir, **k)

    with monkeypatch.context() as m:
        m.setattr(os, "open", ro_open)
        m.setattr(tempfile, "mkstemp", ro_mkstemp)
        yield


def test_a_read_only_index_refuses_every_write_and_still_answers_reads(
        cat, cli, tiny_model, tmp_path, monkeypatch):
    prepare(cat, tmp_path)
    (cat.path / ".lock").unlink(missing_ok=True)
    write_jsonl(tmp_path / "cat.jsonl", ITEMS)
    writes = [WRITES[c](cat.path, tmp_path) for c in WRITES] + [
        ("index", "build", tmp_path / "cat.jsonl", "--out", cat.path, "--overwrite"),
        ("weights", "undo", cat.path, "1"),
        ("weights", "link", cat.path, "手机", "鼠标")]
    before = state(cat.path, tiny_model)
    with read_only(monkeypatch, cat.path):
        for args in writes:
            clean_error(cli(*args), "Read-only file system")
        for args in [("search", cat.path, "华为手机"), ("index", "verify", cat.path),
                     ("index", "stats", cat.path), ("weights", "log", cat.path),
                     ("weights", "show", cat.path, "a1"),
                     ("weights", "export", cat.path, tmp_path / "out.jsonl")]:
            assert cli(*args).exit_code == 0, args
    assert state(cat.path, tiny_model) == before


def test_import_checks_the_whole_file_first_then_appends_all_or_nothing(cat, cli, tmp_path):
    cat.editor.ban("包邮")
    good = [{"v": 1, "seq": i, "op": "scale", "args": {"word": "手机", "factor": 2.0},
             "by": "ann"} for i in (1, 2, 3)]
    bad = {"v": 1, "seq": 4, "op": "set", "args": {"item": "nope", "word": "手机",
                                                    "weight": 0.5}}
    write_jsonl(tmp_path / "in.jsonl", [*good, bad])
    before = (cat.path / "edits.jsonl").read_bytes()
    clean_error(cli("weights", "import", cat.path, tmp_path / "in.jsonl"), "edit #4",
                "unknown item")
    assert (cat.path / "edits.jsonl").read_bytes() == before
    write_jsonl(tmp_path / "in.jsonl", good)
    assert cli("weights", "import", cat.path, tmp_path / "in.jsonl").exit_code == 0
    assert [r["op"] for r in journal_of(cat.path).read()] == ["ban"] + ["scale"] * 3


def test_overwrite_replaces_only_an_index(cli, cat, tmp_path, monkeypatch):
    write_jsonl(tmp_path / "cat.jsonl", ITEMS)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    clean_error(cli("index", "build", tmp_path / "cat.jsonl", "--out", folder, "--overwrite"),
                "not an index")
    (cat.path / "notes.txt").write_text("mine")
    clean_error(cli("index", "build", tmp_path / "cat.jsonl", "--out", cat.path, "--overwrite"),
                "holds files that are not the index's", "notes.txt")
    (cat.path / "notes.txt").unlink()
    monkeypatch.chdir(cat.path)
    clean_error(cli("index", "build", tmp_path / "cat.jsonl", "--out", ".", "--overwrite"),
                "current directory")
    monkeypatch.chdir(tmp_path)
    assert (folder / "thesis.txt").read_text() == "years of work"
    cat.editor.ban("包邮")
    assert cli("index", "build", "cat.jsonl", "--out", "ix", "--overwrite").exit_code == 0
    assert [r["op"] for r in journal_of(cat.path).read()] == ["ban"]


def test_an_edit_appended_while_a_rebuild_swaps_the_index_is_kept(cat, tiny_model, monkeypatch):
    """The rebuild copies the journal under its lock; an edit that waited for the lock then
    finds the journal replaced and appends to the new one."""
    import index.inverted

    cat.editor.ban("包邮")
    done: list[dict] = []
    real_copy = shutil.copy2

    def copy_while_an_edit_waits(src, dst, *a, **k):
        t = threading.Thread(target=lambda: done.append(
            append_edit(journal_of(cat.path), "ban", {"word": "正品"}, by="other")))
        t.start()
        time.sleep(0.3)  # the other writer is now blocked on the journal's lock
        assert not done
        copy_while_an_edit_waits.thread = t
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(index.inverted.shutil, "copy2", copy_while_an_edit_waits)
    Catalogue.build(tiny_model, ITEMS, cat.path, overwrite=True)
    copy_while_an_edit_waits.thread.join(10)
    assert done and done[0]["seq"] == 2
    recs = journal_of(cat.path).read()
    assert [(r["seq"], r["args"]["word"]) for r in recs] == [(1, "包邮"), (2, "正品")]
    assert json.loads((cat.path / "edits.jsonl").read_text().splitlines()[-1])["by"] == "other"
