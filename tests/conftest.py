"""Shared fixtures: a tiny DeepBoW model trained in the test session on synthetic pairs.

It needs neither ../shared nor the shipped model, and trains in a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from deepbow.config import NetParams, TrainConfig, TrainParams, VocabConfig
from deepbow.readers import Pair

PRODUCTS = ["手机", "手机壳", "鼠标", "鼠标垫", "连衣裙", "运动鞋", "充电宝", "耳机"]
BRANDS = ["华为", "小米", "苹果", "耐克", "罗技", "韩都"]
FILLERS = ["新款", "正品", "包邮", "2024", "防摔", "超薄", "大容量", "夏季"]
# a small catalogue for the index tests
ITEMS = [
    {"id": "a1", "title": "华为新款手机防摔", "brand": "华为", "product": "手机"},
    {"id": "a2", "title": "小米正品手机超薄", "brand": "小米", "product": "手机"},
    {"id": "a3", "title": "华为新款手机壳防摔", "brand": "华为", "product": "手机壳"},
    {"id": "a4", "title": "罗技正品鼠标垫超薄", "brand": "罗技", "product": "鼠标垫"},
    {"id": "a5", "title": "罗技包邮鼠标2024", "brand": "罗技", "product": "鼠标"},
    {"id": "a6", "title": "耐克夏季运动鞋包邮", "brand": "耐克", "product": "运动鞋"},
    {"id": "a7", "title": "苹果大容量充电宝", "brand": "苹果", "product": "充电宝"},
]


def synthetic_titles(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    out = []
    for _ in range(n):
        p, b = rng.choice(PRODUCTS), rng.choice(BRANDS)
        fill = rng.sample(FILLERS, 2)
        out.append((b + fill[0] + p + fill[1], p, b))
    return out


def synthetic_pairs(seed: int, n_titles: int = 80) -> list[Pair]:
    rng = random.Random(seed)
    titles = synthetic_titles(rng, n_titles)
    pairs = []
    for p in PRODUCTS:
        for b in rng.sample(BRANDS, 2):
            q = b + p
            for text, tp, tb in titles:
                if tp == p:
                    pairs.append(Pair(q, text, 2 if tb == b else 1, "ecom"))
                elif p in tp or tp in p:
                    pairs.append(Pair(q, text, 0, "ecom-hard"))
                elif rng.random() < 0.2:
                    pairs.append(Pair(q, text, 0, "ecom"))
    return pairs


def tiny_config(expansion_k: int = 4) -> TrainConfig:
    return TrainConfig(
        vocab=VocabConfig(max_words=500, min_word_count=1, max_phrases=50, min_phrase_count=2,
                          n_buckets=64),
        net=NetParams(dim=16, layers=1, heads=2, ff=32, dropout=0.0, max_chars=32, max_words=16,
                      expansion_k=expansion_k, expansion_vocab=64),
        train=TrainParams(epochs=12, batch_size=16, lr=3e-3, flops_weight=1e-3, seed=0, threads=1,
                          time_budget_minutes=2, calibrate_on="all"),
    )


def train_tiny(expansion_k: int = 4, cfg=None):
    """A tiny model trained on the synthetic pairs, with `cfg` (default tiny_config)."""
    from deepbow.train import train_model

    train, valid = synthetic_pairs(0), synthetic_pairs(1)
    corpus = [p.title for p in train] + [p.query for p in train]
    return train_model(train, valid, corpus, PRODUCTS + BRANDS, cfg or tiny_config(expansion_k))


@pytest.fixture(scope="session")
def tiny_model():
    return train_tiny()


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny"
    tiny_model.save(path)
    return path


@pytest.fixture
def cat(tiny_model, tmp_path):
    """An index of ITEMS, built afresh for each test under tmp_path/ix."""
    from index.catalogue import Catalogue

    return Catalogue.build(tiny_model, ITEMS, tmp_path / "ix")


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def synthetic_gold(seed: int, n: int) -> list:
    """Titles brand + filler + product + filler with their gold entity spans."""
    from ebrm.lexicon import Entity

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        b, p = rng.choice(BRANDS), rng.choice(PRODUCTS)
        f1, f2 = rng.sample(FILLERS, 2)
        pb = len(b) + len(f1)
        out.append((b + f1 + p + f2, [Entity("brand", b, 0, len(b)),
                                      Entity("product", p, pb, pb + len(p))], False))
    return out


def tiny_ebrm_config():
    """The shipped recipe's shape, with fewer epochs and smaller batches for 240 titles."""
    from ebrm.config import EbrmConfig

    cfg = EbrmConfig()
    cfg.tagger.epochs = 6
    cfg.qe.pretrain_epochs, cfg.qe.batch_size = 16, 32
    cfg.finetune.epochs, cfg.finetune.batch_size = 3, 16
    return cfg


def ebrm_split(text: str) -> str:
    return "valid" if hashlib.md5(text.encode()).digest()[0] < 64 else "train"


@pytest.fixture(scope="session")
def tiny_ebrm_dir(tmp_path_factory):
    """A tiny EBRM trained by the real three-stage code on synthetic titles, saved."""
    import torch

    from ebrm.lexicon import Lexicon
    from ebrm.train import train_from_titles

    torch.set_num_threads(1)
    gold = synthetic_gold(0, 240)
    lexicon = Lexicon(PRODUCTS[:4], BRANDS[:3])  # a partial gazetteer, as in real life
    model = train_from_titles(gold, [t for t, _, _ in gold], lexicon, tiny_ebrm_config(),
                              split=ebrm_split, log=lambda s: None)
    path = tmp_path_factory.mktemp("ebrm") / "tiny-ebrm"
    model.save(path)
    return path
