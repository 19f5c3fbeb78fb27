"""Product-word priors: which word of a query is the thing asked for, and which product word a
title sells. They re-weigh a text's own terms before quantisation, so a score is still the sum
over matched words of query weight × title weight, shown word by word by explain.

- Query head (`query_head` = κ > 0): a shopper's query is a product word with modifiers
  (北京bj40轮胎, 浪漫蜡烛灯); the learned query weights, trained on "product ± brand" queries, can
  put a modifier first (北京 0.76 against 轮胎 0.45). The query's head product word (its last word
  that the product lexicon calls a product at least `min_rate` of the time; a query with none,
  such as most web searches, is left alone) and the terms inside it (its head term, its
  character bigrams) are scaled up so that together they weigh at least κ × the rest of the
  query; never down.
- Title secondary products (`title_secondary` = μ < 1): a title's product words other than its
  main product (its last product word that is not a bundle word) weigh μ × their weight: the
  手机 of a 手机防水袋 listing, the 玩具 of a 玩具柜.

The lexicon (products.txt in the model directory, `word<TAB>rate`): each gold product word of the
NER train titles with the share of the train titles containing it whose tags call it a product,
and the gazetteer product words found in the training texts (rate 0: known, no evidence).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

BUNDLE_WORDS = frozenset({"套装", "组合", "套件", "两件套", "三件套", "四件套", "套餐", "礼盒",
                          "礼盒装", "整箱", "批发", "包邮", "一件代发", "配件", "用品", "系列",
                          "款", "新款", "正品"})


@dataclass
class PriorParams:
    query_head: float = 0.0  # κ; 0: off
    min_rate: float = 0.5  # τ: how often a word must be tagged a product to head a query
    title_secondary: float = 1.0  # μ; 1: off

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def active(self) -> bool:
        return self.query_head > 0 or self.title_secondary != 1.0


class ProductPriors:
    """The priors of one model: its lexicon, its parameters, its vocabulary and segmenter."""

    def __init__(self, rates: dict[str, float], params: PriorParams, vocab, segmenter) -> None:
        self.rates = rates
        self.params = params
        self.vocab = vocab
        self.segmenter = segmenter

    def rate(self, word: str) -> float:
        """The word's product rate, or its head term's; −1 for a word the lexicon lacks."""
        head = self.vocab.head_word(word)
        return max(self.rates.get(word, -1.0), self.rates.get(head, -1.0) if head else -1.0)

    def apply(self, norm_text: str, side: str, w: np.ndarray, terms: Sequence[str]
              ) -> np.ndarray:
        """The weights of a text's terms (surfaces `terms`) with the side's prior applied."""
        if side == "query" and self.params.query_head > 0:
            return self._query(norm_text, w, terms)
        if side == "title" and self.params.title_secondary != 1.0:
            return self._title(norm_text, w, terms)
        return w

    def _query(self, text: str, w: np.ndarray, terms: Sequence[str]) -> np.ndarray:
        words = self.segmenter.words(text)
        good = [x for x in words if self.rate(x) >= self.params.min_rate]
        if not good:
            return w
        group = self._inside(good[-1])
        g = np.array([t in group for t in terms])
        head, rest = w[g].sum(), w[~g].sum()
        if not g.any() or head <= 0:
            return w
        out = w.copy()
        out[g] *= max(1.0, self.params.query_head * rest / head)
        return out

    def _title(self, text: str, w: np.ndarray, terms: Sequence[str]) -> np.ndarray:
        prods = [x for x in self.segmenter.words(text) if self.rate(x) >= 0]
        core = [x for x in prods if x not in BUNDLE_WORDS] or prods
        if not core:
            return w
        main = core[-1]
        keep = {main, self.vocab.head_word(main)}
        secondary = {p for p in prods if p not in keep and not main.endswith(p)}
        secondary |= {self.vocab.head_word(p) for p in secondary} - keep - {None}
        return w * np.array([self.params.title_secondary if t in secondary else 1.0
                             for t in terms])

    def _inside(self, word: str) -> set[str]:
        """A word, its head term and its character-bigram terms."""
        prefix = self.vocab.bigram_prefix
        return {word, self.vocab.head_word(word),
                *(prefix + word[i:i + 2] for i in range(len(word) - 1))}


def product_rates(titles, corpus_words: Iterable[str] = ()) -> dict[str, float]:
    """The lexicon: gold product words of tagged titles (two characters or more) with the share
    of the titles containing each whose tags call it a product; `corpus_words` (e.g. the
    gazetteer product words seen in the training texts) join with rate 0."""
    from deepbow.datasets import texts_containing
    from deepbow.text import normalize

    tagged: dict[str, int] = {}
    for t in titles:
        for p in t.of_type("product"):
            if len(p) >= 2:
                tagged[p] = tagged.get(p, 0) + 1
    containing = texts_containing(set(tagged), [normalize(t.text) for t in titles])
    rates = {w: min(1.0, n / max(1, len(containing.get(w, ())))) for w, n in tagged.items()}
    for w in corpus_words:
        rates.setdefault(w, 0.0)
    return rates
