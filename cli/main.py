"""The `deepbow` command: thin click commands over the Python API.

Commands parse, call the API and print: results on stdout (a table, or JSON with --json),
progress and messages on stderr. Our own errors become one line `error: ...` and exit status 2.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from deepbow.errors import DeepBowError


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DeepBowError as e:
            raise click.ClickException(str(e)) from None

    return wrapper


def model_option(fn):
    return click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
                        help="Model directory (default: $DEEPBOW_MODEL or the shipped model).")(fn)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON instead of a table.")(fn)


def load_model(path: Path | None):
    import deepbow

    return deepbow.load(path)


def scorer_option(fn):
    fn = click.option("--edits", "edits_path", type=click.Path(path_type=Path, exists=True),
                      default=None, help="Apply an edit journal (a file, or an index directory "
                                         "with edits.jsonl): word scales, bans, links, pins "
                                         "and type rules.")(fn)
    fn = click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path),
                      default=None, help="EBRM model directory (default: $DEEPBOW_EBRM_MODEL "
                                         "or the shipped one).")(fn)
    return click.option("--scorer", default="deepbow", show_default=True,
                        help="deepbow (word bags), ebrm (entities + soft logic) or hybrid.")(fn)


def load_scorer(kind: str, model_path: Path | None, ebrm_path: Path | None,
                edits_path: Path | None = None):
    import deepbow

    scorer = deepbow.load_scorer(kind, model_path, ebrm_path)
    if edits_path is not None:
        from index.editor import apply_journal

        apply_journal(scorer, edits_path)
    return scorer


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


class Progress:
    """A progress bar on stderr (items/s and ETA), silent when stderr is not a terminal
    unless forced; the library itself never prints."""

    def __init__(self, total: int | None, label: str, enabled: bool | None = None) -> None:
        import time

        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        self.done = 0
        self.start = time.perf_counter()
        if self.enabled:
            self.bar = click.progressbar(length=total, label=label, file=sys.stderr,
                                         show_eta=True, show_pos=True,
                                         item_show_func=self._rate)
            self.bar.__enter__()

    def _rate(self, _item) -> str:
        import time

        dt = time.perf_counter() - self.start
        return f"{self.done / dt:,.0f}/s" if dt > 0 and self.done else ""

    def __call__(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n, current_item=self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deepbow")
def main() -> None:
    """deepbow: interpretable lexical relevance for Chinese e-commerce search.

    DeepBoW turns a query and a product title into sparse bags of words (word → weight);
    relevance is the sum over matched words of query weight × title weight.
    """


@main.command()
@click.argument("texts", nargs=-1, required=True)
@click.option("--top", type=int, default=None, help="Show at most this many words per text.")
@click.option("--side", type=click.Choice(["title", "query"]), default="title", show_default=True,
              help="Encode as a product title (8-bit weights) or a query (12-bit).")
@model_option
@json_option
@handle_errors
def encode(texts, top, side, model_path, as_json):
    """Print each TEXT's sparse bag of words: word → weight, heaviest first.

    Words marked + come from synonym expansion (not in the text)."""
    model = load_model(model_path)
    for text, vec in zip(texts, model.encode(list(texts), side), strict=True):
        rows = vec.top(top)
        if as_json:
            emit_json({"text": text, "terms": [{"word": w, "weight": round(x, 6),
                                                "expanded": e} for w, x, e in rows]})
            continue
        click.echo(f"{text}  ({len(vec)} words)")
        for w, x, e in rows:
            click.echo(f"  {'+' if e else ' '} {w:<16} {x:.4f}")


@main.command()
@click.argument("query")
@click.argument("title")
@model_option
@scorer_option
@json_option
@handle_errors
def explain(query, title, model_path, scorer, ebrm_path, edits_path, as_json):
    """Show QUERY–TITLE relevance: the sum of its matched words (deepbow), the entity-by-entity
    judgements and their soft logic (ebrm), or both parts (hybrid)."""
    if scorer != "deepbow":
        ex = load_scorer(scorer, model_path, ebrm_path, edits_path).explain(query, title)
        if as_json:
            emit_json(ex.to_json())
        elif scorer == "ebrm":
            click.echo(ex.to_text())
        else:
            click.echo(f"hybrid score {ex.score:.4f} = EBRM {ex.ebrm.score:.4f} + β {ex.beta} × "
                       f"DeepBoW {ex.deepbow.score:.4f} / {ex.deepbow_scale:.4f}   "
                       f"label {ex.label}\n")
            click.echo("— EBRM part —")
            click.echo(ex.ebrm.to_text())
            click.echo("\n— DeepBoW part —")
            print_word_explanation(query, title, ex.deepbow)
        return
    ex = load_scorer("deepbow", model_path, None, edits_path).explain(query, title)
    if as_json:
        emit_json({"query": query, "title": title, "score": ex.score, "label": ex.label,
                   "matches": [r.__dict__ for r in ex.rows]})
        return
    print_word_explanation(query, title, ex)


def print_word_explanation(query: str, title: str, ex) -> None:
    from deepbow.encoder import LABEL_NAMES

    click.echo(f"query: {query}\ntitle: {title}")
    click.echo(f"score: {ex.score:.4f}  label: {ex.label} ({LABEL_NAMES[ex.label]})")
    if not ex.rows:
        click.echo("no matched words")
        return
    click.echo(f"  {'word':<16} {'query w':>8} {'title w':>8} {'contrib':>8}  share")
    for r in ex.rows:
        mark = ("q+" if r.query_expanded else "") + ("t+" if r.title_expanded else "")
        share = r.contribution / ex.score if ex.score > 0 else 0.0
        click.echo(f"  {r.word:<16} {r.query_weight:8.4f} {r.title_weight:8.4f} "
                   f"{r.contribution:8.4f}  {share:5.1%} {mark}")
    click.echo(f"  {'sum':<16} {'':>8} {'':>8} {sum(r.contribution for r in ex.rows):8.4f}")
    if ex.expansion_rows:
        click.echo("expansion matches (q+: added to the query, t+: added to the title): "
                   + ", ".join(r.word for r in ex.expansion_rows))


@main.command()
@click.option("--pairs", "pairs_path", type=click.Path(path_type=Path, exists=True,
                                                       dir_okay=False), required=True,
              help='JSONL, one {"query": ..., "title": ...} a line.')
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              required=True, help='JSONL out, one {"score", "label"} a line, same order.')
@click.option("--batch-size", type=int, default=4096, show_default=True,
              help="Pairs scored per chunk.")
@model_option
@scorer_option
@handle_errors
def score(pairs_path, out_path, batch_size, model_path, scorer, ebrm_path, edits_path):
    """Score query–title pairs; label 2 = exact match, 1 = partly relevant, 0 = irrelevant.

    The output is written to a temp file and renamed at the end: a bad line stops the run with
    its line number and leaves any earlier OUT untouched."""
    from deepbow.datasets import read_pairs
    from deepbow.fileio import atomic_open

    model = load_scorer(scorer, model_path, ebrm_path, edits_path)
    total = None
    if sys.stderr.isatty():  # count lines only when a bar will show them
        with open(pairs_path, "rb") as fh:
            total = sum(1 for line in fh if line.strip())
    bar = Progress(total, "scoring", enabled=bool(total and total >= 10_000))
    chunk: list = []
    done = 0

    def flush(out):
        nonlocal done
        scores = model.score_pairs([(p.query, p.title) for p in chunk])
        for s, lab in zip(scores.tolist(), model.label(scores).tolist(), strict=True):
            out.write(json.dumps({"score": round(s, 6), "label": lab}) + "\n")
        bar(len(chunk))
        done += len(chunk)
        chunk.clear()

    try:
        with atomic_open(out_path) as out:
            for p in read_pairs(pairs_path):
                chunk.append(p)
                if len(chunk) >= batch_size:
                    flush(out)
            if chunk:
                flush(out)
    finally:
        bar.close()
    click.echo(f"scored {done} pairs → {out_path}", err=True)


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True,
                                                         dir_okay=False), required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Model directory to write.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Shared data folder (default: $DEEPBOW_DATA or ../shared/data).")
@handle_errors
def train(config_path, out_dir, data_dir, ):
    """Train a DeepBoW model from the shared data (see the README for the shipped recipe)."""
    import time

    from deepbow.train import TrainConfig, train_default

    cfg = TrainConfig.from_toml(config_path)
    train_default(cfg, out_dir, data_dir,
                  log=lambda s: click.echo(f"{time.strftime('%H:%M:%S')} {s}", err=True))


@main.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Model directory to recalibrate in place.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Shared data folder (default: $DEEPBOW_DATA or ../shared/data).")
@handle_errors
def calibrate(model_path, data_dir):
    """Refit a model's weight scales, query normalisation, expansion on/off and label
    thresholds on the validation pairs (the last step of `deepbow train`), and save it in
    place."""
    from deepbow.train import calibrate_default

    model = load_model(model_path)
    calibrate_default(model, data_dir, model.manifest.get("train_config", {}).get(
        "train", {}).get("calibrate_on", "qbqtc"), log=lambda s: click.echo(s, err=True))
    model_id = model.save(model_path)
    click.echo(f"saved {model_path} (model id {model_id})", err=True)


@main.command("eval")
@click.option("--pairs", "pairs_path", type=click.Path(path_type=Path, exists=True,
                                                       dir_okay=False), required=True,
              help='Labelled JSONL: {"query", "title", "label", ["kind"]}.')
@click.option("--no-baseline", is_flag=True, help="Skip the BM25 baseline.")
@click.option("--failures", is_flag=True,
              help="Also list each query that ranks a hard negative at or above an exact "
                   "match: its lowest exact match and highest hard negative, with scores.")
@model_option
@scorer_option
@json_option
@handle_errors
def eval_cmd(pairs_path, no_baseline, failures, model_path, scorer, ebrm_path, edits_path,
             as_json):
    """AUC (label≥1, label=2), nDCG@10 by query, macro-F1, accuracy, F1 of label 1 and
    AUC(1 vs 0), hard negatives, beside BM25. --scorer takes a comma list or "all"."""
    import deepbow
    from deepbow.datasets import read_pairs
    from deepbow.evaluate import evaluate

    pairs = list(read_pairs(pairs_path))
    if not pairs or any(p.label not in (0, 1, 2) for p in pairs):
        raise click.ClickException(f"{pairs_path}: eval needs pairs labelled 0, 1 or 2")
    names = list(deepbow.SCORERS) if scorer == "all" else scorer.split(",")
    scorers = {}
    base = load_model(model_path)
    for name in names:
        if name == "deepbow":
            scorers[name] = base
        elif name == "hybrid":
            from ebrm.hybrid import Hybrid

            scorers[name] = Hybrid(base, scorers.get("ebrm") or deepbow.load_ebrm(ebrm_path))
        else:
            scorers[name] = load_scorer(name, model_path, ebrm_path)
    if edits_path is not None:
        from index.editor import apply_journal

        for sc in scorers.values():
            apply_journal(sc, edits_path)
    res = evaluate(scorers, pairs, baseline=not no_baseline, segmenter=base.segmenter,
                   failures=failures)
    if as_json:
        emit_json(res)
        return
    cols = ["auc_ge1", "auc_eq2", "ndcg@10", "macro_f1", "accuracy", "f1_label1", "auc_1v0",
            "auc_2v1", "hard_neg_below_all"]
    for group, by_model in res.items():
        n = next(iter(by_model.values()))["pairs"]
        click.echo(f"[{group}] {n} pairs")
        click.echo(f"  {'scorer':<10}" + "".join(f"{c.replace('_below_all', ''):>10}"
                                               for c in cols))
        for name, row in by_model.items():
            cells = "".join(f"{100 * row[c]:>10.2f}" if c in row else f"{'-':>10}"
                            for c in cols)
            click.echo(f"  {name:<10}{cells}")
    for name, row in res["all"].items():
        if "hard_neg_failures" in row:
            fails = row["hard_neg_failures"]
            click.echo(f"{name}: {len(fails)} of {row['hard_neg_queries']} queries rank a hard "
                       "negative at or above an exact match (lowest exact, highest hard):")
            for f in fails:
                click.echo(f"  {f['query']}\t{f['exact']['score']:.3f} {f['exact']['title']}"
                           f"\t{f['hard']['score']:.3f} {f['hard']['title']}")
    click.echo("(percent; BM25 labels use thresholds tuned on this file)", err=True)


def parse_filters(values: tuple[str, ...]) -> dict[str, list[str]] | None:
    """--filter field=v1,v2 (OR within a field; several --filter options AND together)."""
    out: dict[str, list[str]] = {}
    for f in values:
        name, sep, vals = f.partition("=")
        if not sep or not name or not vals:
            raise click.BadParameter(f"{f!r}: expected FIELD=VALUE[,VALUE...]",
                                     param_hint="--filter")
        out.setdefault(name, []).extend(v for v in vals.split(",") if v)
    return out or None


def open_catalogue(path: Path, model_path: Path | None, verify: bool = False):
    from index.catalogue import Catalogue

    model = load_model(model_path) if model_path else None
    return Catalogue.open(path, model, verify=verify)


index_dir = click.argument("index_dir", type=click.Path(path_type=Path, file_okay=False))
catalogue_file = click.argument("catalogue", type=click.Path(path_type=Path, exists=True,
                                                             dir_okay=False))


@main.group("index")
def index_group() -> None:
    """Build and maintain an inverted index of a product catalogue."""


@index_group.command("build")
@catalogue_file
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing index at --out.")
@model_option
@handle_errors
def index_build(catalogue, out_dir, overwrite, model_path):
    """Encode CATALOGUE (JSONL {id, title, ...} or TSV id<TAB>title) into an index."""
    import time

    from deepbow.catalogue import read_catalogue
    from index.catalogue import Catalogue

    if out_dir.exists() and not overwrite:
        raise click.ClickException(f"{out_dir} exists: refusing to overwrite it "
                                   "(use --overwrite)")
    model = load_model(model_path)
    items = read_catalogue(catalogue)
    t0 = time.time()
    bar = Progress(len(items), "encoding titles")
    try:
        cat = Catalogue.build(model, items, out_dir, overwrite=overwrite, progress=bar)
    finally:
        bar.close()
    st = cat.stats()
    click.echo(f"indexed {st['docs']} items in {time.time() - t0:.1f}s "
               f"({st['postings']} postings, {st['bytes_on_disk'] / 1e6:.1f} MB) → {out_dir}",
               err=True)


def add_items(index_dir: Path, catalogue: Path, model_path: Path | None, replace: bool) -> None:
    from deepbow.catalogue import read_catalogue

    items = read_catalogue(catalogue)
    n = open_catalogue(index_dir, model_path).add(items, replace=replace)
    click.echo(f"{'updated' if replace else 'added'} {n} items", err=True)


@index_group.command("add")
@index_dir
@catalogue_file
@model_option
@handle_errors
def index_add(index_dir, catalogue, model_path):
    """Add the items of CATALOGUE (new ids only)."""
    add_items(index_dir, catalogue, model_path, replace=False)


@index_group.command("update")
@index_dir
@catalogue_file
@model_option
@handle_errors
def index_update(index_dir, catalogue, model_path):
    """Replace (or add) the items of CATALOGUE by id."""
    add_items(index_dir, catalogue, model_path, replace=True)


@index_group.command("delete")
@index_dir
@click.argument("ids", nargs=-1, required=True)
@model_option
@handle_errors
def index_delete(index_dir, ids, model_path):
    """Delete items by id."""
    n = open_catalogue(index_dir, model_path).delete(ids)
    click.echo(f"deleted {n} items", err=True)


@index_group.command("compact")
@index_dir
@model_option
@handle_errors
def index_compact(index_dir, model_path):
    """Fold added segments and deletions into one segment."""
    cat = open_catalogue(index_dir, model_path)
    cat.compact()
    click.echo(f"compacted: {cat.index.n_docs} items in one segment", err=True)


@index_group.command("stats")
@index_dir
@model_option
@json_option
@handle_errors
def index_stats(index_dir, model_path, as_json):
    """Documents, terms, postings, bytes, deletions."""
    st = open_catalogue(index_dir, model_path).stats()
    if as_json:
        emit_json(st)
        return
    for k, v in st.items():
        click.echo(f"{k:<18} {v:.2f}" if isinstance(v, float) else f"{k:<18} {v}")


@index_group.command("verify")
@index_dir
@model_option
@handle_errors
def index_verify(index_dir, model_path):
    """Check format version, every file's checksum and the model match."""
    cat = open_catalogue(index_dir, model_path, verify=True)
    click.echo(f"ok: {cat.index.n_docs} docs, {len(cat.index.segments)} segment(s), "
               f"model {cat.index.meta.get('model_id')}")


