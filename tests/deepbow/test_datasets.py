"""Pair generation and parsing rules (no shared data needed)."""

import pytest

from deepbow.datasets import (
    Pair,
    TaggedTitle,
    decode_spans,
    ecommerce_pairs,
    is_hard_negative,
    read_ner,
    read_pairs,
    split_of,
)
from deepbow.errors import InputError


def test_decode_bio_and_bioes():
    chars = list("华为手机壳包邮")
    assert decode_spans(chars, ["B-HPPX", "I-HPPX", "B-HCCX", "I-HCCX", "I-HCCX", "O", "O"]) == \
        [("brand", "华为"), ("product", "手机壳")]
    assert decode_spans(chars, ["B-HP", "E-HP", "B-HC", "I-HC", "E-HC", "S-HC", "O"]) == \
        [("brand", "华为"), ("product", "手机壳"), ("product", "包")]
    # a stray I- starts a new span rather than being dropped
    assert decode_spans(list("手机"), ["I-HCCX", "I-HCCX"]) == [("product", "手机")]


def test_read_ner_names_a_bad_line(tmp_path):
    (tmp_path / "x.txt").write_text("华 B-HPPX\n为 I-HPPX\n\n手B-HCCX\n", encoding="utf-8")
    with pytest.raises(InputError, match="x.txt:4"):
        read_ner(tmp_path / "x.txt")


def test_head_final_hard_negatives():
    assert is_hard_negative("手机", "华为手机壳防摔", {"手机壳"})
    assert not is_hard_negative("手机", "智能手机 老人机", {"智能手机"})  # a kind of 手机
    assert not is_hard_negative("手机", "手机壳 送手机支架", {"手机壳"})  # 手机 outside it too
    assert not is_hard_negative("手机", "手机壳", {"手机壳", "手机"})


def test_ecommerce_pair_labels():
    titles = [TaggedTitle("华为手机正品", [("brand", "华为"), ("product", "手机")]),
              TaggedTitle("小米手机新款", [("brand", "小米"), ("product", "手机")]),
              TaggedTitle("华为手机壳", [("brand", "华为"), ("product", "手机壳")]),
              TaggedTitle("罗技鼠标", [("brand", "罗技"), ("product", "鼠标")]),
              TaggedTitle("雷蛇鼠标", [("brand", "雷蛇"), ("product", "鼠标")])]
    pairs = ecommerce_pairs(titles, n_random=4)
    got = {(p.query.replace(" ", ""), p.title): (p.label, p.kind) for p in pairs}
    assert got[("手机", "华为手机正品")] == (2, "ecom")
    assert got[("手机", "华为手机壳")] == (0, "ecom-hard")
    assert got.get(("华为手机", "小米手机新款"), (1, "ecom-brand")) == (1, "ecom-brand")
    assert all(p.label in (0, 1, 2) for p in pairs)


def test_split_is_stable_and_query_disjoint():
    assert split_of("华为手机") == split_of(" 华为手机 ")  # normalised
    assert 0 <= split_of("x") < 100


def test_read_pairs_errors(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"query": "a", "title": "b", "label": "x"}\n')
    with pytest.raises(InputError, match="p.jsonl:1: label 'x'"):
        list(read_pairs(tmp_path / "p.jsonl"))
    (tmp_path / "p.jsonl").write_text('{"query": "a", "title": "b", "label": "2"}\n')
    assert list(read_pairs(tmp_path / "p.jsonl")) == [Pair("a", "b", 2, "")]


@pytest.mark.parametrize("line,message", [
    ('{"query": "a", "title": "b", "esci": "X"}', "not 0, 1, 2 or an ESCI letter"),
    ('{"title": "b", "esci": "E"}', 'needs string fields "query" and "title"'),
    ('{"query": "a", "title": "b", "esci": "E", "label": 0}', "disagrees with esci"),
    ('{"query": "a", "title": "b", "label": 2.7}', "label 2.7"),
    ('{"query": "a", "title": "b", "label": true}', "label True"),
    ('{"query": "a", "title": "b", "label": Infinity}', "not valid JSON"),
])
def test_bad_judged_lines_name_the_line(tmp_path, line, message):
    (tmp_path / "j.jsonl").write_text('{"query": "a", "title": "b", "esci": "S"}\n' + line + "\n")
    with pytest.raises(InputError, match="j.jsonl:2: .*" + message.replace("(", r"\(")):
        list(read_pairs(tmp_path / "j.jsonl"))


def test_judged_lines_read_letters_grades_kinds_and_a_bom(tmp_path):
    (tmp_path / "j.jsonl").write_bytes(
        '\ufeff{"qid": 7, "query": "手机", "qtype": "product", "title": "t", "esci": "e"}\n'
        '{"query": "手机", "title": "u", "label": "1.0"}\n'.encode())
    a, b = read_pairs(tmp_path / "j.jsonl")
    assert (a.qid, a.esci, a.label, a.qtype) == ("7", "E", 2, "product") and b.label == 1


def test_finetune_split_holds_out_whole_queries_or_refuses():
    from deepbow.datasets import SPLITS, finetune_split

    pairs = [Pair(f"查询{i}", f"标题{i}{j}", j % 3) for i in range(60) for j in range(3)]
    train, valid = finetune_split(pairs, None)
    held = set(SPLITS["valid"]) | set(SPLITS["test"])
    assert valid and all(split_of(p.query) in held for p in valid)
    assert {p.query for p in train}.isdisjoint({p.query for p in valid})
    assert len(train) + len(valid) == len(pairs)
    given = pairs[:3]
    assert finetune_split(pairs, given) == (pairs, given)  # given validation pairs: all kept
    with pytest.raises(InputError, match="give --valid"):
        finetune_split(pairs[:1], None)


def _tiny_shared_data(d):
    """The files default_corpus reads, a few lines each."""
    (d / "qbqtc").mkdir()
    lines = [f'{{"query": "查询{i}", "title": "标题{i}", "label": 1}}\n' for i in range(20)]
    (d / "qbqtc/dev.jsonl").write_text("".join(lines[:10]), encoding="utf-8")
    (d / "qbqtc/pilot.jsonl").write_text("".join(lines[10:]), encoding="utf-8")
    (d / "ecommerce_ner").mkdir()
    title = [("华", "B-HPPX"), ("为", "I-HPPX"), ("手", "B-HCCX"), ("机", "I-HCCX")]
    ner = "\n".join(f"{c} {t}" for c, t in title) + "\n\n"
    (d / "ecommerce_ner/taobao_ner_train.txt").write_text(ner * 2, encoding="utf-8")
    (d / "ecommerce_ner/taobao_brandproduct_train.bieos").write_text(ner, encoding="utf-8")
    (d / "multicpr_ecom").mkdir()
    (d / "multicpr_ecom/train.query.txt").write_text("1\t手机壳\n2\t华为\n", encoding="utf-8")
    (d / "gazetteers").mkdir()
    (d / "gazetteers/product.dic").write_text("手机\n手机壳\n", encoding="utf-8")


def test_default_corpus_is_the_corpus_of_default_corpus_and_words(tmp_path):
    from deepbow.datasets import default_corpus, default_corpus_and_words, product_lexicon

    _tiny_shared_data(tmp_path)
    corpus, words = default_corpus_and_words(tmp_path)
    assert default_corpus(tmp_path) == corpus
    assert "华为手机" in corpus and "手机壳" in corpus and "手机" in words
    assert product_lexicon(tmp_path) == {"手机": 1.0, "手机壳": 0.0}
