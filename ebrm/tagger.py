"""The entity tagger: characters + hashed bigrams + gazetteer marks → BiLSTM → BIOES tags.

Trained on the Taobao NER sets. The two sets disagree on what they tag: taobao_ner tags product
words, brands, models and misc; taobao_brandproduct only products and brands, so an untagged
character there may still be part of a model or misc entity. Its loss is therefore *partial*: the
log of the total probability of every tag the annotation allows (O, or any model/misc tag), not
the log probability of O alone. Decoding is a Viterbi search restricted to valid BIOES sequences
(no I- after O, no type change inside an entity), so every decoded span is well formed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence

import numpy as np

from deepbow.charvocab import CharVocab
from deepbow.text import normalize, normalize_chars
from ebrm.lexicon import Entity, Lexicon

ENTITY_TYPES = ("product", "brand", "model", "misc")
BRAND_CANDIDATE_MIN = 0.05  # untagged words less brand-like than this are not brand candidates
_WORDISH = re.compile(r"[a-z\u3400-\u9fff]")
POSITIONS = "BIES"
TAGS = ("O", *(f"{p}-{t}" for t in ENTITY_TYPES for p in POSITIONS))
N_TAGS = len(TAGS)
TAG_INDEX = {t: i for i, t in enumerate(TAGS)}
N_BIGRAM_BUCKETS = 20011


def bigram_ids(text: str) -> np.ndarray:
    """Hashed bigram of each character with the next one (the last with an end mark): crc32,
    stable across processes."""
    t = normalize_chars(text) + "\x03"
    return np.array([zlib.crc32(t[i:i + 2].encode("utf-8")) % N_BIGRAM_BUCKETS + 1
                     for i in range(len(t) - 1)], np.int64)


def _allowed_transitions() -> np.ndarray:
    ok = np.zeros((N_TAGS, N_TAGS), bool)
    for a, ta in enumerate(TAGS):
        for b, tb in enumerate(TAGS):
            pa, _, ya = ta.partition("-")
            pb, _, yb = tb.partition("-")
            if pa in ("O", "E", "S"):
                ok[a, b] = pb in ("O", "B", "S")
            else:  # inside an entity: continue it with the same type
                ok[a, b] = pb in ("I", "E") and ya == yb
    return ok


ALLOWED = _allowed_transitions()
START_OK = np.array([t.partition("-")[0] in ("O", "B", "S") for t in TAGS])
END_OK = np.array([t.partition("-")[0] in ("O", "E", "S") for t in TAGS])


def viterbi(logp: np.ndarray) -> list[int]:
    """Best valid BIOES path through [L, N_TAGS] log-probabilities."""
    neg = -1e9
    trans = np.where(ALLOWED, 0.0, neg)
    score = logp[0] + np.where(START_OK, 0.0, neg)
    back = np.zeros(logp.shape, np.int64)
    for i in range(1, len(logp)):
        cand = score[:, None] + trans
        back[i] = cand.argmax(0)
        score = cand.max(0) + logp[i]
    score = score + np.where(END_OK, 0.0, neg)
    path = [int(score.argmax())]
    for i in range(len(logp) - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return path[::-1]


def spans_from_tags(text: str, tags: Sequence[int]) -> list[Entity]:
    """Entities of a valid BIOES path over `text` (entity texts normalised)."""
    out: list[Entity] = []
    start = -1
    for i, t in enumerate(tags):
        pos, _, typ = TAGS[t].partition("-")
        if pos in ("B", "S"):
            start = i
        if pos in ("E", "S") and start >= 0:
            surface = normalize(text[start:i + 1])
            if surface:
                out.append(Entity(typ, surface, start, i + 1))
            start = -1
    return out


def tags_from_spans(n: int, spans: Sequence[tuple[str, int, int]]) -> list[str]:
    tags = ["O"] * n
    for typ, a, b in spans:
        if b - a == 1:
            tags[a] = f"S-{typ}"
        else:
            tags[a] = f"B-{typ}"
            tags[a + 1:b - 1] = [f"I-{typ}"] * (b - a - 2)
            tags[b - 1] = f"E-{typ}"
    return tags


def allowed_mask(tags: Sequence[str], partial: bool) -> np.ndarray:
    """[L, N_TAGS]: the gold tag, or for an O of a partially annotated set any model/misc tag."""
    m = np.zeros((len(tags), N_TAGS), bool)
    loose = [TAG_INDEX[t] for t in TAGS if t.endswith(("-model", "-misc"))]
    for i, t in enumerate(tags):
        m[i, TAG_INDEX[t]] = True
        if partial and t == "O":
            m[i, loose] = True
    return m


def word_marks(text: str, words: Sequence[str]) -> np.ndarray:
    """[len(text), 4] B/I/E/S marks of the segmenter's words, found left to right in text."""
    f = np.zeros((len(text), 4), np.float32)
    pos = 0
    for w in words:
        i = text.find(w, pos)
        if i < 0:
            continue
        if len(w) == 1:
            f[i, 3] = 1
        else:
            f[i, 0] = 1
            f[i + 1:i + len(w) - 1, 1] = 1
            f[i + len(w) - 1, 2] = 1
        pos = i + len(w)
    return f


