"""`deepbow demo`: index the sample catalogue with the shipped models and search a few queries."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from cli.common import handle_errors, k_option, model_option

# product words, a brand + product, and real shopper queries (Multi-CPR train queries)
DEMO_QUERIES = ("手机", "华为手机", "鼠标", "儿童玩具", "哺乳期法式连衣裙", "男士毛领外套",
                "连衣裙 韩版")


@click.command()
@click.option("--catalogue", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="JSONL {id, title, ...}; default: the sample catalogue.")
@k_option(3)
@click.argument("queries", nargs=-1)
@click.option("--ebrm/--no-ebrm", "use_ebrm", default=True, show_default=True,
              help="Also show EBRM's entity view of each hit (the shipped EBRM model).")
@model_option
@handle_errors
def demo(catalogue, k, queries, use_ebrm, model_path):
    """Index the sample catalogue with the shipped models and search a few queries: DeepBoW
    retrieves, the hybrid (DeepBoW + EBRM) orders, each hit shown word by word and entity by
    entity."""
    import deepbow
    from deepbow.readers import read_catalogue

    model = deepbow.load(model_path)
    path = catalogue or deepbow.sample_catalogue_path()
    items = read_catalogue(path)
    with tempfile.TemporaryDirectory() as tmp:
        cat = deepbow.build_index(items, Path(tmp) / "index", model)
        click.echo(f"indexed {len(items)} products from {path} with model {model.model_id}")
        ebrm_dir = deepbow.default_ebrm_path()
        reranker = deepbow.reranker(cat, cache=None) \
            if use_ebrm and (ebrm_dir / "manifest.json").is_file() else None
        for q in queries or DEMO_QUERIES:
            _show(model, cat, reranker, q, k)
    click.echo("\nnext: deepbow explain QUERY TITLE [--scorer ebrm|hybrid]; deepbow index build "
               "CATALOGUE --out DIR; deepbow search DIR QUERY; deepbow studio --index DIR")


def _show(model, cat, reranker, q: str, k: int) -> None:
    from deepbow.explain import LABEL_NAMES

    qv = model.encode([q], "query")[0]
    click.echo(f"\nquery: {q}   (query words: "
               + ", ".join(f"{w} {x:.2f}{'+' if e else ''}" for w, x, e in qv.top(5)) + ")")
    if reranker is not None and reranker.hybrid is not None:
        ranked = reranker.rerank(q, k, "hybrid")  # DeepBoW retrieves, the hybrid orders
        labels = reranker.hybrid.label([s for _, s in ranked])
    else:
        ranked = [(h, h.score) for h in cat.search(q, k)]
        labels = model.label([s for _, s in ranked])
    if not ranked:
        click.echo("  no matching products")
    for rank, ((h, score), lab) in enumerate(zip(ranked, labels, strict=True), 1):
        words = ", ".join(f"{w} {c:.2f}" for w, c in h.matched)
        click.echo(f"  {rank}. {score:6.3f} {LABEL_NAMES[int(lab)]:<15} {h.title[:34]}  ← {words}")
        if reranker is not None:
            ex = reranker.entity_explain(q, h.id)
            ents = " · ".join(f"{r.type} {r.text} " + (f"s {r.s:.2f}" if r.type == "product"
                                                       else f"c {r.c:.2f}")
                              for r in ex.rows if not r.candidate)
            click.echo(f"     EBRM {ex.score:.2f} ({LABEL_NAMES[ex.label]}): {ents}")
