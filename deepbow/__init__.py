"""deepbow: interpretable lexical relevance for Chinese e-commerce search.

    import deepbow
    m = deepbow.load()                      # the shipped default model
    m.encode(["华为手机"])[0].as_dict()       # word → weight
    m.score("华为手机", ["华为mate60手机", "手机壳"])
    m.explain("华为手机", "华为mate60手机")

    e = deepbow.load_ebrm()                  # the entity-based model (EBRM)
    e.entities(["华为mate60手机 黑色"])
    e.explain("华为手机", "华为mate60手机").to_text()
    h = deepbow.load_scorer("hybrid")        # DeepBoW + EBRM; same score/explain interface

torch is imported only when a model is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from deepbow.errors import DeepBowError, InputError, ModelFileError

if TYPE_CHECKING:
    from deepbow.encoder import DeepBoW

__version__ = "0.1.0"
__all__ = ["load", "load_ebrm", "load_scorer", "default_model_path", "default_ebrm_path",
           "SCORERS", "DeepBowError", "InputError", "ModelFileError"]
SCORERS = ("deepbow", "ebrm", "hybrid")

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"


def default_model_path() -> Path:
    """$DEEPBOW_MODEL if set, else the model shipped in data/models/deepbow-default."""
    env = os.environ.get("DEEPBOW_MODEL")
    return Path(env) if env else DATA_DIR / "models" / "deepbow-default"


def load(path: str | Path | None = None) -> DeepBoW:
    """Load a DeepBoW model directory (checked: format, version, checksums, shapes)."""
    from deepbow.encoder import DeepBoW

    return DeepBoW.load(path or default_model_path())


def default_ebrm_path() -> Path:
    """$DEEPBOW_EBRM_MODEL if set, else the model shipped in data/models/ebrm-default."""
    env = os.environ.get("DEEPBOW_EBRM_MODEL")
    return Path(env) if env else DATA_DIR / "models" / "ebrm-default"


def load_ebrm(path: str | Path | None = None, cache: str | Path | bool | None = True):
    """Load an EBRM model; cache: True = the persistent QE cache for this model (under
    $DEEPBOW_CACHE or ~/.cache/deepbow), a path = that SQLite file, None = memory only."""
    from ebrm.model import EBRM

    return EBRM.load(path or default_ebrm_path(), cache=cache)


def load_scorer(kind: str = "deepbow", model: str | Path | None = None,
                ebrm: str | Path | None = None, cache: str | Path | bool | None = True):
    """"deepbow", "ebrm" or "hybrid": an object with score(query, titles), score_pairs(pairs),
    label(scores) and explain(query, title)."""
    if kind == "deepbow":
        return load(model)
    if kind == "ebrm":
        return load_ebrm(ebrm, cache)
    if kind == "hybrid":
        from ebrm.hybrid import Hybrid

        return Hybrid(load(model), load_ebrm(ebrm, cache))
    raise InputError(f"unknown scorer {kind!r}: use one of {', '.join(SCORERS)}")
