import json
import shutil

import pytest

import deepbow
from deepbow.errors import ModelFileError


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(tiny_model_dir, dst)
    return dst


def test_missing_directory(tmp_path):
    with pytest.raises(ModelFileError, match="no model directory"):
        deepbow.load(tmp_path / "nope")


def test_not_a_model(tmp_path):
    with pytest.raises(ModelFileError, match="no manifest.json"):
        deepbow.load(tmp_path)


def test_corrupt_weights(model_copy):
    with open(model_copy / "weights.npz", "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00garbage\x00")
    with pytest.raises(ModelFileError, match="weights.npz: checksum mismatch"):
        deepbow.load(model_copy)


def test_truncated_vocab(model_copy):
    lines = (model_copy / "terms.txt").read_text(encoding="utf-8").splitlines()
    (model_copy / "terms.txt").write_text("\n".join(lines[:-3]) + "\n", encoding="utf-8")
    with pytest.raises(ModelFileError, match="terms.txt: checksum mismatch"):
        deepbow.load(model_copy)


def test_unknown_format_version(model_copy):
    m = json.loads((model_copy / "manifest.json").read_text(encoding="utf-8"))
    m["format_version"] = 99
    (model_copy / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(ModelFileError, match="format_version 99 is not supported"):
        deepbow.load(model_copy)


def test_corrupt_manifest(model_copy):
    (model_copy / "manifest.json").write_bytes(b"\xff\xfe{not json")
    with pytest.raises(ModelFileError, match="corrupt manifest"):
        deepbow.load(model_copy)


def test_mismatched_network(model_copy):
    from deepbow.encoder import FORMAT
    from deepbow.modelfile import model_id

    m = json.loads((model_copy / "manifest.json").read_text(encoding="utf-8"))
    m["net"]["dim"] = 32  # a consistent manifest whose network the weights do not fit
    m["model_id"] = model_id(FORMAT, m["files"], m)
    (model_copy / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(ModelFileError, match="has shape"):
        deepbow.load(model_copy)


def test_save_replaces_atomically(tiny_model, model_copy):
    before = set(p.name for p in model_copy.parent.iterdir())
    tiny_model.save(model_copy)
    assert set(p.name for p in model_copy.parent.iterdir()) == before  # no temp dirs left
    deepbow.load(model_copy)


def test_edited_scales_are_refused(model_copy):
    m = json.loads((model_copy / "manifest.json").read_text(encoding="utf-8"))
    m["scales"]["title"] *= 2
    (model_copy / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(ModelFileError, match="model_id does not match"):
        deepbow.load(model_copy)
