"""The Retriever seam: anything that turns a query into ranked passages.

Built-ins are looked up by name, so the orchestrator, `rag search` and the
eval suite all build their sources the same way:
- `web`: the configured web engine (`Settings.engine`, see `rag.web`);
- `index:NAME`: a local index built with `rag index` (see `indexers`).
Heavy modules are imported only when a retriever is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from rag.core.config import Settings
from rag.core.errors import UsageError
from rag.core.types import Passage


@runtime_checkable
class Retriever(Protocol):
    """`name` is the origin label its passages carry (`web`, `index:notes`)."""

    name: str

    def retrieve(self, query: str, k: int) -> list[Passage]: ...


def build_retriever(source: str, settings: Settings) -> Retriever:
    """Build one retriever from a source spec: `web` or `index:NAME`."""
    if source == "web":
        from rag.web import build_web_retriever

        return build_web_retriever(settings)
    if source.startswith("index:") and source[len("index:") :]:
        from indexers.retriever import IndexRetriever

        return IndexRetriever.open(source[len("index:") :], settings)
    raise UsageError(f"Unknown source {source!r}: use 'web' or 'index:NAME'.")


def open_sources(specs: Sequence[str], settings: Settings) -> list[Retriever]:
    """One retriever per source spec, in order: what `rag.orchestrator.retrieve` asks."""
    return [build_retriever(spec, settings) for spec in specs]


def source_specs(*, web: bool, indexes: list[str] | None) -> list[str]:
    """The source specs a command line asked for, in a stable order."""
    specs = [f"index:{name}" for name in indexes or []]
    if web:
        specs.append("web")
    return specs
