"""`rag models`: which models exist, which are here now, and fetching one."""

from __future__ import annotations

import typer

from rag.cli import output
from rag.cli.options import JsonOption

app = typer.Typer(
    help="List and download models.", invoke_without_command=True, no_args_is_help=False
)


@app.callback()
def models(ctx: typer.Context) -> None:
    """List and download models (bare `rag models` lists them)."""
    if ctx.invoked_subcommand is None:
        list_models(json_output=False)


@app.command("list")
def list_models(json_output: JsonOption = False) -> None:
    """Show each model alias, its size and whether it is available offline now."""
    from rag.generators.model_files import ALIASES, format_size

    rows = []
    for name, source in ALIASES.items():
        path = source.locate()
        size = path.stat().st_size if path else source.size_bytes
        rows.append(
            {
                "name": name,
                "description": source.description,
                "size_bytes": size,
                "available": path is not None,
                "path": str(path) if path else None,
            }
        )
    if json_output:
        output.print_json({"models": rows})
        return
    from rich.table import Table

    table = Table()
    for column in ("model", "description", "size", "available", "path"):
        # Fold long cells onto more lines instead of cutting them off in a narrow terminal.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["name"],
            row["description"],
            format_size(row["size_bytes"]),
            "yes" if row["available"] else "no (rag models pull)",
            row["path"] or "",
        )
    output.out.print(table)
    output.out.print(
        "Also accepted by --model: a .gguf path, hf:OWNER/REPO/FILE.gguf, openai:URL#MODEL.",
        markup=False,
    )


@app.command("pull")
def pull(name: str = typer.Argument(..., help="Alias or hf:OWNER/REPO/FILE.gguf.")) -> None:
    """Download a model into the Hugging Face cache (a progress bar shows on stderr)."""
    from rag.generators.model_files import resolve_model

    path = resolve_model(name).fetch()
    output.out.print(str(path), markup=False)
