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
    NoRerankOption,
    RegionOption,
    RerankerOption,
    SafesearchOption,
    TimelimitOption,
    reranker_choice,
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
    reranker: RerankerOption = None,
    no_rerank: NoRerankOption = False,
    json_output: JsonOption = False,
) -> None:
    """Show the best passages for QUERY from local indexes (--index) and/or the web (--web),
    in the order the reranker puts them, with the sentences a model would be given."""
    from rag.retrieval import source_specs
    from rag.search import search as search_sources

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
    found = search_sources(query, settings=settings, sources=specs)
    results = found.results
    for warning in found.warnings:
        output.warn(warning)
    if json_output:
        output.print_json(found.as_dict())
        return
    if not results:
        output.err.print("No results.", markup=False)
        return
    for r in results:  # titles and texts come from documents and web pages: never raw escapes
        title, location = output.printable(r.title), output.printable(r.location)
        rerank = "" if r.rerank_score is None else f", rerank {r.rerank_score:+.2f}"
        output.out.print(
            f"[{r.id}] {title}  ({r.origin}, score {r.score:.3f}{rerank})",
            style="bold",
            markup=False,
        )
        output.out.print(f"    {location}", style="cyan", markup=False)
        snippet = output.printable(" ".join(r.shown.split()))
        output.out.print(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}\n", markup=False)