@main.command()
@index_dir
@click.argument("query", required=False)
@click.option("-k", "k", type=int, default=10, show_default=True, help="Hits per query.")
@click.option("--filter", "filters", multiple=True,
              help="FIELD=VALUE[,VALUE...]; repeat to AND several fields.")
@click.option("--queries", "queries_path", type=click.Path(path_type=Path, exists=True,
                                                           dir_okay=False),
              help="Batch: a file of queries (one a line, or 'qid<TAB>query').")
@click.option("--run", "run_path", type=click.Path(path_type=Path, dir_okay=False),
              help="With --queries: write a run file (.jsonl for JSONL, else TREC).")
@model_option
@json_option
@handle_errors
def search(index_dir, query, k, filters, queries_path, run_path, model_path, as_json):
    """Rank the catalogue in INDEX_DIR for QUERY (or for each line of --queries)."""
    cat = open_catalogue(index_dir, model_path)
    flt = parse_filters(filters)
    if queries_path is None:
        if not query:
            raise click.UsageError("give a QUERY or --queries FILE")
        hits = cat.search(query, k, flt)
        if as_json:
            emit_json({"query": query, "hits": [h.to_json() for h in hits]})
            return
        if not hits:
            click.echo("no matching items")
        for rank, h in enumerate(hits, 1):
            words = ", ".join(f"{w} {c:.3f}" for w, c in h.matched)
            click.echo(f"{rank:>3}. {h.score:8.4f}  {h.id:<12} {h.title[:48]}  [{words}]")
        return
    qs = read_queries(queries_path)
    bar = Progress(len(qs), "searching")
    try:
        results = cat.batch_search([q for _, q in qs], k, flt, progress=bar)
    finally:
        bar.close()
    from deepbow.fileio import atomic_open

    def lines():
        for (qid, q), hits in zip(qs, results, strict=True):
            for rank, h in enumerate(hits, 1):
                if run_path is not None and run_path.suffix != ".jsonl":
                    yield f"{qid} Q0 {h.id} {rank} {h.score:.6f} deepbow"
                else:
                    yield json.dumps({"qid": qid, "query": q, "rank": rank, **h.to_json()},
                                     ensure_ascii=False)

    if run_path is None:
        for line in lines():
            click.echo(line)
        return
    with atomic_open(run_path) as out:
        for line in lines():
            out.write(line + "\n")
    click.echo(f"{len(qs)} queries → {run_path}", err=True)


