"""deepbow: interpretable lexical relevance for Chinese e-commerce search.

The one public facade: it composes the layers (deepbow → ebrm → index) and is the whole Python
API the README shows. Every import of a layer above happens inside a function here, so
importing a model module (deepbow.encoder, ...) loads neither ebrm nor index, and torch is
imported only when a model is loaded.

    import deepbow
    m = deepbow.load()                       # the shipped DeepBoW model
    m.encode(["华为手机"], "query")[0].as_dict()
    m.score("华为手机", ["华为mate60手机", "手机壳"])
    m.explain("华为手机", "华为mate60手机").to_text()
    e = deepbow.load_ebrm()                  # the entity-based model (EBRM)
    h = deepbow.load_scorer("hybrid")        # DeepBoW + EBRM; same score/explain interface
    cat = deepbow.build_index(items, "ix")   # or deepbow.open_index("ix")
    cat.search("华为手机", k=10); cat.editor.ban("包邮")
    deepbow.reranker(cat).rerank("华为手机", 10, "hybrid")
    deepbow.export_milvus(cat, "shop.db", "shop")   # beyond one machine (the `scale` extra)
    with deepbow.open_milvus(index="ix") as served: served.search("华为手机", k=10)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from deepbow.errors import DeepBowError, InputError, ModelFileError
from deepbow.locations import default_ebrm_path, default_model_path, sample_catalogue_path

__version__ = "0.1.0"
__all__ = ["load", "load_ebrm", "load_scorer", "load_scorers", "read_edits", "build_index",
           "open_index", "reranker", "evaluate", "open_milvus", "export_milvus", "sync_milvus",
           "default_model_path", "default_ebrm_path", "sample_catalogue_path", "SCORERS",
           "DeepBowError", "InputError", "ModelFileError"]
SCORERS = ("deepbow", "ebrm", "hybrid")


def load(path: str | Path | None = None):
    """A DeepBoW model directory (checked: format, version, checksums, shapes); default:
    $DEEPBOW_MODEL or the shipped model."""
    from deepbow.encoder import DeepBoW

    return DeepBoW.load(path or default_model_path())


def load_ebrm(path: str | Path | None = None, cache: str | Path | bool | None = True):
    """An EBRM model; cache: True = the persistent QE cache for this model (under
    $DEEPBOW_CACHE or ~/.cache/deepbow), a path = that SQLite file, None = memory only."""
    from ebrm.model import EBRM

    return EBRM.load(path or default_ebrm_path(), cache=cache)


def load_scorer(kind: str = "deepbow", model: str | Path | None = None,
                ebrm: str | Path | None = None, cache: str | Path | bool | None = True):
    """"deepbow", "ebrm" or "hybrid": an object with score(query, titles, edits=),
    score_pairs(pairs, edits=), label(scores) and explain(query, title, edits=)."""
    return load_scorers([kind], model, ebrm, cache)[kind]


def load_scorers(kinds: Sequence[str], model: str | Path | None = None,
                 ebrm: str | Path | None = None, cache: str | Path | bool | None = True
                 ) -> dict:
    """{kind: scorer} for several kinds, loading each model once (eval's "all")."""
    unknown = [k for k in kinds if k not in SCORERS]
    if unknown or not kinds:
        raise InputError(f"unknown scorer {', '.join(unknown) or '(none)'}: use one of "
                         f"{', '.join(SCORERS)} (or all)")
    loaded: dict = {}
    if {"deepbow", "hybrid"} & set(kinds):
        loaded["deepbow"] = load(model)
    if {"ebrm", "hybrid"} & set(kinds):
        loaded["ebrm"] = load_ebrm(ebrm, cache)
    if "hybrid" in kinds:
        from ebrm.hybrid import Hybrid

        loaded["hybrid"] = Hybrid(loaded["deepbow"], loaded["ebrm"])
    return {k: loaded[k] for k in kinds}


def read_edits(path: str | Path):
    """The edits of a journal (an index directory, or a journal file) as a value to pass as
    `edits=` to score, score_pairs and explain: word scales, bans, links, pins and rules."""
    from index.editor import read_edits as _read

    return _read(path)


def build_index(items: Iterable[dict], out: str | Path, model=None, overwrite: bool = False,
                progress=None, codes=None):
    """Encode items ({"id", "title", ...}) into a new index directory; a Catalogue. `codes`:
    their title codes computed elsewhere (index.ray_encode), one CSR row per item."""
    from index.catalogue import Catalogue

    return Catalogue.build(model or load(), items, out, overwrite=overwrite, progress=progress,
                           codes=codes)


def open_index(path: str | Path, model=None, verify: bool = False):
    """An index directory as a Catalogue (search, explain, add/update/delete/compact, editor),
    with the model it was built with (default: the shipped one)."""
    from index.catalogue import Catalogue

    return Catalogue.open(path, model if model is not None else load(), verify=verify)


def open_milvus(uri: str | None = None, collection: str | None = None, model=None,
                index: str | Path | None = None):
    """A Milvus copy of a catalogue (index.milvus_catalogue.MilvusCatalogue: search,
    batch_search, explain, with the local index's results; close it, or use `with`): the copy
    `index` (a directory) was exported to, applying its journal (refused when the copy is
    behind), or the collection at `uri` (default: a milvus-lite file, deepbow-milvus.db)."""
    from index.milvus import DEFAULT_URI
    from index.milvus_catalogue import MilvusCatalogue
    from index.milvus_link import open_linked

    model = model if model is not None else load()
    if index is not None and uri is None and collection is None:
        return open_linked(index, model)
    if collection is None:
        raise InputError("open_milvus needs a collection (or an index directory exported "
                         "with export_milvus)")
    return MilvusCatalogue.open(uri or DEFAULT_URI, collection, model, journal=index)


def export_milvus(catalogue, uri: str | None = None, collection: str = "deepbow",
                  overwrite: bool = False, shards: int | None = None, progress=None) -> int:
    """Write a catalogue's items (their exact title vectors, ids and filter fields, per-item
    weight edits applied) into a Milvus collection and record it as the directory's copy
    (<index>/milvus.json); returns the rows written."""
    from index.milvus import DEFAULT_URI
    from index.milvus_link import export_linked

    return export_linked(catalogue, uri or DEFAULT_URI, collection, overwrite, shards, progress)


def sync_milvus(catalogue, ids: Iterable[str] | None = None, before: str | None = None):
    """Bring a catalogue's Milvus copy in step after changes made from Python (`ids` and
    `before` = index.milvus_link.index_state(dir) taken before an add/update/delete let it
    upsert only those; otherwise it exports again when the index changed). A message, or None
    when the catalogue has no copy."""
    from index.milvus_link import sync

    return sync(catalogue, list(ids) if ids is not None else None, before)


def reranker(catalogue, ebrm=None, cache: str | Path | bool | None = True):
    """EBRM (and the hybrid, when the EBRM model was calibrated against the catalogue's DeepBoW
    model) over a catalogue: rerank(query, k, scorer) and entity_explain(query, item_id)."""
    from ebrm.hybrid import Hybrid
    from index.rerank import Reranker

    e = ebrm if ebrm is not None and not isinstance(ebrm, str | Path) else load_ebrm(ebrm, cache)
    hybrid = None if Hybrid.incompatible(catalogue.model, e) else Hybrid(catalogue.model, e)
    return Reranker(catalogue, e, hybrid)


def evaluate(scorers: dict, pairs, baseline: bool = True, failures: bool = False) -> dict:
    """The figures of `deepbow eval` for {name: scorer} on labelled pairs (deepbow.readers)."""
    from deepbow.evaluate import evaluate as _evaluate

    return _evaluate(scorers, pairs, baseline=baseline, failures=failures)
