"""`rag search`: the passages a question would get, without running a model."""

from __future__ import annotations

from typing import Any

import typer

from rag.cli import output
from rag.cli.options import (
    EngineOption,
    FetchOption,
    IndexOption,
    JsonOption,
    KOption,
    NoRerankOption,
    RegionOption,
    RerankerOption,
    SafesearchOption,
    TimelimitOption,
    reranker_choice,
)
from rag.config import Settings, load_settings
from rag.errors import UsageError


def search(
    query: str = typer.Argument(..., help="What to search for."),
    index: IndexOption = None,
    web: bool = typer.Option(False, "--web", help="Search the web."),
    k: KOption = None,
    engine: EngineOption = None,
    fetch: FetchOption = None,
    region: RegionOption = None,
    safesearch: SafesearchOption = None,
    timelimit: TimelimitOption = None,
    reranker: RerankerOption = None,
    no_rerank: NoRerankOption = False,
    json_output: JsonOption = False,
) -> None:
    """Show the best passages for QUERY from local indexes (--index) and/or the web (--web),
    in the order the reranker puts them, with the sentences a model would be given."""
    from rag.retrieval import source_specs

    specs = source_specs(web=web, indexes=index)
    if not specs:
        raise UsageError("Say where to search: --index NAME (repeatable) and/or --web.")
    settings = load_settings(
        k=k,
        engine=engine,
        fetch=fetch,
        region=region,
        safesearch=safesearch,
        timelimit=timelimit,
        reranker=reranker_choice(reranker, no_rerank),
    )
    found = remote_search(query, settings, index or [], web)
    if found is None:  # no server configured, or not reachable: search in this process
        from rag.search import search as search_sources

        local = search_sources(query, settings=settings, sources=specs)
        found = local.as_dict(), local.warnings
    body, warnings = found
    for warning in warnings:
        output.warn(warning)
    if json_output:
        output.print_json(body)
        return
    results = output.sources(body["results"])
    if not results:
        output.err.print("No results.", markup=False)
        return
    for r in results:  # titles and texts come from documents and web pages: never raw escapes
        title, location = output.printable(r.title), output.printable(r.location)
        origin = output.printable(r.origin)  # a server's, too: `index:NAME` or `web` here
        rerank = "" if r.rerank_score is None else f", rerank {r.rerank_score:+.2f}"
        output.out.print(
            f"[{r.id}] {title}  ({origin}, score {r.score:.3f}{rerank})",
            style="bold",
            markup=False,
        )
        output.out.print(f"    {location}", style="cyan", markup=False)
        snippet = output.printable(" ".join(r.shown.split()))
        output.out.print(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}\n", markup=False)


def remote_search(
    query: str, settings: Settings, indexes: list[str], web: bool
) -> tuple[dict[str, Any], list[str]] | None:
    """`rag search --json`'s object and the warnings from the configured `rag serve`; None
    when there is none, or it is not reachable or cannot search this (then this process does)."""
    if not settings.server.strip():
        return None
    from rag.serve.client import Client, answer_remotely

    client = Client(settings.server, settings.server_token, settings.server_timeout)
    return answer_remotely(
        lambda: client.search(query, indexes=indexes, web=web, settings=settings)
    )
