"""`rag search`: the passages a question would get, without running a model."""

from __future__ import annotations

import typer

from rag.cli import output
from rag.cli.options import (
    EngineOption,
    FetchOption,
    IndexOption,
    JsonOption,
    KOption,
    RegionOption,
    SafesearchOption,
    TimelimitOption,
)
from rag.config import load_settings
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
    json_output: JsonOption = False,
) -> None:
    """Show the best passages for QUERY from local indexes (--index) and/or the web (--web)."""
    from rag.orchestrator import retrieve_all, validate_question
    from rag.retrieval import build_retriever, source_specs
    from rag.types import Source

    query = validate_question(query, what="query")
    specs = source_specs(web=web, indexes=index)
    if not specs:
        raise UsageError("Say where to search: --index NAME (repeatable) and/or --web.")
    settings = load_settings(
        k=k, engine=engine, fetch=fetch, region=region, safesearch=safesearch, timelimit=timelimit
    )
    retrieved = retrieve_all([build_retriever(s, settings) for s in specs], query, settings.k)
    results = [Source.from_passage(i, p) for i, p in enumerate(retrieved.passages, start=1)]
    for warning in retrieved.warnings:
        output.warn(warning)
    if json_output:
        output.print_json({"query": query, "results": [r.as_dict() for r in results]})
        return
    if not results:
        output.err.print("No results.", markup=False)
        return
    for r in results:  # titles and texts come from documents and web pages: never raw escapes
        title, location = output.printable(r.title), output.printable(r.location)
        output.out.print(
            f"[{r.id}] {title}  ({r.origin}, score {r.score:.3f})", style="bold", markup=False
        )
        output.out.print(f"    {location}", style="cyan", markup=False)
        snippet = output.printable(" ".join(r.text.split()))
        output.out.print(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}\n", markup=False)
