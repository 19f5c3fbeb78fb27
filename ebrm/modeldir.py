"""EBRM's model directory (the one format of deepbow/modelfile.py): weights.npz holds the
tagger's and the cross-encoder's arrays (prefixed "tagger." and "qe."), chars.txt the character
vocabulary both read, products.txt and brands.txt the gazetteer lexicon the tagger was trained
with. The manifest records both networks' shapes, the logic and the recipe (config)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepbow.errors import ModelFileError
from deepbow.modelfile import ModelFormat, load_model_dir

FORMAT = ModelFormat("ebrm-model", 1, "EBRM model", ("chars.txt", "products.txt", "brands.txt"),
                     id_keys=("family",))


def load_tagger(path: str | Path, verify: bool = True):
    """Only the tagger of an EBRM directory (to keep it while retraining the rest)."""
    return read_model_dir(Path(path), verify)[2]


def read_model_dir(path: Path, verify: bool):
    """manifest, weight arrays (torch) and the tagger of an EBRM directory; checked."""
    import torch

    from deepbow.charvocab import CharVocab
    from ebrm import tagger as tagger_mod
    from ebrm.lexicon import Lexicon

    manifest, arrays, texts = load_model_dir(path, FORMAT, verify)
    arrays = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    vocab = CharVocab(texts["chars.txt"])
    lexicon = Lexicon(texts["products.txt"], texts["brands.txt"])
    tcfg = dict(manifest.get("tagger", {}))
    word_features = bool(tcfg.pop("word_features", False))
    net = tagger_mod.build_net(len(vocab), **tcfg)
    fit_weights(net, arrays, "tagger.", path)
    return manifest, arrays, tagger_mod.Tagger(net, vocab, lexicon, word_features=word_features)


def fit_weights(net, arrays: dict, prefix: str, path: Path) -> None:
    sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    try:
        net.load_state_dict(sub)
    except RuntimeError as e:
        raise ModelFileError(f"{path}: weights do not fit the network "
                             f"({str(e).splitlines()[0]})") from None
