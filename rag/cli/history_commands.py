"""`rag history`: the conversations `rag chat` (and the research desk) saved.

Thin: parse, call the store (`rag.conversations`), print. Lists and answers go to
stdout, notes to stderr; `--json` prints what `GET /v1/conversations` returns.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from rag.cli import output
from rag.cli.options import JsonOption
from rag.core.config import load_settings

IdArgument = Annotated[str, typer.Argument(help="The conversation's id (see `rag history`).")]

app = typer.Typer(
    help="List, show, export, rename and remove saved conversations (bare `rag history` "
    "lists them).",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)


def _store() -> Any:
    from rag.conversations import open_store

    return open_store(load_settings())


@app.callback()
def history(
    ctx: typer.Context,
    query: Annotated[
        Optional[str],  # noqa: UP007, UP045 - typer needs Optional on Python 3.10
        typer.Option(
            "--query",
            "-q",
            help="Only conversations whose titles or turns hold every word of this.",
        ),  # fmt: skip
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many.")] = 100,
    json_output: JsonOption = False,
) -> None:
    """Saved conversations, most recently updated first."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _store().find(query or "", limit)
    if json_output:
        output.print_json({"conversations": rows})
        return
    if not rows:
        output.note(
            "No conversations match." if query else "No conversations yet; `rag chat` saves them."
        )
        return
    for row in rows:
        turns = f"{row['turns']} turn{'' if row['turns'] == 1 else 's'}"
        title = output.printable(row["title"])
        output.out.print(
            f"{row['id']:>5}  {_when(row['updated'])}  {turns:>9}  {title}", markup=False
        )


def _when(stamp: str) -> str:
    """An ISO 8601 UTC time as local `YYYY-MM-DD HH:MM`."""
    import datetime as dt

    try:
        moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return moment.astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(stamp)


@app.command("show")
def show(ident: IdArgument, json_output: JsonOption = False) -> None:
    """Print a conversation: each question, its answer and its sources."""
    from rag.cli.ask_commands import print_sources
    from rag.conversations import parse_id

    conversation = _store().get(parse_id(ident))
    if json_output:
        output.print_json(conversation)
        return
    output.out.print(
        f"{output.printable(conversation['title'])}  (conversation {conversation['id']}, "
        f"{len(conversation['turns'])} turns)",
        style="bold",
        markup=False,
    )
    for turn in conversation["turns"]:
        answer = turn["answer"]
        sys.stdout.write(f"\nyou> {output.printable(turn['question'])}\n")
        if turn["search_query"] != turn["question"]:
            output.note(f"(searched for: {output.printable(turn['search_query'])})")
        output.write_text(str(answer.get("answer", "")) + "\n")
        print_sources(answer.get("sources") or [])


@app.command("export")
def export(
    ident: IdArgument,
    out: Annotated[
        Optional[Path],  # noqa: UP007, UP045
        typer.Option("--out", "-o", help="Write the Markdown here instead of stdout."),
    ] = None,
) -> None:
    """A conversation as Markdown, with each turn's numbered sources and what the model read."""
    from rag.conversations import markdown, parse_id

    text = markdown(_store().get(parse_id(ident)))
    if out is None:
        sys.stdout.write(output.printable(text, keep_newlines=True))
        sys.stdout.flush()
        return
    from rag.core.errors import UsageError
    from rag.core.files import write_atomic

    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name.")
    write_atomic(out, text)
    output.note(f"Wrote {output.printable(str(out))}.")


@app.command("rename")
def rename(
    ident: IdArgument,
    title: Annotated[str, typer.Argument(help="The new title (at most 200 characters).")],
) -> None:
    """Give a conversation a new title."""
    from rag.conversations import parse_id

    row = _store().rename(parse_id(ident), title)
    output.out.print(
        f"Conversation {row['id']} is now {output.printable(row['title'])!r}.", markup=False
    )


@app.command("rm")
def remove(ident: IdArgument) -> None:
    """Delete a conversation and its turns."""
    from rag.conversations import parse_id

    row = _store().delete(parse_id(ident))
    output.out.print(
        f"Removed conversation {row['id']} ({output.printable(row['title'])}).", markup=False
    )
