"""Fixtures of the reliability suite: the CLI on the tiny model, and the checks the suite shares
(the index of the test catalogue, `cat`, is in tests/conftest.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import main
from index.catalogue import Catalogue


@pytest.fixture
def cli(tiny_model, tiny_model_dir, monkeypatch):
    """cli(*args) → click Result, with --model the tiny model (loaded once: the session's
    object stands in for a load from disk, which spends 2 s re-initialising jieba). An
    exception that is not SystemExit (a traceback in real life) fails the test at once."""
    import deepbow

    monkeypatch.setattr(deepbow, "load", lambda path=None: tiny_model)
    runner = CliRunner()

    def invoke(*args, model: bool = True):
        extra = ["--model", str(tiny_model_dir)] if model else []
        return runner.invoke(main, [str(a) for a in args] + extra, catch_exceptions=False)

    return invoke


def clean_error(result, *needles: str) -> None:
    """Exit status 1, one `Error: ...` line naming the problem, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.output
    for n in needles:
        assert n in last, (n, last)


def orphan_files(path) -> set[str]:
    """Files in an index folder that its manifest does not list, beyond the manifest, the lock
    and the journal: what a write that failed or was killed must never leave behind."""
    listed = set(json.loads((path / "manifest.json").read_text())["files"])
    return {p.name for p in path.iterdir()} - listed - {"manifest.json", ".lock", "edits.jsonl"}


def state(cat_path, model) -> tuple:
    """What an acknowledged change would alter: items, segments, deletions, the journal."""
    c = Catalogue.open(cat_path, model, verify=True)
    items = sorted((it["id"], it["title"]) for it in (c.item(d) for d in c.id_map().values()))
    return (items, [s.uid for s in c.index.segments], list(c.index.deleted),
            [(r["seq"], r["op"], r["args"]) for r in c.editor.log()])