def build_net(n_chars: int, hidden: int = 128, char_dim: int = 64, bigram_dim: int = 32,
              n_features: int = 8):
    import torch
    from torch import nn

    class TaggerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.char_emb = nn.Embedding(n_chars, char_dim, padding_idx=0)
            self.bigram_emb = nn.Embedding(N_BIGRAM_BUCKETS + 1, bigram_dim, padding_idx=0)
            self.lex = nn.Linear(n_features, 16)
            self.lstm = nn.LSTM(char_dim + bigram_dim + 16, hidden, batch_first=True,
                                bidirectional=True)
            self.out = nn.Linear(2 * hidden, N_TAGS)

        def forward(self, chars, bigrams, lex):
            """Tag logits; padded positions (char id 0) are packed away, so a text's tags do
            not depend on the longer texts it shares a batch with."""
            x = torch.cat([self.char_emb(chars), self.bigram_emb(bigrams), self.lex(lex)], -1)
            lengths = (chars != 0).sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                       enforce_sorted=False)
            h, _ = self.lstm(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True,
                                                    total_length=x.shape[1])
            return self.out(h)

    return TaggerNet()


class Tagger:
    """Tags titles with entities; `net` is a TaggerNet, `lexicon` the gazetteer it was trained
    with (its marks are input features), and with word_features the B/I/E/S marks of jieba
    words (segmented with the lexicon as user dictionary) as well."""

    def __init__(self, net, vocab: CharVocab, lexicon: Lexicon, max_len: int = 128,
                 word_features: bool = False) -> None:
        self.net = net.eval()
        self.vocab = vocab
        self.lexicon = lexicon
        self.max_len = max_len
        self.word_features = word_features
        self._segmenter = None

    @property
    def n_features(self) -> int:
        return 12 if self.word_features else 8

    def read(self, text: str, words: bool = False) -> tuple[str, list[Entity], list[str]]:
        """A text's normalised characters, its gazetteer longest matches and (with word
        features, or when asked) its jieba words: computed once, read by the input features
        and by the candidates."""
        t = normalize_chars(text)
        w = self.segmenter().words(t) if (words or self.word_features) else []
        return t, self.lexicon.longest_match(t), w

    def features(self, reading: tuple[str, list[Entity], list[str]]) -> np.ndarray:
        t, matches, words = reading
        f = self.lexicon.features(t, matches)
        if not self.word_features:
            return f
        return np.concatenate([f, word_marks(t, words)], 1)

    def batch(self, texts: Sequence[str], readings: Sequence[tuple] | None = None):
        import torch

        texts = [t[:self.max_len] for t in texts]
        if readings is None:
            readings = [self.read(t) for t in texts]
        n = max((len(t) for t in texts), default=1) or 1
        c = np.zeros((len(texts), n), np.int64)
        b = np.zeros((len(texts), n), np.int64)
        f = np.zeros((len(texts), n, self.n_features), np.float32)
        for i, t in enumerate(texts):
            c[i, :len(t)] = self.vocab.ids(t)
            b[i, :len(t)] = bigram_ids(t)
            f[i, :len(t)] = self.features(readings[i])
        return torch.from_numpy(c), torch.from_numpy(b), torch.from_numpy(f)

    def segmenter(self):
        if self._segmenter is None:
            from deepbow.text import Segmenter

            self._segmenter = Segmenter(self.lexicon.words)
        return self._segmenter

    def tag(self, texts: Sequence[str], batch_size: int = 64,
            candidates: bool = False) -> list[list[Entity]]:
        """Entities of each text, in text order (an empty text has none). With `candidates`,
        also product candidates: gazetteer product words (conf 1) and words of the text
        (conf = the tagger's mean probability of a product tag over their characters) that no
        tagged product covers; and brand candidates: untagged words whose mean probability of
        a brand tag is at least BRAND_CANDIDATE_MIN (conf = that probability)."""
        import torch

        out: list[list[Entity]] = []
        prod_tags = [i for i, t in enumerate(TAGS) if t.endswith("-product")]
        brand_tags = [i for i, t in enumerate(TAGS) if t.endswith("-brand")]
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                chunk = [t[:self.max_len] for t in texts[s:s + batch_size]]
                readings = [self.read(t, words=candidates) for t in chunk]
                logp = torch.log_softmax(self.net(*self.batch(chunk, readings)), -1).numpy()
                for i, t in enumerate(chunk):
                    if not t.strip():
                        out.append([])
                        continue
                    ents = spans_from_tags(t, viterbi(logp[i, :len(t)]))
                    if candidates:
                        p = np.exp(logp[i, :len(t)])
                        ents = self._candidates(readings[i], ents, p[:, prod_tags].sum(1),
                                                p[:, brand_tags].sum(1))
                    out.append(ents)
        return out

    def _candidates(self, reading: tuple[str, list[Entity], list[str]], ents: list[Entity],
                    pprod: np.ndarray, pbrand: np.ndarray) -> list[Entity]:
        t, matches, words = reading
        covered = np.zeros(len(t) + 1, bool)
        tagged = np.zeros(len(t) + 1, bool)
        for e in ents:
            tagged[e.start:e.end] = True
            if e.type == "product":
                covered[e.start:e.end] = True
        known = {e.text for e in ents if e.type == "product"}
        extra: dict[str, Entity] = {}
        for e in matches:
            if e.type == "product" and not covered[e.start:e.end].any() and e.text not in known:
                extra.setdefault(e.text, Entity("product", e.text, e.start, e.end, 1.0, True))
        brands: dict[str, Entity] = {}
        pos = 0
        for w in words:
            a = t.find(w, pos)
            if a < 0:
                continue
            pos = a + len(w)
            if len(w) < 2 or not _WORDISH.match(w):
                continue
            if not covered[a:pos].any() and w not in known and w not in extra:
                extra[w] = Entity("product", w, a, pos, float(pprod[a:pos].mean()), True)
            pb = float(pbrand[a:pos].mean())
            if not tagged[a:pos].any() and pb >= BRAND_CANDIDATE_MIN and w not in brands:
                brands[w] = Entity("brand", w, a, pos, pb, True)
        return sorted([*ents, *extra.values(), *brands.values()],
                      key=lambda e: (e.start, e.candidate, e.type))


