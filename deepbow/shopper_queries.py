"""Training queries that look like what shoppers type, generated from tagged titles.

Real shopper queries are seldom a bare product word: 北京bj40轮胎, 浪漫蜡烛灯, 复古唐装上衣年服
are a product word with modifiers (a place, a style, a material, an audience, a model), before or
after it, sometimes with a brand. A model trained on "product ± brand" queries alone has no
notion of which word of such a query is the thing asked for: it weighed 北京 above 轮胎. These
pairs teach it, with the grades of the judging guideline:

- 2 (exact): a title selling the product (a gold product word ending with it: 智能手机 sells 手机)
  that also has every modifier (and the brand, when the query names one);
- 1 (substitute): a title selling the product without them (a stated specification not met);
- 0: a title with the modifiers but not the product (the 北京 … 饮料 listing), a title where the
  product word occurs only inside another product word (手机 in 手机壳), a random title.

Modifiers are words of one title selling the product: two to four Chinese characters, not a
product, brand or listing word of it. Nothing here reads the evaluation titles or queries.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence

from deepbow.datasets import TaggedTitle, is_hard_negative
from deepbow.readers import Pair
from deepbow.text import Segmenter, normalize

# listing words (shipping, authenticity, sale, shop), never what a shopper asks about
LISTING_WORDS = frozenset({
    "包邮", "正品", "新款", "特价", "促销", "热卖", "批发", "现货", "代购", "官方", "旗舰店",
    "专柜", "同款", "一件", "代发", "全国", "直销", "厂家", "年新款", "清仓", "秒杀", "爆款"})
_MODIFIER = re.compile(r"^[\u4e00-\u9fff]{2,4}$")


def shopper_pairs(titles: Sequence[TaggedTitle], segmenter: Segmenter, n_queries: int = 3000,
                  seed: int = 0) -> list[Pair]:
    """About `n_queries` modifier + product queries over `titles`, each with up to 16 graded
    titles (kind "shopper")."""
    rng = random.Random(seed)
    norm = [normalize(t.text) for t in titles]
    prods = [{p for p in t.of_type("product") if len(p) >= 2} for t in titles]
    sellers: dict[str, list[int]] = defaultdict(list)
    for i, ps in enumerate(prods):
        for tail in {x[a:] for x in ps for a in range(len(x) - 1)}:
            sellers[tail].append(i)
    order = list(range(len(titles)))
    rng.shuffle(order)
    having = _Containing(norm)
    out: list[Pair] = []
    made = 0
    for i in order:
        if made >= n_queries:
            break
        query = _query(titles[i], norm[i], prods[i], segmenter, rng)
        if query is None:
            continue
        q, p, needs = query
        graded = _grade(p, needs, norm, prods, sellers[p], having, rng)
        if graded:
            out += [Pair(q, titles[j].text, y, "shopper") for j, y in graded]
            made += 1
    return out


class _Containing:
    """The titles whose text contains a word, computed once per word."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.memo: dict[str, frozenset[int]] = {}

    def __call__(self, word: str) -> frozenset[int]:
        got = self.memo.get(word)
        if got is None:
            got = self.memo[word] = frozenset(j for j, t in enumerate(self.texts) if word in t)
        return got


def _query(title: TaggedTitle, text: str, prods: set[str], segmenter: Segmenter,
           rng: random.Random) -> tuple[str, str, list[str]] | None:
    """(query, its product word, the words a title must also hold to be exact) or None."""
    if not prods:
        return None
    p = rng.choice(sorted(prods))
    brands = title.of_type("brand")
    words = sorted({w for w in segmenter.words(text) if _MODIFIER.match(w)
                    and w not in LISTING_WORDS and w not in brands
                    and not any(w in x or x in w for x in prods)})
    if not words:
        return None
    mods = rng.sample(words, min(len(words), rng.choice((1, 1, 2))))
    r = rng.random()
    if r < 0.6:
        q = "".join(mods) + p if rng.random() < 0.7 else " ".join([*mods, p])
    else:
        q = p + " " + " ".join(mods) if rng.random() < 0.7 else p + "".join(mods)
    needs = list(mods)
    if brands and rng.random() < 0.2:
        b = rng.choice(sorted(brands))
        q, needs = f"{b} {q}", [*needs, b]
    return q, p, needs


def _grade(p: str, needs: list[str], norm: list[str], prods: list[set[str]],
           selling: list[int], having: _Containing, rng: random.Random
           ) -> list[tuple[int, int]]:
    """Up to 4 exact, 4 substitute, 4 decoy, 2 hard-negative and 2 random titles (one title
    text once); none when the query has no exact title or no decoy (it would teach nothing
    about modifiers)."""
    all_needs = frozenset.intersection(*(having(w) for w in needs))
    full = _distinct([j for j in selling if j in all_needs], norm)
    partial = _distinct([j for j in selling if j not in all_needs], norm)
    with_p = having(p)
    decoys = _distinct(sorted(all_needs - with_p), norm)
    if not full or not decoys:
        return []
    hard = _distinct([j for j in sorted(with_p) if is_hard_negative(p, norm[j], prods[j])], norm)
    randoms = [j for j in rng.sample(range(len(norm)), 2) if j not in with_p]
    picked = ([(j, 2) for j in rng.sample(full, min(4, len(full)))]
              + [(j, 1) for j in rng.sample(partial, min(4, len(partial)))]
              + [(j, 0) for j in rng.sample(decoys, min(4, len(decoys)))]
              + [(j, 0) for j in rng.sample(hard, min(2, len(hard)))]
              + [(j, 0) for j in randoms])
    seen: set[str] = set()
    return [(j, y) for j, y in picked if not (norm[j] in seen or seen.add(norm[j]))]


def _distinct(idx: list[int], norm: list[str]) -> list[int]:
    """`idx` with each title text once (the NER sets repeat some titles)."""
    seen: dict[str, int] = {}
    for j in idx:
        seen.setdefault(norm[j], j)
    return list(seen.values())
