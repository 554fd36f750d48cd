"""The `rag` application: one place that registers every command and maps errors to exit codes.

Every command module is light to import: heavy libraries load inside the
library functions the commands call, so `rag --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click
import typer
import typer.main
from typer.core import TyperGroup

from rag.cli import output
from rag.core.errors import RagError


class _RagGroup(TyperGroup):
    """Turns a `RagError` from any command into its message and exit code, never a traceback;
    so too an output that cannot be written (a full disk, a closed pipe)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from rag.core import plugins

        return [*super().list_commands(ctx), *sorted(plugins.parts("command"))]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """A command of pocketrag's own, else a `command` part's (`rag eval` is evals'),
        built only when asked for: `rag ask` never loads a plugin for its command line."""
        found = super().get_command(ctx, name)
        if found is not None:
            return found
        from rag.core import plugins

        part = plugins.parts("command").get(name)
        if part is None:
            return None
        group = typer.main.get_command(part.factory())
        group.name = name
        return group

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RagError as exc:
            output.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:  # the reader (`| head`) has what it wanted
            output.discard_stdout()
            raise typer.Exit(1) from None
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            output.error(f"Cannot write the output: {exc.strerror or exc}{where}.")
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_RagGroup,
    name="rag",
    help="pocketrag: a local model that answers from web search and your own files, "
    "with citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# --- command registration ------------------------------------------------------------
from rag.cli import (  # noqa: E402
    ask_commands,
    attach_command,
    chat_command,
    history_commands,
    index_commands,
    mcp_command,
    model_commands,
    search_command,
    serve_command,
)

app.command("ask")(ask_commands.ask)
app.command("chat")(chat_command.chat)
app.command("search")(search_command.search)
app.command("serve")(serve_command.serve)
app.command("mcp")(mcp_command.mcp)
app.command("index")(index_commands.index)
attach_command.register(index_commands.indexes_app)
app.add_typer(index_commands.indexes_app, name="indexes")
app.add_typer(model_commands.app, name="models")
app.add_typer(history_commands.app, name="history")


def command() -> click.Command:
    """The click command tree typer builds from `app` (building it walks every option)."""
    return typer.main.get_command(app)


def main() -> None:
    output.ensure_streams()
    app(prog_name="rag")


if __name__ == "__main__":  # pragma: no cover
    main()
