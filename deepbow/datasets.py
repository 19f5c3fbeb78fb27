"""Training and evaluation pairs built from the shared data (../shared/data, see its README).

Splits are query-disjoint and deterministic: a query's part is a hash of its normalised text, so
the held-out parts are the same on every machine and no split file needs to be shipped.

E-commerce pairs come from the gold entity tags of the Taobao NER sets: a query is a title's
product word, optionally with its brand; another title's label follows from its entities:
same product and brand (or no brand asked) → 2, same product with another brand → 1, other
product → 0. Chinese compounds are head-final, so a product word that *ends* with the query's
(智能手机 for 手机) is the same product, while one that holds it elsewhere (手机壳, 鼠标垫) is
another product. Hard negatives are titles where the query's product word occurs only inside
such other product words: lexically close, but another product.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepbow.errors import InputError
from deepbow.locations import shared_data_dir
from deepbow.readers import Pair, read_pairs
from deepbow.text import normalize

PRODUCT_TAGS = {"HCCX": "product", "HC": "product", "HPPX": "brand", "HP": "brand",
                "XH": "model", "MISC": "misc"}

NER_TRAIN = ("ecommerce_ner/taobao_ner_train.txt", "ecommerce_ner/taobao_brandproduct_train.bieos")
NER_DEV = ("ecommerce_ner/taobao_ner_dev.txt", "ecommerce_ner/taobao_brandproduct_dev.bieos")


def split_of(query: str, salt: str = "deepbow-split-v1") -> int:
    """A stable bucket 0..99 for a query, the same on every machine."""
    h = hashlib.md5((salt + normalize(query)).encode("utf-8")).hexdigest()
    return int(h[:8], 16) % 100


# bucket ranges of split_of(query): test is never trained on nor tuned on.
SPLITS = {"train": range(0, 85), "valid": range(85, 90), "test": range(90, 100)}


def finetune_split(train_pairs: Sequence[Pair], valid_pairs: Sequence[Pair] | None
                   ) -> tuple[list[Pair], list[Pair]]:
    """(train, valid) for fine-tuning on a user's own pairs (both models): `valid_pairs` when
    given, else a query-disjoint 15% of `train_pairs` (the valid and test buckets) held out;
    refused when either part is empty."""
    if valid_pairs is None:
        held = set(SPLITS["valid"]) | set(SPLITS["test"])
        valid_pairs = [p for p in train_pairs if split_of(p.query) in held]
        train_pairs = [p for p in train_pairs if split_of(p.query) not in held]
    if not train_pairs or not valid_pairs:
        raise InputError("fine-tuning needs labelled training pairs and validation pairs (too "
                         "few queries to hold some out: give --valid)")
    return list(train_pairs), list(valid_pairs)


def qbqtc_pairs(split: str, data_dir: Path | None = None) -> list[Pair]:
    """QBQTC dev + pilot pairs whose query falls in `split` (query-disjoint)."""
    d = data_dir or shared_data_dir()
    out = []
    for name in ("qbqtc/dev.jsonl", "qbqtc/pilot.jsonl"):
        for p in read_pairs(d / name):
            if split_of(p.query) in SPLITS[split]:
                p.kind = "qbqtc"
                out.append(p)
    return out


@dataclass
class TaggedTitle:
    text: str
    entities: list[tuple[str, str]] = field(default_factory=list)  # (type, text), in order

    def of_type(self, typ: str) -> set[str]:
        return {t for ty, t in self.entities if ty == typ}


def read_ner_raw(path: str | Path) -> list[tuple[str, list[str]]]:
    """Parse a `char TAG` (BIO or BIOES) file, blank line between titles: (text, tags) each."""
    titles: list[tuple[str, list[str]]] = []
    chars: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if chars:
            titles.append(("".join(chars), list(tags)))
        chars.clear()
        tags.clear()

    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip():
                flush()
                continue
            parts = line.split("\t") if "\t" in line else line.rsplit(" ", 1)
            if len(parts) != 2:
                raise InputError(f"{path}:{lineno}: expected 'char TAG', got {line!r}")
            chars.append((parts[0] or " ")[0])
            tags.append(parts[1])
    flush()
    return titles


def read_ner(path: str | Path) -> list[TaggedTitle]:
    """Titles with their gold entities (type, normalised text), in order."""
    return [TaggedTitle(text, decode_spans(list(text), tags)) for text, tags in read_ner_raw(path)]


def span_positions(tags: list[str]) -> list[tuple[str, int, int]]:
    """(our type, start, end) of each entity in a BIO/BIOES tag list; a malformed I- starts a
    new span."""
    out: list[tuple[str, int, int]] = []
    cur_type: str | None = None
    start = 0

    def close(end: int) -> None:
        nonlocal cur_type
        if cur_type is not None:
            out.append((PRODUCT_TAGS.get(cur_type, cur_type.lower()), start, end))
        cur_type = None

    for i, t in enumerate(tags):
        pos, _, typ = t.partition("-")
        if pos in ("B", "S") or (pos in ("I", "E") and typ != cur_type):
            close(i)
            cur_type, start = typ, i
        elif pos not in ("I", "E"):
            close(i)
        if pos in ("E", "S"):
            close(i + 1)
    close(len(tags))
    return out


def decode_spans(chars: list[str], tags: list[str]) -> list[tuple[str, str]]:
    """Entity (type, normalised text) from BIO/BIOES tags, mapped to our types."""
    text = "".join(chars)
    out = []
    for typ, a, b in span_positions(tags):
        surface = normalize(text[a:b])
        if surface:
            out.append((typ, surface))
    return out


def ner_titles(which: str, data_dir: Path | None = None) -> list[TaggedTitle]:
    d = data_dir or shared_data_dir()
    files = NER_TRAIN if which == "train" else NER_DEV
    out: list[TaggedTitle] = []
    for f in files:
        out.extend(read_ner(d / f))
    return out


def ecommerce_pairs(titles: list[TaggedTitle], seed: int = 0, max_pos: int = 8,
                    max_brand: int = 4, max_hard: int = 8, n_random: int = 8,
                    min_titles: int = 2) -> list[Pair]:
    """Graded query–title pairs from tagged titles (see the module docstring)."""
    rng = random.Random(seed)
    by_product: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(titles):
        for p in t.of_type("product"):
            if len(p) >= 2:
                by_product[p].append(i)
    products = sorted(p for p, ids in by_product.items() if len(ids) >= min_titles)
    norm_titles = [normalize(t.text) for t in titles]
    containing = texts_containing(set(products), norm_titles)
    # titles whose product words end with p sell p too (智能手机 is a 手机)
    for p in products:
        extra = [i for i in containing.get(p, ()) if i not in by_product[p]
                 and any(x.endswith(p) for x in titles[i].of_type("product"))]
        by_product[p] = sorted(set(by_product[p]) | set(extra))
    pairs: list[Pair] = []
    seen: set[tuple[str, str]] = set()

    def add(q: str, i: int, label: int, kind: str) -> None:
        if (q, norm_titles[i]) not in seen:  # the sets repeat some titles
            seen.add((q, norm_titles[i]))
            pairs.append(Pair(q, titles[i].text, label, kind))

    for p in products:
        having = by_product[p]
        hard = [i for i in containing.get(p, ())
                if is_hard_negative(p, norm_titles[i], titles[i].of_type("product"))]
        # the bare product query: every title of the product is an exact match
        for i in rng.sample(having, min(max_pos, len(having))):
            add(p, i, 2, "ecom")
        for i in rng.sample(hard, min(max_hard, len(hard))):
            add(p, i, 0, "ecom-hard")
        for i in rng.sample(range(len(titles)), n_random):
            if i not in having and p not in norm_titles[i]:
                add(p, i, 0, "ecom")
        # product + brand queries: other brands of the same product are partial matches
        brands = sorted({b for i in having for b in titles[i].of_type("brand")})
        for b in rng.sample(brands, min(2, len(brands))):
            q = f"{b}{p}" if rng.random() < 0.5 else f"{b} {p}"
            same = [i for i in having if b in titles[i].of_type("brand") or b in norm_titles[i]]
            other = [i for i in having if titles[i].of_type("brand") and i not in same]
            for i in rng.sample(same, min(max_pos, len(same))):
                add(q, i, 2, "ecom")
            for i in rng.sample(other, min(max_brand, len(other))):
                add(q, i, 1, "ecom-brand")
            for i in rng.sample(hard, min(max_hard // 2, len(hard))):
                add(q, i, 0, "ecom-hard")
            for i in rng.sample(range(len(titles)), n_random // 2):
                if i not in having and p not in norm_titles[i]:
                    add(q, i, 0, "ecom")
    return pairs


def is_hard_negative(word: str, text: str, products: set[str]) -> bool:
    """True when `word` occurs in `text` only inside other product words that do not end with
    it (手机 in 手机壳), and the title sells no product ending with it."""
    if any(p.endswith(word) for p in products):
        return False
    hosts = sorted((p for p in products if word in p), key=len, reverse=True)
    if not hosts:
        return False
    for h in hosts:
        text = text.replace(h, "\x00")
    return word not in text


def texts_containing(words: set[str], texts: list[str]) -> dict[str, list[int]]:
    """For each word, the indices of the texts that contain it as a substring."""
    longest = max((len(w) for w in words), default=0)
    out: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        found = {text[a:b] for a in range(len(text))
                 for b in range(a + 2, min(len(text), a + longest) + 1)} & words
        for w in sorted(found):
            out[w].append(i)
    return out


def training_pairs(split: str, data_dir: Path | None = None, seed: int = 0) -> list[Pair]:
    """QBQTC (query-disjoint part) + e-commerce pairs from the NER *train* titles."""
    ecom = [p for p in ecommerce_pairs(ner_titles("train", data_dir), seed=seed)
            if split_of(p.query) in SPLITS[split]]
    return qbqtc_pairs(split, data_dir) + ecom


def evaluation_files(data_dir: Path | None = None) -> dict[str, list[Pair]]:
    """The files `deepbow data prepare` writes: ecom_dev.jsonl (NER dev titles, never trained
    on), qbqtc_test.jsonl (query-disjoint held-out QBQTC), train.jsonl and valid.jsonl."""
    return {"ecom_dev.jsonl": ecommerce_pairs(ner_titles("dev", data_dir), seed=1),
            "qbqtc_test.jsonl": qbqtc_pairs("test", data_dir),
            "train.jsonl": training_pairs("train", data_dir),
            "valid.jsonl": training_pairs("valid", data_dir)}


JUDGED_SPLIT_SALT = "deepbow-judged-split-v1"


def split_judged(pairs: list[Pair], share: float = 0.6) -> tuple[list[Pair], list[Pair]]:
    """A judged file in two query-disjoint parts (tune, check): within each query kind
    (qtype), queries (qid, or the query text) ordered by sha256(salt + ":" + qid); the first
    round(share · n) go to tune. Stratified, deterministic, independent of line order: the
    split the README's figures use (tune for choices and training, check to measure)."""
    if not 0.0 < share < 1.0:
        raise InputError(f"share must be between 0 and 1, got {share}")
    by_kind: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        by_kind[p.qtype].add(p.qid or p.query)
    tune: set[str] = set()
    for qids in by_kind.values():
        order = sorted(qids, key=lambda q: hashlib.sha256(
            f"{JUDGED_SPLIT_SALT}:{q}".encode()).hexdigest())
        tune |= set(order[:int(round(share * len(order)))])
    return ([p for p in pairs if (p.qid or p.query) in tune],
            [p for p in pairs if (p.qid or p.query) not in tune])


