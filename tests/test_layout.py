"""The package layout the code keeps to: layers import one way, modules and functions stay
short enough to read at once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"deepbow": 0, "ebrm": 1, "index": 2, "cli": 3}
FACADE = ROOT / "deepbow" / "__init__.py"


def modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def imported_packages(path: Path) -> set[tuple[str, str]]:
    """(top-level package, full name) of every import in a module, at any depth (imports
    inside functions count: a lazy upward import is still an upward import)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {(a.name.split(".")[0], a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add((node.module.split(".")[0], node.module))
    return out


@pytest.mark.parametrize("path", modules("deepbow", "ebrm", "index", "cli"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_runs_up_a_layer(path):
    """Only the facade (deepbow/__init__.py) composes the layers; only the command line uses
    the facade."""
    if path == FACADE:
        return
    own = LAYERS[path.relative_to(ROOT).parts[0]]
    for top, full in imported_packages(path):
        if top in LAYERS:
            assert LAYERS[top] <= own, f"{path.name} imports {full} (a layer above)"
            if full == "deepbow" and own < LAYERS["cli"]:
                pytest.fail(f"{path.name} imports the facade `deepbow` (only cli/ may)")


@pytest.mark.slow
def test_importing_a_layer_loads_none_above():
    code = ("import sys, importlib\n"
            "def above(mods, names):\n"
            "    return [m for m in sys.modules if m.split('.')[0] in names]\n"
            "for m in ('deepbow.encoder', 'deepbow.train', 'deepbow.evaluate',"
            " 'deepbow.datasets', 'deepbow.readers', 'deepbow.modelfile'):\n"
            "    importlib.import_module(m)\n"
            "assert not above(sys.modules, ('ebrm', 'index', 'cli')), above(sys.modules,"
            " ('ebrm', 'index', 'cli'))\n"
            "for m in ('ebrm.model', 'ebrm.train', 'ebrm.calibrate', 'ebrm.hybrid'):\n"
            "    importlib.import_module(m)\n"
            "assert not above(sys.modules, ('index', 'cli')), above(sys.modules,"
            " ('index', 'cli'))\n"
            "import index.catalogue, index.rerank, index.studio\n"
            "assert not above(sys.modules, ('cli',))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", modules("deepbow", "ebrm", "index", "cli", "benchmarks"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_short(path):
    src = path.read_text(encoding="utf-8")
    assert len(src.splitlines()) <= 450, f"{path.name}: over 450 lines"
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            kernel = any("njit" in ast.unparse(d) for d in node.decorator_list)
            length = node.end_lineno - node.lineno + 1
            assert kernel or length <= 60, f"{path.name}:{node.lineno} {node.name}: {length} lines"
