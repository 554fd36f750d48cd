"""`rag index` and `rag indexes`: build, list, inspect and remove local document indexes.

Thin on purpose: parse options, call `indexers.build.build_index` (with `--watch`,
`indexers.watch`) or the index's store (`indexers.stores`), print. Progress goes to stderr;
the summary (or `--json`) to stdout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Annotated, Any, Optional

import typer

from rag.cli import output
from rag.cli.options import JsonOption
from rag.core.config import load_settings, parse_value
from rag.core.errors import IndexCorrupt

#: The longest `--wait`: a day covers any run queued behind another.
MAX_WAIT_S = 86_400

EmbedderOption = Annotated[
    Optional[str],  # noqa: UP007, UP045 - typer needs Optional on Python 3.10
    typer.Option(
        "--embedder",
        help="sentence-transformers model for the vectors (default all-MiniLM-L6-v2). "
        "Env: RAG_EMBEDDER.",
    ),
]


def index(
    paths: Annotated[
        Optional[list[str]],  # noqa: UP007, UP045 - text: click makes "" a Path(".")
        typer.Argument(help="Files or folders to index (default: the ones indexed last time)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", "-n", help="Index name, or a folder path.")] = ...,  # type: ignore[assignment]
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Start over: re-read and re-embed every file.")
    ] = False,
    exclude: Annotated[
        Optional[list[str]],  # noqa: UP007, UP045
        typer.Option(
            "--exclude",
            "-x",
            help="Skip files/folders matching this glob (repeatable). Recorded with the "
            "index: later updates and --watch skip the same; giving it again replaces them.",
        ),  # fmt: skip
    ] = None,
    wait: Annotated[
        str,
        typer.Option(
            "--wait",
            help="If another run is writing this index, wait up "
            f"to this many seconds (at most {MAX_WAIT_S}) instead of refusing.",
        ),
    ] = "0",  # fmt: skip
    embedder: EmbedderOption = None,
    store: Annotated[
        Optional[str],  # noqa: UP007, UP045
        typer.Option(
            "--store",
            help="Where a new index keeps its chunks and vectors: local (files in RAG_HOME, "
            "the default) or pgvector (PostgreSQL, url in [stores.pgvector]). Env: RAG_STORE.",
        ),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Then keep running: update the index whenever its files change (a burst "
            "of saves is one update; Ctrl-C stops).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Index documents under PATH into the index NAME; re-runs re-embed only changed files."""
    from indexers.build import build_index
    from indexers.discovery import check_given

    # Read as text and checked here: click's own float let nan and inf through (to a
    # filelock traceback) and printed a usage block for -1 or `5s`. One line, exit 2.
    seconds = parse_value("wait", wait, float, "--wait", low=0, high=MAX_WAIT_S)
    for path in paths or []:  # empty, missing or unreachable: one clear line, exit 2
        check_given(path)
    settings = load_settings(embedder=embedder)
    if watch:
        _watch(list(paths or []), name, settings, rebuild, exclude or None, seconds, store,
               json_output)  # fmt: skip
        return
    with _Progress() as progress:
        report = build_index(
            list(paths or []),
            name,
            settings,
            rebuild=rebuild,
            exclude=exclude or None,
            wait=seconds,
            progress=progress.update,
            store_kind=store,
        )
    _print_report(name, report, json_output)


def _print_report(name: str, report: Any, json_output: bool) -> None:
    for warning in report.warnings:  # one line each, even for a file name with a newline
        output.warn(output.printable(warning))
    if json_output:
        output.print_json(report.as_dict())
        return
    data = report.as_dict()
    verb = "Built" if report.created else "Updated" if report.changed else "Unchanged:"
    output.out.print(
        f"{verb} index {name!r}: {data['files_read']} files read "
        f"({report.files_embedded} embedded, {report.files_unchanged} unchanged, "
        f"{report.files_removed} removed), {report.chunks_added} chunks added, "
        f"{report.chunks_total} chunks in all, {report.seconds:.1f}s.",
        markup=False,
    )
    if data["formats"]:
        kinds = ", ".join(f"{n} {suffix}" for suffix, n in data["formats"].items())
        output.out.print(f"Read by format: {kinds}.", markup=False)
    if report.skipped:
        reasons = ", ".join(f"{n} {r}" for r, n in report.skip_reasons().items())
        output.out.print(f"Skipped {len(report.skipped)}: {reasons}.", markup=False)