def write_pairs(pairs: list[Pair], path: str | Path) -> None:
    from deepbow.fileio import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n"
                                    for p in pairs))


def default_corpus(data_dir: Path | None = None,
                   titles: list[TaggedTitle] | None = None) -> list[str]:
    """The training texts (training parts only): QBQTC queries and titles, the NER train
    titles (`titles`, when already read), the MultiCPR train queries."""
    d = data_dir or shared_data_dir()
    corpus: list[str] = []
    for name in ("qbqtc/dev.jsonl", "qbqtc/pilot.jsonl"):
        for p in read_pairs(d / name):
            if split_of(p.query) in SPLITS["train"]:
                corpus += [p.query, p.title]
    corpus += [t.text for t in (titles if titles is not None else ner_titles("train", d))]
    with open(d / "multicpr_ecom/train.query.txt", encoding="utf-8") as fh:
        corpus += [line.split("\t", 1)[-1].strip() for line in fh]
    return corpus


def default_corpus_and_words(data_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """Texts for the vocabulary (default_corpus) and the jieba user dictionary words."""
    d = data_dir or shared_data_dir()
    titles = ner_titles("train", d)
    corpus = default_corpus(d, titles)
    words = set()
    for f in sorted((d / "gazetteers").glob("*.dic")):
        words |= {normalize(w) for w in f.read_text(encoding="utf-8").split("\n")}
    words |= {e for t in titles for ty, e in t.entities if ty in ("product", "brand")}
    # keep the dictionary words people actually write: those seen in the training texts
    words = {w for w in words if 2 <= len(w) <= 12}
    user = sorted(texts_containing(words, [normalize(t) for t in corpus]))
    return corpus, user


def product_lexicon(data_dir: Path | None = None) -> dict[str, float]:
    """The lexicon of DeepBoW's product-word priors (deepbow/priors.py): the gold product words
    of the NER train titles with their product rates, and the gazetteer product words that
    occur in the training texts (rate 0)."""
    from deepbow.priors import product_rates

    d = data_dir or shared_data_dir()
    titles = ner_titles("train", d)
    corpus = default_corpus(d, titles)  # the texts only: not the user words, costly and unused
    gazetteer = set()
    for f in sorted((d / "gazetteers").glob("product*.dic")):
        gazetteer |= {w for w in (normalize(x) for x in f.read_text(encoding="utf-8").split("\n"))
                      if 2 <= len(w) <= 12}
    seen = texts_containing(gazetteer, [normalize(t) for t in corpus])
    return product_rates(titles, sorted(seen))
