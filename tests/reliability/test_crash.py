"""kill -9 at every step of a write: before each rename, fsync, journal write, truncation and
removal of add, update, delete, compact and weights set, and in the middle of a journal
write. After each, the index opens and verifies, it holds either all of the change or none
of it, and the next write leaves no orphan file behind."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

import index.catalogue
from index.catalogue import Catalogue, encode_items
from tests.reliability.conftest import orphan_files
from tests.reliability.conftest import state as full_state

STEPS = ("replace", "fsync", "pwrite", "ftruncate", "unlink")


def killed_at(fn, kill_at: int, torn: bool = False) -> int:
    """Run fn in a forked child that SIGKILLs itself at its `kill_at`-th step (a torn journal
    write: half of it written first); returns its exit code (-9 when killed)."""
    pid = os.fork()
    if pid == 0:  # the child: no torch here, a fork of a process that ran it can hang
        try:
            count = [0]
            for name in STEPS:
                real = getattr(os, name)

                def step(*a, _real=real, _name=name):
                    count[0] += 1
                    if count[0] == kill_at:
                        if torn and _name == "pwrite":
                            _real(a[0], a[1][:len(a[1]) // 2], a[2])
                        os.kill(os.getpid(), signal.SIGKILL)
                    return _real(*a)

                setattr(os, name, step)
            fn()
            os._exit(0)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def state(path, model) -> tuple:
    """Items, number of segments, deletions and journal (segment uids are random)."""
    items, segs, deleted, journal = full_state(path, model)
    return items, len(segs), deleted, journal


def files_after_next_write(path, model) -> set[str]:
    cat = Catalogue.open(path, model)
    cat.delete([next(iter(cat.id_map()))])
    return orphan_files(path)


def recorder(steps: list, name: str, real):
    def step(*a):
        steps.append(name)
        return real(*a)

    return step


NEW = [{"id": "n1", "title": "小米手机"}, {"id": "n2", "title": "罗技鼠标"}]
OPS = {
    "index add": lambda cat: cat.add(NEW),
    "index update": lambda cat: cat.update([{"id": "a3", "title": "耐克运动鞋"}]),
    "index delete": lambda cat: cat.delete(["a1", "a2"]),
    "index compact": lambda cat: cat.compact(),
    "weights set": lambda cat: cat.editor.set_weight("a2", "手机", 0.2),
}


@pytest.mark.slow
@pytest.mark.parametrize("op", OPS)
def test_kill_9_at_every_step_keeps_the_index_whole(cat, tiny_model, tmp_path, monkeypatch,
                                                    op):
    cat.delete(["a7"])
    cat.add([{"id": "b1", "title": "华为手机壳"}])
    cat.editor.set_weight("a1", "华为", 0.3)
    codes = {json.dumps(x): encode_items(tiny_model, x, 64) for x in (NEW, [
        {"id": "a3", "title": "耐克运动鞋"}])}
    monkeypatch.setattr(index.catalogue, "encode_items",  # the child must not run torch
                        lambda model, items, *a, **k: codes[json.dumps(items)])
    before = state(cat.path, tiny_model)
    scratch = tmp_path / "scratch"
    shutil.copytree(cat.path, scratch)
    steps = []
    with monkeypatch.context() as m:  # the steps the operation takes, by name
        for name in STEPS:
            m.setattr(os, name, recorder(steps, name, getattr(os, name)))
        OPS[op](Catalogue.open(scratch, tiny_model))
    after = state(scratch, tiny_model)
    assert after != before
    seen = set()
    kill_at = 0
    while True:
        kill_at += 1
        torn_too = kill_at <= len(steps) and steps[kill_at - 1] == "pwrite"
        for torn in (False, True) if torn_too else (False,):
            work = tmp_path / f"k{kill_at}{torn}"
            shutil.copytree(cat.path, work)
            code = killed_at(lambda w=work: OPS[op](Catalogue.open(w, tiny_model)), kill_at,
                             torn)
            assert code in (0, -signal.SIGKILL), code
            now = state(work, tiny_model)  # opens with verify=True
            assert now in (before, after), (op, kill_at, torn)
            if code == 0:
                assert now == after
            seen.add(now == after)
            assert files_after_next_write(work, tiny_model) == set(), (op, kill_at)
            shutil.rmtree(work)
        if code == 0:
            break
    assert kill_at == len(steps) + 1 > 2 and seen == {False, True}