def read_queries(path: Path) -> list[tuple[str, str]]:
    out = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise click.ClickException(f"{path}:{lineno}: not UTF-8 ({e.reason})") from None
            if not line.strip():
                continue
            qid, sep, q = line.partition("\t")
            out.append((qid, q) if sep else (str(lineno), line))
    return out


@main.group()
def data() -> None:
    """Build the evaluation and training pair files from the shared data."""


@data.command("prepare")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True)
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None)
@handle_errors
def data_prepare(out_dir, data_dir):
    """Write ecom_dev.jsonl (NER dev titles, never trained on), qbqtc_test.jsonl (query-disjoint
    held-out QBQTC) and the train/valid pairs the default recipe uses."""
    from deepbow.datasets import (
        ecommerce_pairs,
        ner_titles,
        qbqtc_pairs,
        training_pairs,
        write_pairs,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "ecom_dev.jsonl": ecommerce_pairs(ner_titles("dev", data_dir), seed=1),
        "qbqtc_test.jsonl": qbqtc_pairs("test", data_dir),
        "train.jsonl": training_pairs("train", data_dir),
        "valid.jsonl": training_pairs("valid", data_dir),
    }
    for name, pairs in files.items():
        write_pairs(pairs, out_dir / name)
        click.echo(f"{out_dir / name}: {len(pairs)} pairs")


