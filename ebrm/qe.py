"""The query–entity (QE) cross-encoder: `[CLS] query [SEP] <type> entity [SEP]` → two judgements.

A small pre-norm Transformer over characters reads the query and one typed entity together (a
cross-encoder: every query character attends to every entity character) and returns two
probabilities from the [CLS] vector:

- s, *satisfies*: this entity gives the query what it asks for (used for product words: 手机 and
  智能手机 satisfy 华为手机; 手机壳 does not);
- c, *no conflict*: nothing in this entity contradicts the query (a brand other than the one
  asked for conflicts; a brand when no brand is asked does not).

Both are read by the soft logic (ebrm/soft_logic.py). Inputs are short (a query, one entity), so
scoring is cheap, and each (query, entity) pair is computed once and cached (ebrm/cache.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepbow.charvocab import UNK, CharVocab
from deepbow.text import normalize_chars

MAX_QUERY = 24
MAX_ENTITY = 20
# EBRM's character vocabulary (shared by the tagger and the cross-encoder) starts with these,
# then one token per entity type ("<product>", ...), then a space, then the characters
CHAR_SPECIALS = ("<pad>", "<unk>", "[CLS]", "[SEP]")
CLS, SEP = 2, 3


def char_vocab(texts, types: Sequence[str], min_count: int = 2) -> CharVocab:
    """The vocabulary of EBRM's networks over `texts` (characters normalised one by one)."""
    return CharVocab.build((normalize_chars(t) for t in texts),
                           [*CHAR_SPECIALS, *(f"<{t}>" for t in types), " "], min_count)


def type_id(vocab: CharVocab, typ: str) -> int:
    """The id of an entity type's token, which tells the cross-encoder what the entity is."""
    return vocab.index.get(f"<{typ}>", UNK)


def _match_flags(a: str, b: str) -> np.ndarray:
    """1 for each character of `a` inside a run of ≥ 2 characters that also occurs in `b`
    (or a single character when `a` has one), else 0: exact-match evidence that carries over
    to products never seen in training (手机 in 智能手机: the tail matches; in 手机壳 it does
    not)."""
    out = np.zeros(len(a), np.int64)
    if len(a) == 1:
        out[0] = int(a in b)
        return out
    for i in range(len(a) - 1):
        if a[i:i + 2] in b:
            out[i:i + 2] = 1
    return out


def qe_inputs(vocab: CharVocab, queries: Sequence[str], entities: Sequence[tuple[str, str]]):
    """Padded token ids, segment ids and match flags for (query, (type, text)) pairs."""
    import torch

    rows, segs, flags = [], [], []
    for q, (typ, text) in zip(queries, entities, strict=True):
        qs = normalize_chars(q.replace(" ", ""))[:MAX_QUERY]
        es = normalize_chars(text.replace(" ", ""))[:MAX_ENTITY]
        qi, ei = vocab.ids(qs), vocab.ids(es)
        rows.append(np.concatenate([[CLS], qi, [SEP, type_id(vocab, typ)], ei, [SEP]]))
        segs.append(np.r_[np.zeros(len(qi) + 2, np.int64), np.ones(len(ei) + 2, np.int64)])
        flags.append(np.concatenate([[0], _match_flags(qs, es), [0, 0], _match_flags(es, qs),
                                     [0]]))
    n = max(len(r) for r in rows)
    ids = np.zeros((len(rows), n), np.int64)
    seg = np.zeros((len(rows), n), np.int64)
    match = np.zeros((len(rows), n), np.int64)
    for i, (r, s, f) in enumerate(zip(rows, segs, flags, strict=True)):
        ids[i, :len(r)] = r
        seg[i, :len(s)] = s
        match[i, :len(f)] = f
    return torch.from_numpy(ids), torch.from_numpy(seg), torch.from_numpy(match)


def build_net(n_chars: int, dim: int = 128, layers: int = 2, heads: int = 4, ff: int = 256,
              dropout: float = 0.1):
    import torch
    from torch import nn

    class QENet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(n_chars, dim, padding_idx=0)
            self.pos = nn.Embedding(MAX_QUERY + MAX_ENTITY + 8, dim)
            self.seg = nn.Embedding(2, dim)
            self.match = nn.Embedding(2, dim)
            layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout=dropout, batch_first=True,
                                               norm_first=True)
            self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            self.out = nn.Linear(dim, 2)

        def forward(self, ids, seg, match):
            pos = torch.arange(ids.shape[1], device=ids.device)
            x = self.tok(ids) + self.pos(pos)[None] + self.seg(seg) + self.match(match)
            h = self.enc(x, src_key_padding_mask=ids == 0)
            return self.out(self.norm(h[:, 0]))  # logits of (satisfies, no conflict)

    return QENet()


class QEModel:
    """Scores (query, typed entity) pairs: returns s and c as float arrays in [0, 1]."""

    def __init__(self, net, vocab: CharVocab) -> None:
        self.net = net.eval()
        self.vocab = vocab

    def logits(self, queries: Sequence[str], entities: Sequence[tuple[str, str]]):
        return self.net(*qe_inputs(self.vocab, queries, entities))

    def predict(self, queries: Sequence[str], entities: Sequence[tuple[str, str]],
                batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        import torch

        s = np.zeros(len(queries), np.float64)
        c = np.zeros(len(queries), np.float64)
        with torch.inference_mode():
            for a in range(0, len(queries), batch_size):
                p = torch.sigmoid(self.logits(queries[a:a + batch_size],
                                              entities[a:a + batch_size])).double().numpy()
                s[a:a + len(p)], c[a:a + len(p)] = p[:, 0], p[:, 1]
        return s, c
