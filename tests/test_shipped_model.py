"""The shipped default model: it loads, the demo runs, and its metrics on a fixed held-out
slice stay where they were measured (regression pins; update them with the model)."""

import numpy as np
import pytest
from click.testing import CliRunner

import deepbow
from cli.main import main

MODEL = deepbow.default_model_path()
needs_model = pytest.mark.skipif(not (MODEL / "manifest.json").is_file(),
                                 reason="no shipped model in data/models/deepbow-default")


@pytest.fixture(scope="module")
def model():
    return deepbow.load()


@needs_model
def test_loads_and_encodes(model):
    q, t = model.encode(["华为手机"], "query")[0], model.encode(["华为手机"], "title")[0]
    assert 0 < len(q) <= 40 and 0 < len(t) <= 40
    assert "华为" in q.words
    assert model.thresholds[0] < model.thresholds[1]


@needs_model
@pytest.mark.slow
def test_demo_runs():
    r = CliRunner().invoke(main, ["demo", "手机", "鼠标"], catch_exceptions=False)
    assert r.exit_code == 0
    assert "indexed 300 products" in r.output and "1." in r.output
    # for 手机 the phones come first, not a phone's waterproof bag, data top-up or photo print
    phone = r.output.split("query: 手机")[1].split("query:")[0]
    top2 = [line for line in phone.splitlines() if line.lstrip()[:2] in ("1.", "2.")]
    assert len(top2) == 2 and all(w not in line for line in top2
                                  for w in ("防水袋", "流量", "照片", "手机壳"))


@needs_model
def test_product_word_inside_another_product_ranks_lower(model):
    s = model.score("鼠标", ["罗技无线鼠标 静音办公", "超大鼠标垫 加厚锁边桌垫"])
    assert s[0] > s[1]
    s = model.score("手机", ["华为mate60 5g手机 官方正品", "手机壳 适用华为mate60 防摔"])
    assert s[0] > 2 * s[1]


def shared_or_skip():
    from deepbow.errors import InputError
    from deepbow.locations import shared_data_dir

    try:
        return shared_data_dir()
    except InputError:
        pytest.skip("../shared/data not present")


def dev_slice() -> tuple[list, np.ndarray]:
    """The held-out slice the pins were measured on (the first 2,000 pairs made from the dev
    titles with seed 1) and its labels; skips the test without ../shared/data."""
    from deepbow.datasets import ecommerce_pairs, ner_titles

    pairs = ecommerce_pairs(ner_titles("dev", shared_or_skip()), seed=1)[:2000]
    return pairs, np.array([p.label for p in pairs])


@needs_model
@pytest.mark.shared_data
@pytest.mark.slow
def test_pinned_metrics_on_ecom_dev_slice(model):
    from deepbow.metrics import auc

    pairs, y = dev_slice()
    s = model.score_pairs([(p.query, p.title) for p in pairs])
    assert auc(s, y >= 1) == pytest.approx(PINNED["ecom_auc_ge1"], abs=0.002)
    assert auc(s, y == 2) == pytest.approx(PINNED["ecom_auc_eq2"], abs=0.002)


PINNED = {"ecom_auc_ge1": 0.9945, "ecom_auc_eq2": 0.9919}  # the shipped model's figures


EBRM_DIR = deepbow.default_ebrm_path()
needs_ebrm = pytest.mark.skipif(not (EBRM_DIR / "manifest.json").is_file(),
                                reason="no shipped model in data/models/ebrm-default")
PINNED_EBRM = {"ebrm": (0.9967, 0.9948), "hybrid": (0.9984, 0.9969)}


@needs_model
@needs_ebrm
@pytest.mark.shared_data
@pytest.mark.slow
def test_shipped_ebrm_tags_explains_and_keeps_its_figures():
    from deepbow.metrics import auc

    e = deepbow.load_ebrm(cache=None)
    ents = e.entities(["华为mate60 pro 5g手机 官方正品"])[0]
    tagged = {(x.type, x.text) for x in ents if x.conf >= 1}
    assert {("brand", "华为"), ("product", "手机")} <= tagged
    ex = e.explain("华为手机", "小米14 5g手机 官方正品")
    assert ex.label < 2 and any(r.type == "brand" and r.c < 0.5 for r in ex.rows)
    h = deepbow.load_scorer("hybrid", cache=None)  # calibrated against the shipped DeepBoW
    pairs, y = dev_slice()
    for name, m in (("ebrm", e), ("hybrid", h)):
        s = m.score_pairs([(p.query, p.title) for p in pairs])
        assert auc(s, y >= 1) == pytest.approx(PINNED_EBRM[name][0], abs=0.002), name
        assert auc(s, y == 2) == pytest.approx(PINNED_EBRM[name][1], abs=0.002), name