@main.command()
@click.option("--catalogue", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="JSONL {id, title, ...}; default: data/sample_catalogue.jsonl.")
@click.option("-k", "k", type=int, default=3, show_default=True)
@click.argument("queries", nargs=-1)
@click.option("--ebrm/--no-ebrm", "use_ebrm", default=True, show_default=True,
              help="Also show EBRM's entity view of each hit (the shipped EBRM model).")
@model_option
@handle_errors
def demo(catalogue, k, queries, use_ebrm, model_path):
    """Index the sample catalogue with the shipped model and search a few queries."""
    import tempfile

    import deepbow
    from deepbow.catalogue import read_catalogue
    from deepbow.encoder import LABEL_NAMES
    from index.catalogue import Catalogue

    model = load_model(model_path)
    path = catalogue or deepbow.DATA_DIR / "sample_catalogue.jsonl"
    items = read_catalogue(path)
    with tempfile.TemporaryDirectory() as tmp:
        cat = Catalogue.build(model, items, Path(tmp) / "index")
        click.echo(f"indexed {len(items)} products from {path} with model {model.model_id}")
        if use_ebrm and (deepbow.default_ebrm_path() / "manifest.json").is_file():
            cat.attach_ebrm(deepbow.load_ebrm(cache=None))
        for q in queries or ("手机", "华为手机", "连衣裙 韩版", "鼠标", "儿童玩具"):
            qv = model.encode([q], "query")[0]
            click.echo(f"\nquery: {q}   (query words: "
                       + ", ".join(f"{w} {x:.2f}{'+' if e else ''}" for w, x, e in qv.top(5))
                       + ")")
            hits = cat.search(q, k)
            if not hits:
                click.echo("  no matching products")
            for rank, h in enumerate(hits, 1):
                lab = int(model.label([h.score])[0])
                words = ", ".join(f"{w} {c:.2f}" for w, c in h.matched)
                click.echo(f"  {rank}. {h.score:6.3f} {LABEL_NAMES[lab]:<15} {h.title[:34]}"
                           f"  ← {words}")
                if cat.ebrm is not None:
                    ex = cat.entity_explain(q, h.id)
                    ents = " · ".join(
                        f"{r.type} {r.text} " + (f"s {r.s:.2f}" if r.type == "product"
                                                 else f"c {r.c:.2f}")
                        for r in ex.rows if not r.candidate)
                    click.echo(f"     EBRM {ex.score:.2f} ({LABEL_NAMES[ex.label]}): {ents}")
    click.echo("\nnext: deepbow explain QUERY TITLE [--scorer ebrm|hybrid]; deepbow index build "
               "CATALOGUE --out DIR; deepbow search DIR QUERY; deepbow studio --index DIR")


