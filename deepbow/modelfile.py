"""A model on disk: a directory with manifest.json, weights.npz, terms.txt, chars.txt, userdict.txt.

The manifest records the format and its version, the network config, the calibrated thresholds,
how the model was trained, and a sha256 of every file; load() checks all of it and says exactly
what is wrong. Weights are plain arrays (no pickles); the large embedding tables are stored as
float16 to keep the file small, and the model is calibrated after that rounding, so the shipped
numbers are the numbers users get. Saving writes a temp directory, then renames it into place.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepbow import fileio
from deepbow.errors import ModelFileError
from deepbow.fileio import sha256_file

FORMAT = "deepbow-model"
FORMAT_VERSION = 1
FILES = ("weights.npz", "terms.txt", "chars.txt", "userdict.txt")
HALF = ("term_emb.weight", "char_emb.weight")


def write_lines(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            if "\n" in line:
                raise ValueError(f"line with a newline: {line!r}")
            fh.write(line + "\n")


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return fh.read().split("\n")[:-1]


def save_model_dir(path: str | Path, state: dict[str, np.ndarray], terms: list[str],
                   chars: list[str], user_words: list[str], manifest: dict) -> str:
    """Write a model directory atomically; returns the model id (hash of its files)."""
    with fileio.staged_dir(path) as tmp:
        arrays = {k: (v.astype(np.float16) if k in HALF else v) for k, v in state.items()}
        np.savez(tmp / "weights.npz", **arrays)
        write_lines(tmp / "terms.txt", terms)
        write_lines(tmp / "chars.txt", chars)
        write_lines(tmp / "userdict.txt", user_words)
        files = {f: sha256_file(tmp / f) for f in FILES}
        model_id = compute_model_id(files, manifest)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_id": model_id,
                    **manifest, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2),
                                           encoding="utf-8")
    return model_id


# manifest keys that change a text's vector: an index built under other values is invalid
VECTOR_KEYS = ("net", "scales", "query_norm", "min_weight")


def compute_model_id(files: dict[str, str], manifest: dict) -> str:
    """A hash of the files and of every manifest value that changes a vector."""
    import hashlib

    blob = json.dumps({"files": files, **{k: manifest.get(k) for k in VECTOR_KEYS}},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def read_manifest(path: str | Path) -> dict:
    return fileio.read_manifest(path, FORMAT, FORMAT_VERSION, "model", ModelFileError)


def load_model_dir(path: str | Path, verify: bool = True):
    """Read and check a model directory: (manifest, arrays, terms, chars, user_words)."""
    path = Path(path)
    manifest = read_manifest(path)
    files = manifest.get("files", {})
    if verify and manifest.get("model_id") != compute_model_id(files, manifest):
        raise ModelFileError(f"{path / 'manifest.json'}: model_id does not match its contents "
                             f"(edited manifest?)")
    fileio.check_listed_files(path, FILES, manifest, verify, ModelFileError)
    try:
        with np.load(path / "weights.npz", allow_pickle=False) as z:
            arrays = {k: z[k].astype(np.float32) if z[k].dtype == np.float16 else z[k]
                      for k in z.files}
    except Exception as e:  # zipfile/npy errors come in many types
        raise ModelFileError(f"{path / 'weights.npz'}: unreadable ({e})") from None
    return (manifest, arrays, read_lines(path / "terms.txt"), read_lines(path / "chars.txt"),
            read_lines(path / "userdict.txt"))
