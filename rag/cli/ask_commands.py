"""`rag ask`: one question, answered from the requested sources, streamed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from rag.cli import output
from rag.cli.options import IndexOption, JsonOption, ModelOption, SearchOption, question_options
from rag.core.config import Settings, load_settings
from rag.question_options import ASK_OPTIONS


@question_options(*ASK_OPTIONS)
def ask(
    question: str = typer.Argument(..., help="The question to answer."),
    search: SearchOption = False,
    index: IndexOption = None,
    model: ModelOption = None,
    json_output: JsonOption = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Answer QUESTION with a local model, citing web results (--search) or your index (--index)."""
    from rag.question_options import overrides
    from rag.sources import source_specs

    settings = load_settings(model=model, **overrides(options or {}))
    specs = source_specs(web=search, indexes=index)
    # A spinner on stderr (terminals only) until the first token: searching and loading take time.
    status = output.working(f"Searching {', '.join(specs)}…" if specs else "Thinking…")

    def stream(text: str) -> None:
        status.stop()
        output.write_text(text)

    on_text = None if json_output else stream
    try:
        # A running `rag serve` (the `server` setting) answers when it can; else this process.
        result = remote_answer(question, settings, index or [], search, model, on_text)
        if result is None:
            from rag.generators import load_generator
            from rag.orchestrator import answer, retrieve
            from rag.sources import open_sources

            retrieved = retrieve(question, open_sources(specs, settings), settings)
            generator = load_generator(settings)
            result = answer(question, retrieved, generator, settings, on_text=on_text).as_dict()
    finally:
        status.stop()
    if json_output:
        output.print_json(result)
        for warning in result["warnings"]:  # also on stderr: a pipe reading stdout may drop them
            output.warn(warning)
        return
    sys.stdout.write("\n")
    print_sources(result["sources"], result.get("web_engine"))
    for warning in result["warnings"]:
        output.warn(warning)
    t = result["timings"]
    output.note(
        f"{output.printable(result['model'])}: {t['prompt_tokens']} prompt tokens, "
        f"first token after {t['ttft_s']:.2f}s, "
        f"{t['completion_tokens']} tokens at {t['tokens_per_s']:.1f}/s, {t['total_s']:.2f}s in all"
    )


def remote_answer(
    question: str,
    settings: Settings,
    indexes: list[str],
    search: bool,
    model: str | None,
    on_text: Callable[[str], None] | None,
) -> dict[str, Any] | None:
    """The `rag ask --json` object from the configured `rag serve`; None when there is none,
    or it is not reachable or cannot answer this (then this process answers)."""
    if not settings.server.strip():
        return None
    from rag.cli.remote import answer_remotely
    from rag.serve.client import Client

    client = Client(settings.server, settings.server_token, settings.server_timeout)
    return answer_remotely(
        lambda: client.ask(
            question,
            indexes=indexes,
            search=search,
            settings=settings,
            model=model,
            on_text=on_text,
        )
    )


def print_sources(sources: list[dict[str, Any]], web_engine: Any = None) -> None:
    """The numbered sources of a `rag ask --json` object (this process's or a server's),
    under a heading that names the web engine that found the web ones."""
    if not sources:
        return
    heading = "Sources"
    if isinstance(web_engine, str) and web_engine and any(s["origin"] == "web" for s in sources):
        heading += f" (web: {output.printable(web_engine)})"
    output.out.print(f"\n{heading}:", style="bold", markup=False)
    for source in sources:
        title, location = output.printable(source["title"]), output.printable(source["location"])
        output.out.print(f"[{source['id']}] {title} — {location}", markup=False)