@main.command()
@click.argument("titles", nargs=-1, required=True)
@click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path), default=None,
              help="EBRM model directory (default: the shipped one).")
@click.option("--candidates", is_flag=True,
              help="Also list the untagged product and brand candidates EBRM weighs.")
@json_option
@handle_errors
def entities(titles, ebrm_path, candidates, as_json):
    """Tag each title's entities (product word, brand, model, misc) with the EBRM tagger, and
    the untagged product candidates EBRM also weighs (with the tagger's confidence)."""
    import deepbow

    model = deepbow.load_ebrm(ebrm_path, cache=None)
    for title, ents in zip(titles, model.entities(list(titles)), strict=True):
        ents = [e for e in ents if candidates or not e.candidate]
        if as_json:
            emit_json({"title": title, "entities": [e.to_json() for e in ents]})
            continue
        click.echo(title)
        if not ents:
            click.echo("  (no entities)")
        for e in ents:
            cand = f"  (untagged {e.type} candidate, confidence {e.conf:.2f})" if e.candidate \
                else ""
            click.echo(f"  {e.type:<8} {e.text:<20} [{e.start}:{e.end}]{cand}")


@main.group()
def ebrm() -> None:
    """The entity-based relevance model: training, tagger evaluation and the QE cache."""


@ebrm.command("train")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="EBRM model directory to write.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Shared data folder (default: $DEEPBOW_DATA or ../shared/data).")
@click.option("--hybrid-with", "deepbow_path", type=click.Path(path_type=Path), default=None,
              help="DeepBoW model the hybrid is calibrated against (default: the shipped one).")
@click.option("--tagger-epochs", type=int, default=10, show_default=True)
@click.option("--qe-epochs", type=int, default=3, show_default=True)
@click.option("--ft-epochs", type=int, default=2, show_default=True)
@click.option("--tagger-from", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Keep the tagger of this EBRM directory instead of training one.")
@handle_errors
def ebrm_train(out_dir, data_dir, deepbow_path, tagger_epochs, qe_epochs, ft_epochs,
               tagger_from):
    """Train the tagger, pretrain the QE cross-encoder, fine-tune through the soft logic, then
    calibrate the hybrid with DeepBoW (see the README for the shipped recipe)."""
    import time

    from ebrm.train import calibrate_hybrid, train_ebrm

    def log(msg: str) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')} {msg}", err=True)

    model = train_ebrm(out_dir, data_dir, tagger_epochs=tagger_epochs, qe_epochs=qe_epochs,
                       ft_epochs=ft_epochs, tagger_from=tagger_from, log=log)
    calibrate_hybrid(model, load_model(deepbow_path), out_dir, data_dir, log=log)


@ebrm.command("calibrate")
@click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="EBRM model directory to recalibrate in place.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Shared data folder (default: $DEEPBOW_DATA or ../shared/data).")
@model_option
@handle_errors
def ebrm_calibrate(ebrm_path, data_dir, model_path):
    """Choose the t-norm family and 0/1/2 thresholds again and refit the hybrid against the
    DeepBoW model (--model), on validation pairs (the last steps of `deepbow ebrm train`)."""
    import time

    from ebrm.train import recalibrate

    recalibrate(ebrm_path, load_model(model_path), data_dir,
                log=lambda s: click.echo(f"{time.strftime('%H:%M:%S')} {s}", err=True))