def train_tagger(examples: Sequence[tuple[str, list[str], bool]], vocab: CharVocab,
                 lexicon: Lexicon, epochs: int = 6, batch_size: int = 32, lr: float = 2e-3,
                 seed: int = 0, valid: Sequence[tuple[str, list[Entity]]] = (),
                 word_features: bool = False, shape: dict | None = None,
                 log: Callable[[str], None] = lambda s: None) -> Tagger:
    """examples: (text, BIOES tags, partially annotated?). Keeps the epoch with the best entity
    F1 on `valid` (a slice of the training titles; the dev sets stay unseen)."""
    import copy

    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_net(len(vocab), n_features=12 if word_features else 8, **(shape or {}))
    tagger = Tagger(net, vocab, lexicon, word_features=word_features)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    masks = [allowed_mask(tags, partial) for _, tags, partial in examples]
    readings = [tagger.read(t[:tagger.max_len]) for t, _, _ in examples]  # once, not per epoch
    best, best_state = -1.0, None
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(examples))
        total = 0.0
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            texts = [examples[i][0] for i in idx]
            logits = net(*tagger.batch(texts, [readings[i] for i in idx]))
            m = np.zeros(logits.shape, bool)
            for k, i in enumerate(idx):
                n = min(len(masks[i]), m.shape[1])
                m[k, :n] = masks[i][:n]
            m = torch.from_numpy(m)
            valid_pos = m.any(-1)
            logz = torch.logsumexp(logits, -1)
            logok = torch.logsumexp(logits.masked_fill(~m, -1e9), -1)
            loss = ((logz - logok) * valid_pos).sum() / valid_pos.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        f1 = entity_prf([e for _, e in valid], tagger.tag([t for t, _ in valid]))["all"][2] \
            if valid else float(epoch)
        log(f"tagger epoch {epoch + 1}: loss {total / len(examples):.4f}  valid entity F1 "
            f"{f1:.4f}")
        if f1 > best:
            best, best_state = f1, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return Tagger(net.eval(), vocab, lexicon, word_features=word_features)


def entity_prf(gold: Sequence[Sequence[Entity]], pred: Sequence[Sequence[Entity]],
               types: Sequence[str] = ENTITY_TYPES) -> dict[str, tuple[float, float, float]]:
    """Exact-span entity precision, recall, F1 per type and over all types ("all")."""
    out = {}
    for typ in (*types, "all"):
        tp = n_gold = n_pred = 0
        for g, p in zip(gold, pred, strict=True):
            gs = {(e.type, e.start, e.end) for e in g if typ == "all" or e.type == typ}
            ps = {(e.type, e.start, e.end) for e in p if typ == "all" or e.type == typ}
            tp += len(gs & ps)
            n_gold += len(gs)
            n_pred += len(ps)
        pr = tp / n_pred if n_pred else 0.0
        rc = tp / n_gold if n_gold else 0.0
        out[typ] = (pr, rc, 2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    return out
