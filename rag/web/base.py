"""What every web search engine hands back, and the protocol it implements.

Engines only find results (title, URL, snippet); turning them into `Passage`s,
caching and page fetching live in `rag.web`, so a new engine is one small class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class WebResult:
    """One search hit, best first in its list. `snippet` is the engine's text, maybe with markup."""

    title: str
    url: str
    snippet: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WebResult:
        return cls(
            title=str(data.get("title") or ""),
            url=str(data.get("url") or ""),
            snippet=str(data.get("snippet") or ""),
        )


@runtime_checkable
class SearchEngine(Protocol):
    """`name` appears in error messages and cache keys; `search` raises `SearchUnavailable`."""

    name: str

    def search(self, query: str, max_results: int) -> list[WebResult]: ...

    def cache_identity(self) -> dict[str, Any]:
        """Everything besides the query that changes the results (region, URL, ...)."""
        ...