@ebrm.command("eval-tagger")
@click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path), default=None)
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Shared data folder (default: $DEEPBOW_DATA or ../shared/data).")
@json_option
@handle_errors
def ebrm_eval_tagger(ebrm_path, data_dir, as_json):
    """Entity precision / recall / F1 on the NER dev sets: the tagger beside the gazetteer-only
    longest-match baseline (full gazetteers), per type and over all types."""
    from ebrm.train import tagger_figures

    res = tagger_figures(ebrm_path, data_dir)
    if as_json:
        emit_json(res)
        return
    for dev, by_model in res.items():
        click.echo(f"[{dev}]")
        click.echo(f"  {'tagger':<12}{'type':<9}{'P':>7}{'R':>7}{'F1':>7}")
        for name, by_type in by_model.items():
            for typ, (p, r, f) in by_type.items():
                click.echo(f"  {name:<12}{typ:<9}{100 * p:7.2f}{100 * r:7.2f}{100 * f:7.2f}")


@ebrm.group("cache")
def ebrm_cache() -> None:
    """The QE cache: cross-encoder judgements per (normalised query, entity), on disk."""


def cache_option(fn):
    fn = click.option("--cache", "cache_path", type=click.Path(path_type=Path, dir_okay=False),
                      default=None, help="SQLite cache file (default: the model's file under "
                                         "$DEEPBOW_CACHE or ~/.cache/deepbow).")(fn)
    return click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path),
                        default=None, help="EBRM model directory (default: the shipped one).")(fn)


def open_ebrm(ebrm_path, cache_path):
    import deepbow

    return deepbow.load_ebrm(ebrm_path, cache=cache_path or True)


@ebrm_cache.command("stats")
@cache_option
@json_option
@handle_errors
def ebrm_cache_stats(ebrm_path, cache_path, as_json):
    """Entries, distinct queries, bytes on disk."""
    st = open_ebrm(ebrm_path, cache_path).cache.stats()
    if as_json:
        emit_json(st)
        return
    for k in ("path", "model_id", "entries", "queries", "bytes"):
        click.echo(f"{k:<9} {st[k]}")


@ebrm_cache.command("warm")
@click.option("--queries", "queries_path", type=click.Path(path_type=Path, exists=True,
                                                           dir_okay=False), required=True,
              help="Queries, one a line (or qid<TAB>query).")
@click.option("--titles", "titles_path", type=click.Path(path_type=Path, exists=True,
                                                         dir_okay=False), required=True,
              help="Catalogue JSONL {id, title, ...} or TSV id<TAB>title.")
@cache_option
@handle_errors
def ebrm_cache_warm(queries_path, titles_path, ebrm_path, cache_path):
    """Judge every (query, distinct entity of the titles) pair ahead of time."""
    import time

    from deepbow.catalogue import read_catalogue

    model = open_ebrm(ebrm_path, cache_path)
    items = read_catalogue(titles_path)
    t0 = time.perf_counter()
    table = model.table([it["title"] for it in items])
    t1 = time.perf_counter()
    queries = [q for _, q in read_queries(queries_path)]
    bar = Progress(len(queries), "warming", enabled=len(queries) >= 20)
    before = model.cache.misses
    try:
        for q in queries:
            model.score_table(q, table)
            bar(1)
    finally:
        bar.close()
    t2 = time.perf_counter()
    new = model.cache.misses - before
    click.echo(f"tagged {len(items)} titles ({len(items) / max(t1 - t0, 1e-9):,.0f}/s), "
               f"{len(table.keys)} distinct entities; {len(queries)} queries: {new} new QE "
               f"judgements ({new / max(t2 - t1, 1e-9):,.0f} entities/s), hit rate "
               f"{model.cache.stats()['hit_rate']:.1%}", err=True)


@ebrm_cache.command("clear")
@cache_option
@handle_errors
def ebrm_cache_clear(ebrm_path, cache_path):
    """Delete every cached judgement of this cache file."""
    model = open_ebrm(ebrm_path, cache_path)
    n = model.cache.stats()["entries"]
    model.cache.clear()
    click.echo(f"cleared {n} entries from {model.cache.path}", err=True)


# -- weight editing ---------------------------------------------------------------------------
@main.group()
def weights() -> None:
    """Inspect and hand-edit word weights and entity judgements of an index, journalled in
    INDEX_DIR/edits.jsonl and applied at once to search and explain (no rebuild)."""


def edit_options(fn, sample: bool = True):
    fn = click.option("--by", default=None, help="Who edits (default: the OS user).")(fn)
    fn = click.option("--reason", default="", help="Why, for the journal.")(fn)
    if sample:
        fn = click.option("--query", "sample_query", default=None,
                          help="Show this query's top-k before and after the edit.")(fn)
        fn = click.option("-k", "k", type=int, default=5, show_default=True)(fn)
    return model_option(fn)


def entity_edit_options(fn):
    fn = click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path),
                      default=None, help="EBRM model for --query's rankings (default: the "
                                         "shipped one).")(fn)
    return edit_options(fn)


