"""What every command shares: error handling, common options, progress and output.

Commands parse, call the API (the `deepbow` facade) and print: results on stdout (a table, or
JSON with --json), progress and messages on stderr. Our own errors, and the operating system's
(a read-only folder, a full disk), become one line `Error: ...` and exit status 1, never a
traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
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
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise click.ClickException(f"{where}{e.strerror or e}") from None
        except MemoryError:
            raise click.ClickException("not enough memory for this request") from None

    return wrapper


def model_option(fn):
    return click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
                        help="Model directory (default: $DEEPBOW_MODEL or the shipped model).")(fn)


def ebrm_option(fn):
    return click.option("--ebrm-model", "ebrm_path", type=click.Path(path_type=Path),
                        default=None, help="EBRM model directory (default: $DEEPBOW_EBRM_MODEL "
                                           "or the shipped one).")(fn)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON instead of a table.")(fn)


def data_option(fn):
    return click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
                        default=None,
                        help="Shared data folder (default: $DEEPBOW_DATA or ../shared/data).")(fn)


def scorer_options(fn):
    """--scorer, --ebrm-model and --edits: which scorer, and the journal it applies."""
    fn = click.option("--edits", "edits_path", type=click.Path(path_type=Path, exists=True),
                      default=None, help="Apply an edit journal (a file, or an index directory "
                                         "with edits.jsonl): word scales, bans, links, pins "
                                         "and type rules.")(fn)
    fn = ebrm_option(fn)
    return click.option("--scorer", default="deepbow", show_default=True,
                        help="deepbow (word bags), ebrm (entities + soft logic) or hybrid.")(fn)


def valid_option(fn):
    return click.option("--valid", "valid_path", type=click.Path(path_type=Path, exists=True,
                                                                 dir_okay=False), default=None,
                        help="With --pairs: validation pairs (default: a query-disjoint 15% "
                             "of --pairs).")(fn)


def k_option(default: int):
    return click.option("-k", "k", type=click.IntRange(1, 10_000), default=default,
                        show_default=True, help="Hits per query (1 to 10,000).")


index_dir = click.argument("index_dir", type=click.Path(path_type=Path, file_okay=False))
catalogue_file = click.argument("catalogue", type=click.Path(path_type=Path, exists=True,
                                                             dir_okay=False))


def open_index(path: Path, model_path: Path | None, verify: bool = False):
    import deepbow

    return deepbow.open_index(path, deepbow.load(model_path) if model_path else None, verify)


def labelled_pairs(path: Path) -> list:
    """Every pair of a JSONL file, refused unless each has a label (file:line on bad input)."""
    from deepbow.readers import labelled, read_pairs

    return labelled(list(read_pairs(path)), path)


def finetune_pairs(pairs_path: Path, valid_path: Path | None, init_dir: Path | None):
    """(pairs, validation pairs or None) for `train --pairs` and `ebrm train --pairs`, which
    fine-tune the model given with --init."""
    if init_dir is None:
        raise click.UsageError("--pairs fine-tunes a model: give it with --init")
    return labelled_pairs(pairs_path), labelled_pairs(valid_path) if valid_path else None


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def emit_explanation(ex, as_json: bool) -> None:
    """An Explanation (word by word or entity by entity): JSON with --json, else its text."""
    if as_json:
        emit_json(ex.to_json())
    else:
        click.echo(ex.to_text())


def log_line(msg: str) -> None:
    """A timestamped progress line on stderr (training logs)."""
    click.echo(f"{time.strftime('%H:%M:%S')} {msg}", err=True)


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


class Progress:
    """A progress bar on stderr (items/s and ETA), silent when stderr is not a terminal
    unless forced; the library itself never prints."""

    def __init__(self, total: int | None, label: str, enabled: bool | None = None) -> None:
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
        dt = time.perf_counter() - self.start
        return f"{self.done / dt:,.0f}/s" if dt > 0 and self.done else ""

    def __call__(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n, current_item=self.done)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
