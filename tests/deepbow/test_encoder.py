import numpy as np
import pytest

import deepbow
from deepbow.errors import InputError
from deepbow.sparse import dot


def test_vectors_are_sparse_sorted_and_positive(tiny_model):
    vecs = tiny_model.encode(["华为新款手机防摔", "罗技鼠标垫", "苹果包邮耳机2024"], "title")
    for v in vecs:
        assert len(v) > 0
        assert np.all(np.diff(v.ids) > 0)
        assert np.all(v.weights > 0)
        assert len(v.words) == len(v)
        assert len(v) <= 16 + 16  # text terms + expansion top-k, never the vocabulary


def test_empty_and_non_chinese_text(tiny_model):
    empty, spaces, latin, emoji = tiny_model.encode(["", "   ", "iPhone 15 Pro Max", "🙂🙂"])
    assert len(empty) == 0 or empty.expanded.all()
    assert len(spaces) == len(empty)
    assert "iphone" in latin.words  # ASCII runs stay whole, lower-cased
    assert emoji.ids.dtype == np.int32
    assert tiny_model.score("", ["华为手机"]).shape == (1,)


def test_bad_arguments_are_refused(tiny_model):
    with pytest.raises(InputError, match="text 1"):
        tiny_model.encode(["手机", None])
    with pytest.raises(InputError, match="side"):
        tiny_model.encode(["手机"], "product")


def test_query_and_title_sides_differ_only_by_quantisation(tiny_model):
    (q,), (d,) = tiny_model.encode(["华为手机"], "query"), tiny_model.encode(["华为手机"], "title")
    common = np.intersect1d(q.ids, d.ids)
    assert len(common) >= len(d) - 1  # a tiny title weight may round to 0
    dq = dict(zip(q.ids.tolist(), q.weights, strict=True))
    for i, w in zip(d.ids.tolist(), d.weights, strict=True):
        assert abs(dq[i] - w) <= d.scale / 2 + q.scale / 2 + 1e-12


def test_score_equals_sum_of_explain(tiny_model):
    for q, t in [("华为手机", "华为新款手机防摔"), ("小米鼠标", "罗技正品鼠标垫超薄"),
                 ("耳机", "苹果包邮耳机2024")]:
        ex = tiny_model.explain(q, t)
        assert ex.score == pytest.approx(sum(r.contribution for r in ex.rows), abs=1e-12)
        assert ex.score == pytest.approx(float(tiny_model.score(q, [t])[0]), rel=1e-6)
        for r in ex.rows:
            assert r.contribution == pytest.approx(r.query_weight * r.title_weight, rel=1e-6)


def test_score_pairs_matches_score(tiny_model):
    titles = ["华为新款手机防摔", "罗技鼠标垫", "小米充电宝大容量"]
    a = tiny_model.score("华为手机", titles)
    b = tiny_model.score_pairs([("华为手机", t) for t in titles])
    # a text's batch-mates change float rounding only (≈1e-9), never the terms
    np.testing.assert_allclose(a, b, rtol=1e-6)
    q = tiny_model.encode(["华为手机"], "query")[0]
    d = tiny_model.encode([titles[0]], "title")[0]
    assert a[0] == dot(q, d)
    assert d.codes.max() <= 255 and q.codes.max() <= 4095


def test_learns_the_synthetic_task(tiny_model):
    from deepbow.metrics import auc
    from tests.conftest import synthetic_pairs

    pairs = synthetic_pairs(2)  # titles neither trained nor calibrated on
    s = tiny_model.score_pairs([(p.query, p.title) for p in pairs])
    y = np.array([p.label for p in pairs])
    assert auc(s, y >= 1) > 0.9
    assert auc(s, y == 2) > 0.75


def test_labels_follow_thresholds(tiny_model):
    t1, t2 = tiny_model.thresholds
    assert t1 <= t2
    assert tiny_model.label([t1 - 1e-9, t1, t2]).tolist() == [0, 1, 2]


def test_save_load_round_trip_gives_identical_scores(tiny_model, tiny_model_dir):
    loaded = deepbow.load(tiny_model_dir)
    titles = ["华为新款手机防摔", "罗技鼠标垫超薄", "", "abc"]
    np.testing.assert_array_equal(loaded.score("华为手机", titles),
                                  tiny_model.score("华为手机", titles))
    assert loaded.thresholds == tuple(tiny_model.thresholds)
    assert loaded.model_id == tiny_model.model_id