def print_edit(rec: dict) -> None:
    from index.edits import describe

    click.echo(f"#{rec['seq']} {describe(rec)}   by {rec['by']} at {rec['ts']}"
               + (f"   ({rec['reason']})" if rec["reason"] else ""))
    fig = rec.get("figures", {})
    for k, v in fig.items():
        if k not in ("query", "before", "after"):
            click.echo(f"  {k}: {v}")
    if "before" in fig:
        before = {h["id"]: (i, h["score"]) for i, h in enumerate(fig["before"], 1)}
        click.echo(f"  query {fig['query']!r}: rank  before → after")
        for i, h in enumerate(fig["after"], 1):
            b = before.get(h["id"])
            was = f"{b[0]:>2}. {b[1]:.4f}" if b else "   (not in top)"
            click.echo(f"    {h['id']:<16} {was} → {i:>2}. {h['score']:.4f}")
        for hid, (i, sc) in before.items():
            if hid not in {h["id"] for h in fig["after"]}:
                click.echo(f"    {hid:<16} {i:>2}. {sc:.4f} → (out of top)")


def run_edit(index_dir, model_path, fn_name: str, *args, ebrm_path=None, **kwargs) -> None:
    cat = open_catalogue(index_dir, model_path)
    if fn_name in ("pin", "rule") and kwargs.get("query"):
        import deepbow

        cat.attach_ebrm(deepbow.load_ebrm(ebrm_path))
    print_edit(getattr(cat.editor, fn_name)(*args, **kwargs))


@weights.command("show")
@index_dir
@click.argument("item_id")
@click.argument("query", required=False)
@click.option("--entities", is_flag=True,
              help="With QUERY: EBRM's entity-by-entity view instead (pins and rules applied).")
@click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path), default=None)
@model_option
@json_option
@handle_errors
def weights_show(index_dir, item_id, query, entities, ebrm_path, model_path, as_json):
    """ITEM_ID's words and weights as search sees them (edits applied), or with QUERY its
    score word by word (or entity by entity with --entities)."""
    cat = open_catalogue(index_dir, model_path)
    if query and entities:
        import deepbow

        cat.attach_ebrm(deepbow.load_ebrm(ebrm_path))
        ex = cat.entity_explain(query, item_id)
        if as_json:
            emit_json(ex.to_json())
        else:
            click.echo(ex.to_text())
        return
    if query:
        ex = cat.explain(query, item_id)
        if as_json:
            emit_json({"score": ex.score, "matches": [r.__dict__ for r in ex.rows]})
        else:
            print_word_explanation(query, ex.title, ex)
        return
    doc = cat.id_map().get(item_id)
    if doc is None:
        raise click.ClickException(f"unknown id {item_id!r}")
    edits = cat.edits()
    vec = cat.doc_vector(doc)
    vec.update(edits.overlay.get(doc, {}))
    vocab = cat.model.vocab
    rows = sorted(((vocab.term_name(t), c * cat.index.scale, t in edits.overlay.get(doc, {}))
                   for t, c in vec.items() if c > 0), key=lambda r: -r[1])
    if as_json:
        emit_json({"id": item_id, "words": [{"word": w, "weight": x, "edited": e}
                                            for w, x, e in rows]})
        return
    click.echo(f"{item_id}: {cat.item(doc)['title']}")
    for w, x, e in rows:
        click.echo(f"  {w:<16} {x:8.4f}{'  (edited)' if e else ''}")


@weights.command("set")
@index_dir
@click.argument("item_id")
@click.argument("word")
@click.argument("weight", type=float)
@click.option("--create", is_flag=True, help="Allow a word outside the vocabulary.")
@edit_options
@handle_errors
def weights_set(index_dir, item_id, word, weight, create, by, reason, sample_query, k,
                model_path):
    """Set WORD's title weight in one product (0 removes it; a new word is added)."""
    run_edit(index_dir, model_path, "set_weight", item_id, word, weight, by=by, reason=reason,
             create=create, query=sample_query, k=k)


@weights.command("scale")
@index_dir
@click.argument("word")
@click.argument("factor", type=float)
@click.option("--create", is_flag=True, help="Allow a word outside the vocabulary.")
@edit_options
@handle_errors
def weights_scale(index_dir, word, factor, create, by, reason, sample_query, k, model_path):
    """Multiply WORD's weight everywhere by FACTOR (boost > 1, damp < 1)."""
    run_edit(index_dir, model_path, "scale", word, factor, by=by, reason=reason, create=create,
             query=sample_query, k=k)


@weights.command("ban")
@index_dir
@click.argument("word")
@click.option("--create", is_flag=True, help="Allow a word outside the vocabulary.")
@edit_options
@handle_errors
def weights_ban(index_dir, word, create, by, reason, sample_query, k, model_path):
    """Give WORD weight 0 everywhere (undo to lift the ban)."""
    run_edit(index_dir, model_path, "ban", word, by=by, reason=reason, create=create,
             query=sample_query, k=k)


@weights.command("link")
@index_dir
@click.argument("query_word")
@click.argument("title_word")
@click.option("--weight", type=float, default=1.0, show_default=True,
              help="TITLE_WORD's query weight, as a fraction of QUERY_WORD's.")
@click.option("--create", is_flag=True, help="Allow words outside the vocabulary.")
@edit_options
@handle_errors
def weights_link(index_dir, query_word, title_word, weight, create, by, reason, sample_query,
                 k, model_path):
    """Let QUERY_WORD in a query also match TITLE_WORD in titles (a synonym link)."""
    run_edit(index_dir, model_path, "link", query_word, title_word, weight, by=by,
             reason=reason, create=create, query=sample_query, k=k)


