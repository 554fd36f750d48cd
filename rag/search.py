"""`rag search` as a library call: retrieve, rerank and select as `rag ask` would, then
show the ranked passages. The CLI, `rag serve` and `rag mcp` all call `search`, so they
return the same results in the same order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.config import Settings
from rag.retrieval import Retriever
from rag.types import Source


@dataclass
class SearchResult:
    query: str
    results: list[Source]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The object `rag search --json` prints."""
        return {"query": self.query, "results": [r.as_dict() for r in self.results]}


def approximate_tokens(text: str) -> int:
    """About four characters a token: enough to show which sentences a model would read."""
    return max(1, len(text) // 4)


def search(
    query: str,
    *,
    settings: Settings,
    sources: Sequence[str] = (),
    retrievers: Sequence[Retriever] | None = None,
) -> SearchResult:
    """The best `settings.k` passages for `query` from `sources` (specs: `web`,
    `index:NAME`) or ready `retrievers`, in the reranker's order, each with the sentences
    a model would be given."""
    from rag.evidence import candidates_wanted, choose_evidence
    from rag.orchestrator import retrieve_all, validate_question
    from rag.retrieval import build_retriever

    query = validate_question(query, what="query")
    if retrievers is None:
        retrievers = [build_retriever(s, settings) for s in sources]
    retrieved = retrieve_all(retrievers, query, candidates_wanted(settings))
    selection = choose_evidence(
        query,
        retrieved.passages,
        settings=settings,
        parameters=None,  # no model here: the budget of a mid-sized one
        room=1 << 30,
        count_tokens=approximate_tokens,
    )
    kept = {p.location: p for p in selection.passages}
    shown = [kept.get(p.location, p) for p in selection.ranked[: settings.k]]
    results = [Source.from_passage(i, p) for i, p in enumerate(shown, start=1)]
    return SearchResult(query, results, list(retrieved.warnings))
