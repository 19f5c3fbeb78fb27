"""The DeepBoW network (Lin et al., KDD 2024): a text → a non-negative weight per term.

One tower (shared by queries and titles; see the README for the figures behind that choice):

* Input: [CLS] characters [SEP] words, each stream with its own position table, into a small
  pre-norm Transformer (multi-granularity: characters see words and the other way round).
* Term weighting: p_t = softmax_t(u · h_t / √d) over the distinct terms of the text, where
  u = W_a h_c, h_c is the mean of the character-side outputs and h_t the mean of the term's word
  vectors plus its own embedding (so a phrase such as 手机壳 has a vector of its own); a
  character bigram term is represented by its two character vectors. The weights are scaled by a
  learned magnitude m = softplus(w · h_c + a · log(1 + n_terms)) so texts can differ in total
  weight and long titles need not dilute every term.
* Title weights (option `title_weights = "sigmoid"`): a title's terms instead each get
  w_t = σ(u' · h_t / √d + b), independently, so the score Σ q_t · w_t reads as the weighted share
  of the query the title is about, comparable across queries and titles of any length.
* Synonym expansion: V_c = relu(E · W_c h_c + b), V_w = relu(E · W_w h_w + b) over the most
  frequent known terms (E tied to the input term embeddings); absent terms take V_c, present terms
  the gated mix g V_c + (1 − g) V_w (V_w is computed at the present terms only); only the top-k
  survive, so a text keeps tens of terms, not thousands.
* A text's vector = term weights + expansion; relevance = Σ_t q_t · d_t.

The ordinal head maps a score s to 3 grades: P(y ≥ 1) = σ(a s − b1), P(y ≥ 2) = σ(a s − b2).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from deepbow.config import NetConfig


class DeepBoWNet(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.char_emb = nn.Embedding(cfg.n_chars, d, padding_idx=0)
        self.term_emb = nn.Embedding(cfg.n_terms + cfg.n_buckets, d, padding_idx=0)
        self.char_pos = nn.Embedding(cfg.max_chars + 1, d)
        self.word_pos = nn.Embedding(cfg.max_words + 1, d)
        self.special = nn.Embedding(2, d)  # CLS, SEP
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff, cfg.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.attn_q = nn.Linear(d, d)
        self.magnitude = nn.Linear(d, 1)
        self.len_scale = nn.Parameter(torch.tensor(0.0))
        if cfg.title_weights == "sigmoid":
            self.title_attn = nn.Linear(d, d)
            self.title_bias = nn.Parameter(torch.tensor(0.0))
        self.exp_c = nn.Linear(d, d)
        self.exp_w = nn.Linear(d, d)
        self.gate = nn.Linear(2 * d, 1)
        self.n_expand = max(2, min(cfg.expansion_vocab, cfg.n_terms))
        self.exp_bias = nn.Parameter(torch.full((self.n_expand - 1,), -0.5))
        self.ord_scale = nn.Parameter(torch.tensor(2.0))
        self.ord_b1 = nn.Parameter(torch.tensor(0.5))
        self.ord_gap = nn.Parameter(torch.tensor(0.5))
        nn.init.normal_(self.term_emb.weight, std=0.05)
        nn.init.normal_(self.char_emb.weight, std=0.05)

    def _encode(self, char_ids: torch.Tensor, word_ids: torch.Tensor):
        b, lc = char_ids.shape
        lw = word_ids.shape[1]
        dev = char_ids.device
        cls = self.special.weight[0].expand(b, 1, -1)
        sep = self.special.weight[1].expand(b, 1, -1)
        xc = self.char_emb(char_ids) + self.char_pos(torch.arange(lc, device=dev) + 1)
        xw = self.term_emb(word_ids) + self.word_pos(torch.arange(lw, device=dev) + 1)
        x = torch.cat([cls, xc, sep, xw], dim=1)
        ones = torch.ones(b, 1, dtype=torch.bool, device=dev)
        keep = torch.cat([ones, char_ids != 0, ones, word_ids != 0], dim=1)
        h = self.norm(self.encoder(x, src_key_padding_mask=~keep))
        hc_all, hw_all = h[:, 1:1 + lc], h[:, 2 + lc:]
        cmask = (char_ids != 0).unsqueeze(-1).float()
        wmask = (word_ids != 0).unsqueeze(-1).float()
        h_c = (hc_all * cmask).sum(1) / cmask.sum(1).clamp(min=1.0) + h[:, 0]
        h_w = (hw_all * wmask).sum(1) / wmask.sum(1).clamp(min=1.0)
        return h_c, h_w, torch.cat([hc_all, hw_all], dim=1)

    def term_weights(self, batch: dict[str, torch.Tensor], side: str = "query"):
        """Weights of the terms present in each text, the pooled vectors for expansion."""
        h_c, h_w, hw = self._encode(batch["char_ids"], batch["word_ids"])  # hw: chars + words
        term_ids, pos = batch["term_ids"], batch["term_pos"]
        d = hw.shape[-1]
        g0 = torch.gather(hw, 1, pos[..., 0:1].expand(-1, -1, d))
        g1 = torch.gather(hw, 1, pos[..., 1:2].expand(-1, -1, d))
        h_t = (g0 + g1) / 2 + self.term_emb(term_ids)
        tmask = term_ids != 0
        if side == "title" and self.cfg.title_weights == "sigmoid":
            logits = torch.einsum("bd,btd->bt", self.title_attn(h_c), h_t) / math.sqrt(d)
            return torch.sigmoid(logits + self.title_bias) * tmask, h_c, h_w
        logits = torch.einsum("bd,btd->bt", self.attn_q(h_c), h_t) / math.sqrt(d)
        logits = logits.masked_fill(~tmask, -1e4)
        p = torch.softmax(logits, dim=-1) * tmask
        # the magnitude sees the term count, so per-term weights need not shrink with length
        n = torch.log1p(tmask.sum(-1, keepdim=True).float())
        m = F.softplus(self.magnitude(h_c) + self.len_scale * n)
        return p * m, h_c, h_w

    def expansion(self, term_ids: torch.Tensor, h_c: torch.Tensor, h_w: torch.Tensor):
        """Top-k expansion as (values, term ids), both (B, k), and the full (B, n) scores."""
        n = self.n_expand
        e = self.term_emb.weight[1:n]
        v_c = F.relu(self.exp_c(h_c) @ e.T + self.exp_bias)  # (B, n-1), column j = term j+1
        # present expandable terms take the gated mix of the character and word sides
        valid = (term_ids > 0) & (term_ids < n)
        col = torch.where(valid, term_ids - 1, torch.full_like(term_ids, n - 1))  # n-1: dummy
        v_ext = torch.cat([v_c, v_c.new_zeros(v_c.shape[0], 1)], dim=1)
        at = v_ext.gather(1, col)
        bias_ext = torch.cat([self.exp_bias, self.exp_bias.new_zeros(1)])
        vw = F.relu(torch.einsum("bd,btd->bt", self.exp_w(h_w), self.term_emb(term_ids))
                    + bias_ext[col])
        g = torch.sigmoid(self.gate(torch.cat([h_c, h_w], dim=-1)))
        mixed = torch.where(valid, g * at + (1 - g) * vw, at)
        v = v_ext.scatter(1, col, mixed)[:, : n - 1]
        k = min(self.cfg.expansion_k, n - 1)
        vals, idx = torch.topk(v, k, dim=-1)
        return vals, idx + 1, v

    def forward_dense(self, batch: dict[str, torch.Tensor], side: str = "query"):
        """Dense (B, vocab) vectors for training, and the full expansion for the FLOPS penalty."""
        tw, h_c, h_w = self.term_weights(batch, side)
        b = tw.shape[0]
        size = self.cfg.n_terms + self.cfg.n_buckets
        dense = torch.zeros(b, size, device=tw.device).scatter_add(1, batch["term_ids"], tw)
        dense[:, 0] = 0.0
        full = None
        if self.cfg.expansion_k > 0:
            vals, ids, full = self.expansion(batch["term_ids"], h_c, h_w)
            dense = dense.scatter_add(1, ids, vals)
        return dense, full

    def ordinal_logits(self, s: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of grades 0, 1, 2 from scores s."""
        a = F.softplus(self.ord_scale)
        b1 = self.ord_b1
        b2 = b1 + F.softplus(self.ord_gap)
        p1 = torch.sigmoid(a * s - b1)
        p2 = torch.sigmoid(a * s - b2)
        probs = torch.stack([1 - p1, (p1 - p2).clamp(min=1e-6), p2], dim=-1)
        return torch.log(probs.clamp(min=1e-6))