def _watch(
    paths: list[str], name: str, settings: Any, rebuild: bool, exclude: list[str] | None,
    wait: float, store: str | None, json_output: bool,
) -> None:  # fmt: skip
    """`rag index --watch`: the update `rag index` makes, then one more whenever the files
    change, until Ctrl-C or SIGTERM: an update in progress is finished if its commit has
    begun, else abandoned (the index as it was). Exit 0, one line, either way. With
    `--json`, each report is one line of JSON."""
    from indexers.watch import IndexWatcher, Update, WatchStopped

    stop = threading.Event()
    watcher = IndexWatcher(name, settings, paths=paths, exclude=exclude, stop=stop,
                           store_kind=store)  # fmt: skip

    def said(update: Update) -> None:
        if update.report is None:
            output.warn(update.line())
            return
        for warning in update.report.warnings:
            output.warn(output.printable(warning))
        if json_output:
            _json_line(update.report.as_dict())
        else:
            output.out.print(output.printable(update.line()), markup=False)

    with _stop_on_signals(stop):
        try:
            with _Progress() as progress:
                report = watcher.build(wait=wait, rebuild=rebuild, progress=progress.update)
        except WatchStopped:
            output.note(f"Stopped: index {name!r} was not updated; it is as it was.")
            return
        if json_output:
            for warning in report.warnings:
                output.warn(output.printable(warning))
            _json_line(report.as_dict())
        else:
            _print_report(name, report, json_output)
        where = ", ".join(output.printable(str(r)) for r in watcher.roots())
        try:
            watcher.run(
                said, lambda: output.note(f"Watching {where} for index {name!r}; Ctrl-C stops.")
            )
        except WatchStopped:
            output.note(
                f"Stopped watching index {name!r}; the update in progress was abandoned, "
                "the index is as it was before it."
            )
            return
    output.note(f"Stopped watching index {name!r}.")


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` instead of interrupting whatever runs: the watcher
    then stops where it is safe to."""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _json_line(payload: dict[str, Any]) -> None:
    """One report as one line of JSON on stdout (JSON Lines), flushed at once."""
    from rag.core.safe_text import escape_surrogates

    text = json.dumps(payload, ensure_ascii=False)
    sys.stdout.write(escape_surrogates(text, backslash="\\\\") + "\n")
    sys.stdout.flush()


class _Progress:
    """A rich progress bar on stderr, one task per phase (read, embed, write).

    It starts with the first phase, so a run that fails before reading anything
    prints just its error (an empty bar would still leave a blank line behind).
    """

    LABELS = {
        "read": "Reading files",
        "ocr": "Reading scans (OCR)",
        "embed": "Embedding chunks",
        "write": "Writing index",
    }

    def __enter__(self) -> _Progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.bar = Progress(
            "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=output.err, transient=False,
        )  # fmt: skip
        self.tasks: dict[str, Any] = {}
        return self

    def update(self, phase: str, done: int, total: int) -> None:
        """`total` 0: not known ahead (chunks appear as files are read), a running count."""
        if not self.tasks:
            self.bar.start()
        if phase == "write":  # every chunk is in: the running counts are final
            for task in self.bar.tasks:
                if task.total is None:
                    self.bar.update(task.id, total=task.completed)
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(
                self.LABELS.get(phase, phase), total=total or None
            )
        self.bar.update(self.tasks[phase], completed=done, total=total or None)

    def __exit__(self, *exc: object) -> None:
        if self.tasks:
            self.bar.stop()


indexes_app = typer.Typer(
    help="List, inspect and remove indexes (bare `rag indexes` lists them).",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)


@indexes_app.callback()
def _default(ctx: typer.Context, json_output: JsonOption = False) -> None:
    if ctx.invoked_subcommand is None:
        list_indexes(json_output=json_output)


def _when(ts: float | None) -> str:
    if not ts:
        return "?"
    try:
        return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):  # missing or not a time
        return "?"


@indexes_app.command("list")
def list_indexes(json_output: JsonOption = False) -> None:
    """List the indexes under RAG_HOME."""
    from indexers import stores

    rows = [stores.summary(index) for index in stores.list_indexes(load_settings())]
    if json_output:
        output.print_json({"indexes": rows})
        return
    if not rows:
        output.err.print(
            "No indexes yet. Create one with `rag index PATH --name NAME`.", markup=False
        )
        return
    for r in rows:
        if r.get("old"):
            output.out.print(f"{r['name']}  (older format: {r['error']})", markup=False)
        elif r.get("unavailable"):
            output.out.print(f"{r['name']}  (unavailable: {r['error']})", markup=False)
        elif "error" in r:
            output.out.print(f"{r['name']}  (damaged: {r['error']})", markup=False)
        else:
            output.out.print(
                f"{r['name']}  {r['chunks']} chunks from {r['files']} files, {r['embedder']}, "
                f"{r['bytes'] / 1e6:.1f} MB, updated {_when(r['updated_at'])}"
                + ("" if r["store"] == "local" else f", in {r['store']}"),
                markup=False,
            )
    if any("error" in r and not r.get("old") and not r.get("unavailable") for r in rows):
        output.err.print(
            "Rebuild a damaged index with `rag index PATH --name NAME --rebuild`.", markup=False
        )


@indexes_app.command("info")
def info(
    name: Annotated[str, typer.Argument(help="Index name or folder path.")],
    json_output: JsonOption = False,
) -> None:
    """Show what an index holds and how it was built."""
    from indexers import stores

    index = stores.open_store(name, load_settings())
    try:
        state = index.verify()  # or IndexNotFound
    except IndexCorrupt as exc:
        from indexers.stores.base import damaged

        raise damaged(name, exc) from None
    row = stores.row(index, state)
    if json_output:
        output.print_json(row)
        return
    p = state.params
    vectors = (
        f"FAISS {p['faiss']} (approximate above {p.get('approx_threshold')} chunks)"
        if row["store"] == "local"
        else f"pgvector (approximate above {p.get('approx_threshold')} chunks)"
    )
    lines = [
        f"name:        {name}",
        f"path:        {index.index_dir}",
        f"store:       {row['store']} ({row['where']})",
        f"chunks:      {p['chunks']} from {p.get('files', 0)} files",
        f"embedder:    {p['embedder']} ({p.get('embedder_id', '?')}, dim {p['dim']})",
        f"vectors:     {vectors}",
        f"roots:       {', '.join(p.get('roots', []))}",
        f"updated:     {_when(p.get('updated_at'))} (generation {state.generation}, "
        f"format v{p.get('format_version')})",
        f"size:        {row['bytes'] / 1e6:.1f} MB",
    ]
    # A root, a name or an embedder is anyone's text: shown, never obeyed by the terminal.
    output.out.print("\n".join(output.printable(line) for line in lines), markup=False)


@indexes_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="Index name or folder path.")]) -> None:
    """Delete an index (its files only; your documents are untouched)."""
    from indexers import stores

    index = stores.open_store(name, load_settings())
    index_dir = index.index_dir
    left = index.remove()
    if left:
        output.warn(
            f"Kept {index_dir}: it also holds {len(left)} file(s) pocketrag did not write "
            f"({', '.join(left[:5])}{', ...' if len(left) > 5 else ''})."
        )
    output.out.print(f"Removed index {name!r} ({index_dir}).", markup=False)
