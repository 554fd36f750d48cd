"""`rag search` as a library call: what `rag.orchestrator.retrieve` found, reranked and
selected as `rag ask` would, shown as ranked passages. The CLI, `rag serve` and `rag mcp`
all call `ranked` on a `retrieve`, so they return the same results in the same order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rag.core.config import Settings
from rag.core.types import Source
from rag.orchestrator import Retrieved


@dataclass
class SearchResult:
    query: str
    results: list[Source]
    warnings: list[str] = field(default_factory=list)
    #: The web engine that answered (of a chain: rag.web.chain); None: no web results.
    web_engine: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The object `rag search --json` prints."""
        return {
            "query": self.query,
            "results": [r.as_dict() for r in self.results],
            "web_engine": self.web_engine,
        }


def approximate_tokens(text: str) -> int:
    """About four characters a token: enough to show which sentences a model would read."""
    return max(1, len(text) // 4)


def ranked(retrieved: Retrieved, settings: Settings) -> SearchResult:
    """The best `settings.k` of what `rag.orchestrator.retrieve` found, in the reranker's
    order, each with the sentences a model would be given (a mid-sized model's budget:
    there is no model here)."""
    from rag.evidence import choose_evidence

    selection = choose_evidence(
        retrieved.query,
        retrieved.passages,
        settings=settings,
        parameters=None,
        room=1 << 30,
        count_tokens=approximate_tokens,
    )
    kept = {p.location: p for p in selection.passages}
    shown = [kept.get(p.location, p) for p in selection.ranked[: settings.k]]
    results = [Source.from_passage(i, p) for i, p in enumerate(shown, start=1)]
    return SearchResult(retrieved.query, results, list(retrieved.warnings), retrieved.web_engine)