@weights.command("unlink")
@index_dir
@click.argument("query_word")
@click.argument("title_word")
@edit_options
@handle_errors
def weights_unlink(index_dir, query_word, title_word, by, reason, sample_query, k, model_path):
    """Remove a synonym link."""
    run_edit(index_dir, model_path, "unlink", query_word, title_word, by=by, reason=reason,
             query=sample_query, k=k)


@weights.command("pin")
@index_dir
@click.argument("query_pattern")
@click.argument("entity_type")
@click.argument("entity")
@click.option("--s", "s", type=float, default=None, help="Pinned 'satisfies' in [0, 1].")
@click.option("--c", "c", type=float, default=None, help="Pinned 'no conflict' in [0, 1].")
@entity_edit_options
@handle_errors
def weights_pin(index_dir, query_pattern, entity_type, entity, s, c, by, reason, sample_query, k,
                model_path, ebrm_path):
    """Pin EBRM's QE judgement for a query (or a glob such as '*手机*') and an entity."""
    run_edit(index_dir, model_path, "pin", query_pattern, entity_type, entity, s=s, c=c, by=by,
             reason=reason, query=sample_query, k=k, ebrm_path=ebrm_path)


@weights.command("rule")
@index_dir
@click.argument("category")
@click.argument("entity_type")
@click.argument("mode", type=click.Choice(["must_match", "ignore", "default"]))
@entity_edit_options
@handle_errors
def weights_rule(index_dir, category, entity_type, mode, by, reason, sample_query, k, model_path,
                 ebrm_path):
    """Make ENTITY_TYPE must-match or ignored in products of CATEGORY ('*' = all)."""
    run_edit(index_dir, model_path, "rule", category, entity_type, mode, by=by, reason=reason,
             query=sample_query, k=k, ebrm_path=ebrm_path)


@weights.command("undo")
@index_dir
@click.argument("seq", type=int)
@edit_options
@handle_errors
def weights_undo(index_dir, seq, by, reason, sample_query, k, model_path):
    """Switch edit #SEQ off (undo an undo to switch it back on)."""
    run_edit(index_dir, model_path, "undo", seq, by=by, reason=reason, query=sample_query, k=k)


@weights.command("log")
@index_dir
@model_option
@json_option
@handle_errors
def weights_log(index_dir, model_path, as_json):
    """Every edit, oldest first; undone ones are marked."""
    from index.edits import Journal, replay

    records = Journal(Path(index_dir) / "edits.jsonl").read()
    active = replay(records).active
    if as_json:
        for r in records:
            emit_json({**r, "active": r["seq"] in active})
        return
    if not records:
        click.echo("no edits")
    for r in records:
        print_edit(r)
        if r["seq"] not in active:
            click.echo("  (undone)")


@weights.command("export")
@index_dir
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@model_option
@handle_errors
def weights_export(index_dir, out, model_path):
    """Write the journal to OUT for review or to apply elsewhere."""
    n = open_catalogue(index_dir, model_path).editor.export(out)
    click.echo(f"exported {n} edits → {out}", err=True)


@weights.command("import")
@index_dir
@click.argument("journal", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--by", default=None, help="Record the import as done by (default: the "
                                         "original authors).")
@model_option
@handle_errors
def weights_import(index_dir, journal, by, model_path):
    """Apply the edits of an exported JOURNAL here, each validated as a new edit."""
    recs = open_catalogue(index_dir, model_path).editor.import_(journal, by=by)
    click.echo(f"imported {len(recs)} edits (#{recs[0]['seq']}–#{recs[-1]['seq']})", err=True)


@weights.command("diff")
@index_dir
@click.argument("journal", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@model_option
@handle_errors
def weights_diff(index_dir, journal, model_path):
    """Effects in force here but not in JOURNAL (-) and in JOURNAL but not here (+)."""
    d = open_catalogue(index_dir, model_path).editor.diff(journal)
    for x in d["only_here"]:
        click.echo(f"- {x}")
    for x in d["only_there"]:
        click.echo(f"+ {x}")
    if not d["only_here"] and not d["only_there"]:
        click.echo("same effect")


@main.command()
@click.option("--index", "index_path", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Index directory to search and edit.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to serve on; anything but 127.0.0.1 exposes the editor.")
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--ebrm/--no-ebrm", "use_ebrm", default=True, show_default=True,
              help="Load the EBRM model for the entity view and EBRM/hybrid ranking.")
@click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path), default=None)
@model_option
@handle_errors
def studio(index_path, host, port, use_ebrm, ebrm_path, model_path):
    """Serve the weight-editing page: search, see each word's and entity's share of the
    score, click to edit, watch the ranking change, undo from the journal."""
    import time

    import deepbow
    from cli.studio import Studio, serve

    cat = open_catalogue(index_path, model_path)
    hybrid = None
    if use_ebrm:
        ebrm_model = deepbow.load_ebrm(ebrm_path)
        cat.attach_ebrm(ebrm_model)
        if ebrm_model.manifest.get("hybrid", {}).get("deepbow_model_id") == cat.model.model_id:
            from ebrm.hybrid import Hybrid

            hybrid = Hybrid(cat.model, ebrm_model)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}: anyone who can reach it can edit this index",
                   err=True)
    server = serve(Studio(cat, hybrid), host, port)
    click.echo(f"deepbow studio on http://{host}:{server.server_address[1]}/  (Ctrl-C stops)",
               err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
