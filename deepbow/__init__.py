"""deepbow: interpretable lexical relevance for Chinese e-commerce search.

    import deepbow
    m = deepbow.load()                      # the shipped default model
    m.encode(["华为手机"])[0].as_dict()       # word → weight
    m.score("华为手机", ["华为mate60手机", "手机壳"])
    m.explain("华为手机", "华为mate60手机")

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
__all__ = ["load", "default_model_path", "DeepBowError", "InputError", "ModelFileError"]

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
