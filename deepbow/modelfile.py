"""The one model-directory format, for DeepBoW and EBRM alike.

A model is a directory: manifest.json, weights.npz (plain arrays, no pickles) and text files of
one item a line (vocabularies, word lists). The manifest records the format and its version, a
sha256 of every file and the model id: a hash of the files and of the manifest values that
change what the model computes (each format names its own `id_keys`), so an index or a cache
built by one model is never used with another. Loading checks all of it and says exactly what
is wrong. Saving writes a temp directory, then renames it into place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepbow.errors import ModelFileError
from deepbow.fileio import check_listed_files, read_manifest, sha256_file, staged_dir


@dataclass(frozen=True)
class ModelFormat:
    """A kind of model directory: its format name and version, its files (weights.npz plus the
    named text files), the manifest keys its id covers, and which arrays it stores as float16
    (large embedding tables: the model is calibrated after that rounding)."""

    name: str
    version: int
    what: str
    text_files: tuple[str, ...]
    id_keys: tuple[str, ...]
    half: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()  # text files a model may lack (added by later versions)

    @property
    def files(self) -> tuple[str, ...]:
        return ("weights.npz", *self.text_files)


def write_lines(path: Path, lines: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            if "\n" in line:
                raise ValueError(f"line with a newline: {line!r}")
            fh.write(line + "\n")


def read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().split("\n")[:-1]
    except (OSError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: unreadable ({e})") from None


def model_id(fmt: ModelFormat, files: dict[str, str], manifest: dict) -> str:
    """A hash of the files and of every manifest value in fmt.id_keys (a key the manifest lacks
    counts as null, except one added after the format's first models: it is left out, so
    their ids stay what they were)."""
    late = ("priors",)
    blob = json.dumps({"files": files, **{k: manifest.get(k) for k in fmt.id_keys
                                          if k in manifest or k not in late}},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def save_model_dir(path: str | Path, fmt: ModelFormat, arrays: dict[str, np.ndarray],
                   texts: dict[str, Sequence[str]], manifest: dict) -> dict:
    """Write a model directory atomically; returns the manifest written (with its model id)."""
    manifest = {k: v for k, v in manifest.items()
                if k not in ("format", "format_version", "model_id", "files")}
    with staged_dir(path) as tmp:
        np.savez(tmp / "weights.npz",
                 **{k: (v.astype(np.float16) if k in fmt.half else v) for k, v in arrays.items()})
        names = [*fmt.files, *(n for n in fmt.optional if n in texts)]
        for name in names[1:]:
            write_lines(tmp / name, texts[name])
        files = {f: sha256_file(tmp / f) for f in names}
        manifest = {"format": fmt.name, "format_version": fmt.version,
                    "model_id": model_id(fmt, files, manifest), **manifest, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2),
                                           encoding="utf-8")
    return manifest


def load_model_dir(path: str | Path, fmt: ModelFormat, verify: bool = True
                   ) -> tuple[dict, dict[str, np.ndarray], dict[str, list[str]]]:
    """Read and check a model directory: (manifest, float32/int arrays, text files' lines)."""
    path = Path(path)
    manifest = read_manifest(path, fmt.name, fmt.version, fmt.what, ModelFileError)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ModelFileError(f"{path / 'manifest.json'}: no file list")
    if verify and manifest.get("model_id") != model_id(fmt, files, manifest):
        raise ModelFileError(f"{path / 'manifest.json'}: model_id does not match its contents "
                             f"(edited manifest?)")
    present = [n for n in fmt.optional if n in files]
    check_listed_files(path, [*fmt.files, *present], manifest, verify, ModelFileError)
    try:
        with np.load(path / "weights.npz", allow_pickle=False) as z:
            arrays = {k: _widen(z[k]) for k in z.files}  # z[k] reads the array from the zip
    except Exception as e:  # zipfile/npy errors come in many types
        raise ModelFileError(f"{path / 'weights.npz'}: unreadable ({e})") from None
    return manifest, arrays, {name: read_lines(path / name)
                              for name in [*fmt.text_files, *present]}


def _widen(a: np.ndarray) -> np.ndarray:
    """float16 tables back to float32 (what the networks compute in); others as stored."""
    return a.astype(np.float32) if a.dtype == np.float16 else a