def test_query_l1_norm_keeps_each_ranking(tiny_model):
    titles = ["华为新款手机防摔", "罗技鼠标垫", "小米正品手机超薄", "耐克夏季运动鞋包邮"]
    before = {q: tiny_model.score(q, titles) for q in ("华为手机", "罗技鼠标")}
    old = (tiny_model.query_norm, dict(tiny_model.scales))
    try:
        tiny_model.query_norm = "l1"
        tiny_model.fit_scales(titles + ["华为手机", "罗技鼠标"])
        q = tiny_model.encode(["华为手机"], "query")[0]
        assert q.weights.sum() == pytest.approx(1.0, abs=len(q) * q.scale)
        for query, s in before.items():
            after = tiny_model.score(query, titles)
            assert list(np.argsort(-after, kind="stable")) == list(np.argsort(-s, kind="stable"))
    finally:
        tiny_model.query_norm, tiny_model.scales = old[0], old[1]


def test_hard_negative_repeat_is_read_from_toml_and_checked(tmp_path):
    from deepbow.config import TrainConfig
    from deepbow.readers import Pair
    from deepbow.train import train_model

    f = tmp_path / "c.toml"
    f.write_text("[train]\nhard_negative_repeat = 3\n", encoding="utf-8")
    assert TrainConfig.from_toml(f).train.hard_negative_repeat == 3
    f.write_text("[train]\nhard_negative_repeat = 0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="hard_negative_repeat"):
        train_model([Pair("手机", "手机壳", 0, "ecom-hard")], [], [], [],
                    TrainConfig.from_toml(f))


@pytest.mark.slow
def test_training_on_l1_normalised_queries_ships_that_normalisation():
    from tests.conftest import tiny_config, train_tiny

    cfg = tiny_config(0)
    cfg.train.epochs, cfg.train.train_query_l1 = 3, True
    m = train_tiny(cfg=cfg)
    assert m.query_norm == "l1"
    assert list(m.manifest["calibration"]["auc_ge1_by_option"]) == ["l1"]
    q = m.encode(["华为手机"], "query")[0]
    assert abs(float((q.codes * q.scale).sum()) - 1.0) < 0.05  # weights sum to one


@pytest.mark.slow
def test_sigmoid_title_weights_are_memberships_and_round_trip(tmp_path):
    from deepbow.config import NetParams, TrainConfig
    from deepbow.encoder import DeepBoW
    from tests.conftest import tiny_config, train_tiny

    cfg = tiny_config(0)
    cfg.net.title_weights, cfg.train.epochs = "sigmoid", 4
    m = train_tiny(cfg=cfg)
    long_title = "华为新款手机防摔" + "包邮正品超薄" * 4
    raw_t = [w for _, w, _, _ in m._encode_raw(["华为新款手机防摔", long_title], "title")]
    raw_q = [w for _, w, _, _ in m._encode_raw(["华为新款手机防摔"], "query")]
    assert all(((w > 0) & (w < 1)).all() for w in raw_t)  # each term its own weight in (0, 1)
    assert not np.allclose(np.sort(raw_t[0]), np.sort(raw_q[0]))  # the sides are weighted apart
    ex = m.explain("华为手机", long_title)
    assert ex.score == pytest.approx(sum(r.contribution for r in ex.rows), rel=1e-6)
    m.save(tmp_path / "sig")
    loaded = DeepBoW.load(tmp_path / "sig")
    assert loaded.net.cfg.title_weights == "sigmoid"
    titles = ["华为新款手机防摔", long_title, ""]
    np.testing.assert_array_equal(loaded.score("华为手机", titles), m.score("华为手机", titles))
    with pytest.raises(ValueError, match="title_weights"):
        NetParams(title_weights="max")
    f = tmp_path / "c.toml"
    f.write_text('[net]\ntitle_weights = "max"\n', encoding="utf-8")
    with pytest.raises(InputError, match="title_weights"):
        TrainConfig.from_toml(f)


@pytest.mark.slow
def test_pairwise_loss_puts_exact_matches_above_hard_negatives():
    import torch

    from deepbow.readers import Pair
    from deepbow.train import hard_triples, pair_loss
    from tests.conftest import synthetic_pairs, tiny_config, train_tiny

    pairs = [Pair("手机", "华为手机", 2, "ecom"), Pair("手机", "手机壳", 0, "ecom-hard"),
             Pair("手机", "耐克鞋", 0, "ecom"), Pair("鼠标", "罗技鼠标", 2, "ecom")]
    assert hard_triples(pairs) == [("手机", "华为手机", "手机壳")]
    cfg = tiny_config(0)
    cfg.train.epochs, cfg.train.pair_weight, cfg.train.pair_batch = 3, 1.0, 8
    cfg.train.validate_every = 7
    train, valid = synthetic_pairs(0), synthetic_pairs(1)
    m = train_tiny(cfg=cfg)
    steps = [h["step"] for h in m.manifest["history"]]
    per_epoch = len(train) // cfg.train.batch_size
    assert steps == sorted({*range(7, 3 * per_epoch, 7), per_epoch, 2 * per_epoch, 3 * per_epoch})
    triples = hard_triples(valid)
    cache = {}

    def features(texts):
        from deepbow.featurize import Featurizer
        fs = [cache.setdefault(t, m.featurizer(t)) for t in texts]
        return {k: torch.from_numpy(v) for k, v in Featurizer.collate(fs).items()}

    with torch.no_grad():
        trained = float(pair_loss(m.net, features, triples))
        swapped = float(pair_loss(m.net, features, [(q, b, a) for q, a, b in triples]))
    assert trained < np.log(2) < swapped  # the order it learned, scored both ways


def test_a_compound_word_yields_its_head_but_not_its_modifier():
    from deepbow.vocab import Vocabulary

    v = Vocabulary(["<pad>", "鼠标", "无线鼠标", "鼠标垫", "手机", "华为智能手机"], ["<pad>"], 8)
    assert v.head_word("无线鼠标") == "鼠标"
    assert v.head_word("华为智能手机") == "手机"  # the longest known ending
    assert v.head_word("鼠标垫") is None and v.head_word("鼠标") is None
    assert v.head_word("iphone") is None
    with_heads = {t.surface: t.positions for t in v.text_terms(["罗技", "无线鼠标"], None, True)}
    assert with_heads["鼠标"] == [(0, 1)] and "无线鼠标" in with_heads
    assert "鼠标" not in {t.surface for t in v.text_terms(["罗技", "无线鼠标"])}
    assert "鼠标" not in {t.surface for t in v.text_terms(["鼠标垫"], None, True)}


@pytest.mark.slow
def test_calibration_chooses_the_expansion_and_a_model_without_it_adds_no_words(tmp_path):
    from deepbow.encoder import DeepBoW
    from tests.conftest import train_tiny

    m = train_tiny()  # a model of its own: the test changes it
    options = m.manifest["calibration"]["auc_ge1_by_option"]
    assert set(options) == {"none", "l1", "none, no expansion", "l1, no expansion"}
    m.expansion = False
    vecs = m.encode(["华为手机", "罗技鼠标垫超薄"], "query")
    assert all(not v.expanded.any() for v in vecs)
    m.save(tmp_path / "noexp")
    loaded = DeepBoW.load(tmp_path / "noexp")
    assert loaded.expansion is False
    np.testing.assert_array_equal(loaded.score("华为手机", ["华为新款手机防摔", "罗技鼠标垫"]),
                                  m.score("华为手机", ["华为新款手机防摔", "罗技鼠标垫"]))


@pytest.mark.slow
def test_fine_tuning_on_judged_pairs_changes_scores_and_round_trips(tiny_model_dir, tmp_path):
    from deepbow.config import TrainParams
    from deepbow.readers import Pair
    from deepbow.train import train_on_pairs
    from tests.conftest import synthetic_pairs

    judged = [Pair(p.query, p.title, p.label, esci="ESI"[2 - p.label] if p.label else "I")
              for p in synthetic_pairs(3)]
    tp = TrainParams(epochs=2, batch_size=16, lr=3e-3, threads=1, calibrate_on="all")
    tuned = train_on_pairs(tiny_model_dir, judged, None, tp, tmp_path / "ft")
    before = deepbow.load(tiny_model_dir)
    q, titles = "华为手机", ["华为新款手机防摔", "小米正品手机超薄", "罗技鼠标垫"]
    assert not np.array_equal(tuned.score(q, titles), before.score(q, titles))
    again = deepbow.load(tmp_path / "ft")
    assert np.array_equal(again.score(q, titles), tuned.score(q, titles))
    assert again.manifest["train_config"]["init_model_id"] == before.model_id
