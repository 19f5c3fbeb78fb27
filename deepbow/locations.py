"""Where things are: the one place that reads environment variables and default locations.

    DEEPBOW_MODEL        a DeepBoW model directory (default: the shipped deepbow-default)
    DEEPBOW_EBRM_MODEL   an EBRM model directory (default: the shipped ebrm-default)
    DEEPBOW_CACHE        folder of the persistent QE caches (default: ~/.cache/deepbow)
    DEEPBOW_DATA         the shared data folder for training and evaluation
                         (default: ../shared/data beside the source checkout)
    DEEPBOW_MILVUS_TOKEN the token of a Milvus server or cluster (never written to a file)

The shipped models and the sample catalogue are package data (the top-level data/ folder,
installed as the package `deepbow_data`), found with importlib.resources, so a normal
`pip install .` works from any directory; a source checkout that is not installed falls back
to its own data/ folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from deepbow.errors import InputError

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The folder of the shipped models and the sample catalogue."""
    try:
        from importlib.resources import files

        found = Path(str(files("deepbow_data")))
        if (found / "models").is_dir():
            return found
    except (ModuleNotFoundError, TypeError):
        pass
    return SOURCE_ROOT / "data"


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def default_model_path() -> Path:
    """$DEEPBOW_MODEL, else the shipped DeepBoW model."""
    return _env_path("DEEPBOW_MODEL") or data_dir() / "models" / "deepbow-default"


def default_ebrm_path() -> Path:
    """$DEEPBOW_EBRM_MODEL, else the shipped EBRM model."""
    return _env_path("DEEPBOW_EBRM_MODEL") or data_dir() / "models" / "ebrm-default"


def sample_catalogue_path() -> Path:
    return data_dir() / "sample_catalogue.jsonl"


def default_cache_dir() -> Path:
    """$DEEPBOW_CACHE, else ~/.cache/deepbow; refused when it names something that is not a
    folder (a file there would make every cache open fail later with a worse message)."""
    path = _env_path("DEEPBOW_CACHE") or Path.home() / ".cache" / "deepbow"
    if path.exists() and not path.is_dir():
        raise InputError(f"cache folder {path} (DEEPBOW_CACHE) is not a folder")
    return path


def shared_data_dir() -> Path:
    """The shared data: $DEEPBOW_DATA, else ../shared/data beside the source checkout."""
    env = _env_path("DEEPBOW_DATA")
    if env:
        return env
    for cand in (SOURCE_ROOT.parent / "shared" / "data", SOURCE_ROOT / "shared" / "data"):
        if cand.is_dir():
            return cand
    raise InputError("shared data not found: set DEEPBOW_DATA to the folder holding qbqtc/ etc.")


def milvus_token() -> str | None:
    """$DEEPBOW_MILVUS_TOKEN: a Milvus server's token (user:password or an API key)."""
    return os.environ.get("DEEPBOW_MILVUS_TOKEN") or None
