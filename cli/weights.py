"""`deepbow weights`: inspect and hand-edit an index's word weights and entity judgements.

The edit commands (set, scale, ban, link, unlink, pin, rule, undo) are made from the one table
of operations (index/edits.py OPS): their arguments, ranges and help come from it, and each
calls Editor.apply, as the studio and `weights import` do.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import (
    ebrm_option,
    emit_explanation,
    emit_json,
    handle_errors,
    index_dir,
    json_option,
    model_option,
    open_index,
)
from cli.scale_cmds import follow
from index.edits import OPS, REQUIRED, Op


@click.group()
def weights() -> None:
    """Inspect and hand-edit word weights and entity judgements of an index, journalled in
    INDEX_DIR/edits.jsonl and applied at once to search and explain (no rebuild)."""


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


def _edit_command(op: Op) -> click.Command:
    """A click command for one operation of the table."""
    types = {"number": float, "seq": int, "text": str, "word": str}

    @handle_errors
    def run(index_dir, model_path, by, reason, sample_query, k, create=False, ebrm_path=None,
            **args):
        import deepbow
        from index.editor import Editor
        from index.milvus_link import ITEM_OPS  # here: it pulls in the index (numba, scipy)

        cat = open_index(index_dir, model_path)
        reranker = deepbow.reranker(cat, ebrm_path) if op.entity and sample_query else None
        print_edit(Editor(cat, reranker).apply(op.name, args, by, reason, sample_query, k,
                                               create))
        if op.name in ITEM_OPS:
            follow(cat)

    params: list[click.Parameter] = [click.Argument(["index_dir"], type=click.Path(
        path_type=Path, file_okay=False))]
    for a in op.args:
        kind = click.Choice(a.choices) if a.kind == "choice" else types[a.kind]
        if a.default is REQUIRED:
            params.append(click.Argument([a.name], type=kind, metavar=a.metavar))
        else:
            params.append(click.Option([f"--{a.name}", a.name], type=kind, default=a.default,
                                       show_default=a.default is not None, help=a.help))
    if op.words:
        params.append(click.Option(["--create"], is_flag=True,
                                   help="Allow words outside the model's vocabulary."))
    params += [click.Option(["--by"], default=None, help="Who edits (default: the OS user)."),
               click.Option(["--reason"], default="", help="Why, for the journal."),
               click.Option(["--query", "sample_query"], default=None,
                            help="Show this query's top-k before and after the edit."),
               click.Option(["-k", "k"], type=click.IntRange(1, 1000), default=5,
                            show_default=True)]
    cmd = click.Command(op.name, callback=run, params=params, help=op.help)
    model_option(cmd)
    if op.entity:
        ebrm_option(cmd)
    return cmd


for _op in OPS.values():
    weights.add_command(_edit_command(_op))


@weights.command("show")
@index_dir
@click.argument("item_id")
@click.argument("query", required=False)
@click.option("--entities", is_flag=True,
              help="With QUERY: EBRM's entity-by-entity view instead (pins and rules applied).")
@ebrm_option
@model_option
@json_option
@handle_errors
def weights_show(index_dir, item_id, query, entities, ebrm_path, model_path, as_json):
    """ITEM_ID's words and weights as search sees them (edits applied), or with QUERY its
    score word by word (or entity by entity with --entities)."""
    import deepbow

    cat = open_index(index_dir, model_path)
    if query:
        emit_explanation(deepbow.reranker(cat, ebrm_path).entity_explain(query, item_id)
                         if entities else cat.explain(query, item_id), as_json)
        return
    rows = cat.editor.item_words(item_id)
    if as_json:
        emit_json({"id": item_id, "words": [{"word": w, "weight": x, "edited": e}
                                            for w, x, e in rows]})
        return
    click.echo(f"{item_id}: {cat.item_by_id(item_id)['title']}")
    for w, x, e in rows:
        click.echo(f"  {w:<16} {x:8.4f}{'  (edited)' if e else ''}")


@weights.command("log")
@index_dir
@model_option
@json_option
@handle_errors
def weights_log(index_dir, model_path, as_json):
    """Every edit, oldest first; undone ones are marked (--model is accepted, not needed)."""
    from index.editor import journal_of
    from index.edits import active_seqs

    records = journal_of(index_dir).read()
    active = active_seqs(records)
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
    n = open_index(index_dir, model_path).editor.export(out)
    click.echo(f"exported {n} edits → {out}", err=True)


@weights.command("import")
@index_dir
@click.argument("journal", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--by", default=None, help="Record the import as done by (default: the "
                                         "original authors).")
@model_option
@handle_errors
def weights_import(index_dir, journal, by, model_path):
    """Apply the edits of an exported JOURNAL here, each validated as a new edit; the whole
    file is checked first and then appended at once (all of it or nothing)."""
    cat = open_index(index_dir, model_path)
    recs = cat.editor.import_(journal, by=by)
    click.echo(f"imported {len(recs)} edits (#{recs[0]['seq']}–#{recs[-1]['seq']})", err=True)
    follow(cat)


@weights.command("diff")
@index_dir
@click.argument("journal", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@model_option
@handle_errors
def weights_diff(index_dir, journal, model_path):
    """Effects in force here but not in JOURNAL (-) and in JOURNAL but not here (+)."""
    d = open_index(index_dir, model_path).editor.diff(journal)
    for x in d["only_here"]:
        click.echo(f"- {x}")
    for x in d["only_there"]:
        click.echo(f"+ {x}")
    if not d["only_here"] and not d["only_there"]:
        click.echo("same effect")
