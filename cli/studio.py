"""`deepbow studio`: serve the weight-editing page (the server is index/studio.py)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cli.common import ebrm_option, handle_errors, model_option, open_index
from cli.scale_cmds import after_edit


@click.command()
@click.option("--index", "index_path", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Index directory to search and edit.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to serve on; anything but 127.0.0.1 exposes the editor.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--ebrm/--no-ebrm", "use_ebrm", default=True, show_default=True,
              help="Load the EBRM model for the entity view and EBRM/hybrid ranking.")
@click.option("--backend", type=click.Choice(["local", "milvus"]), default="local",
              show_default=True, help="Rank and explain with the local index or with its "
                                      "Milvus copy (index export-milvus); edits always go to "
                                      "the index's journal, and the copy follows them.")
@ebrm_option
@model_option
@handle_errors
def studio(index_path, host, port, use_ebrm, backend, ebrm_path, model_path):
    """Serve the weight-editing page: search, see each word's and entity's share of the
    score, click to edit, watch the ranking change, undo from the journal."""
    import deepbow
    from index.studio import Studio, serve

    cat = open_index(index_path, model_path)
    served = deepbow.open_milvus(index=index_path, model=cat.model) \
        if backend == "milvus" else cat
    reranker = deepbow.reranker(served, ebrm_path) if use_ebrm else None
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}: anyone who can reach it can edit this index",
                   err=True)
    server = serve(Studio(cat, reranker, served=served, after_edit=after_edit(cat)), host,
                   port)
    click.echo(f"deepbow studio on http://{host}:{server.server_address[1]}/  (Ctrl-C stops)",
               err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
