"""Training and network configuration: the TOML file `deepbow train --config` reads, and the
network shape stored in every model's manifest. No torch here, so configs load anywhere."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class VocabConfig:
    max_words: int = 40_000
    min_word_count: int = 2
    max_phrases: int = 10_000
    min_phrase_count: int = 5
    n_buckets: int = 8192
    max_char_bigrams: int = 0
    min_char_bigram_count: int = 5


@dataclass
class NetParams:
    """The network's shape; NetConfig adds the vocabulary sizes."""

    dim: int = 128
    layers: int = 2
    heads: int = 4
    ff: int = 256
    dropout: float = 0.0
    max_chars: int = 64
    max_words: int = 40
    expansion_k: int = 16  # expansion terms kept per text (0 = term weighting only)
    expansion_vocab: int = 8192  # expansion reaches term ids 1..expansion_vocab-1
    char_bigrams: bool = False  # Chinese character bigrams are terms too
    bigram_prefix: str = ""  # "c:": bigrams get ids of their own (vocab.BIGRAM_PREFIX)
    # "softmax": both sides weight their terms by attention (the paper's p_i, × a magnitude);
    # "sigmoid": a title's terms each get an independent weight in [0, 1] (how much the title is
    # about the word), so a long title does not dilute every match; queries keep softmax
    title_weights: str = "softmax"
    head_words: bool = False  # a compound word also yields its head term (鼠标 from 无线鼠标)

    def __post_init__(self) -> None:
        if self.title_weights not in ("softmax", "sigmoid"):
            raise ValueError(f"title_weights must be 'softmax' or 'sigmoid', "
                             f"not {self.title_weights!r}")


@dataclass
class NetConfig(NetParams):
    n_chars: int = 0
    n_terms: int = 0
    n_buckets: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainParams:
    epochs: int = 6
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    flops_weight: float = 1e-3
    seed: int = 0
    threads: int = 2
    time_budget_minutes: float = 55.0
    calibrate_on: str = "qbqtc"  # "qbqtc" or "all": which validation pairs set the thresholds
    hard_negative_repeat: int = 1  # each "ecom-hard" training pair is seen this often an epoch
    train_query_l1: bool = False  # train on L1-normalised query vectors (and ship query_norm l1)
    # weight of a pairwise (RankNet) loss that puts a query's exact matches above its hard
    # negatives, on `pair_batch` (query, exact, hard negative) triples drawn every step
    pair_weight: float = 0.0
    pair_batch: int = 16
    validate_every: int = 0  # steps between mid-epoch checkpoints (0: at the end of each epoch)
    # shopper-like queries (a product word with modifiers) generated from the NER train titles
    # and added to the recipe's pairs (deepbow/shopper_queries.py); 0: none
    shopper_queries: int = 0
    # the share of the recipe's other training pairs kept (a seeded sample), e.g. to train a
    # given model further mostly on what is new
    recipe_share: float = 1.0


@dataclass
class TrainConfig:
    vocab: VocabConfig = field(default_factory=VocabConfig)
    net: NetParams = field(default_factory=NetParams)
    train: TrainParams = field(default_factory=TrainParams)

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        return cls(**read_toml_sections(path, {"vocab": VocabConfig, "net": NetParams,
                                               "train": TrainParams}))

    def to_dict(self) -> dict:
        return asdict(self)


def read_toml_sections(path: str | Path, sections: dict[str, type]) -> dict:
    """{section name: dataclass instance} from a TOML file; a missing section takes the
    defaults, an unknown section or key, or a value of the wrong kind, is refused by name."""
    from deepbow.errors import InputError

    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: cannot read config ({e})") from None
    unknown = set(raw) - set(sections)
    if unknown:
        raise InputError(f"{path}: unknown sections {sorted(unknown)}")
    parts = {}
    for name, klass in sections.items():
        section = raw.get(name, {})
        if not isinstance(section, dict):
            raise InputError(f"{path}: [{name}] must be a table")
        extra = set(section) - {f.name for f in fields(klass)}
        if extra:
            raise InputError(f"{path}: unknown keys in [{name}]: {sorted(extra)}")
        try:
            parts[name] = klass(**section)
        except (TypeError, ValueError) as e:
            raise InputError(f"{path}: [{name}]: {e}") from None
    return parts


def default_config_path(name: str = "default.toml") -> Path:
    """A recipe shipped as package data of deepbow (default.toml: the base model's)."""
    from importlib.resources import files

    return Path(str(files("deepbow") / "configs" / name))
