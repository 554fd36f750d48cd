"""`rag search`: the passages a question would get, without running a model."""

from __future__ import annotations

from typing import Any

import typer

from rag.cli import output
from rag.cli.options import IndexOption, JsonOption, question_options
from rag.core.config import Settings, load_settings
from rag.core.errors import UsageError
from rag.question_options import SEARCH_OPTIONS


@question_options(*SEARCH_OPTIONS)
def search(
    query: str = typer.Argument(..., help="What to search for."),
    index: IndexOption = None,
    web: bool = typer.Option(False, "--web", help="Search the web."),
    json_output: JsonOption = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Show the best passages for QUERY from local indexes (--index) and/or the web (--web),
    in the order the reranker puts them, with the sentences a model would be given."""
    from rag.question_options import overrides
    from rag.sources import source_specs

    specs = source_specs(web=web, indexes=index)
    if not specs:
        raise UsageError("Say where to search: --index NAME (repeatable) and/or --web.")
    settings = load_settings(**overrides(options or {}))
    found = remote_search(query, settings, index or [], web)
    if found is None:  # no server configured, or not reachable: search in this process
        from rag.orchestrator import retrieve, validate_question
        from rag.search import ranked
        from rag.sources import open_sources

        query = validate_question(query, what="query")
        local = ranked(retrieve(query, open_sources(specs, settings), settings), settings)
        found = local.as_dict(), local.warnings
    body, warnings = found
    for warning in warnings:
        output.warn(warning)
    if json_output:
        output.print_json(body)
        return
    results = body["results"]  # this process's or a server's (which the client checked)
    if not results:
        output.err.print("No results.", markup=False)
        return
    from rag.core.types import shown_text

    engine = body.get("web_engine")  # which engine of the chain answered (a server's may lack it)
    for r in results:  # titles and texts come from documents and web pages: never raw escapes
        title, location = output.printable(r["title"]), output.printable(r["location"])
        origin = r["origin"]  # a server's, too: `index:NAME` or `web` here
        if origin == "web" and isinstance(engine, str) and engine:
            origin = f"web via {engine}"
        origin = output.printable(origin)
        rerank = "" if r["rerank_score"] is None else f", rerank {r['rerank_score']:+.2f}"
        output.out.print(
            f"[{r['id']}] {title}  ({origin}, score {r['score']:.3f}{rerank})",
            style="bold",
            markup=False,
        )
        output.out.print(f"    {location}", style="cyan", markup=False)
        snippet = output.printable(" ".join(shown_text(r["text"], r["spans"]).split()))
        output.out.print(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}\n", markup=False)


def remote_search(
    query: str, settings: Settings, indexes: list[str], web: bool
) -> tuple[dict[str, Any], list[str]] | None:
    """`rag search --json`'s object and the warnings from the configured `rag serve`; None
    when there is none, or it is not reachable or cannot search this (then this process does)."""
    if not settings.server.strip():
        return None
    from rag.cli.remote import answer_remotely
    from rag.serve.client import Client

    client = Client(settings.server, settings.server_token, settings.server_timeout)
    return answer_remotely(
        lambda: client.search(query, indexes=indexes, web=web, settings=settings)
    )
