"""What every web search engine hands back, and the protocol it implements.

Engines only find results (title, URL, snippet); turning them into `Passage`s,
caching and page fetching live in `rag.web`, so a new engine is one small class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from rag.core.config import SAFESEARCH_LEVELS, TIMELIMITS
from rag.core.errors import UsageError
from rag.core.safe_text import replace_surrogates


def check_search_options(safesearch: str, timelimit: str) -> None:
    """The options every engine shares, checked one way whichever engine is chosen."""
    if safesearch not in SAFESEARCH_LEVELS:
        raise UsageError(
            f"safesearch must be on, moderate or off, got {safesearch!r} (RAG_SAFESEARCH)."
        )
    if timelimit not in TIMELIMITS:
        raise UsageError(
            f"timelimit must be d, w, m, y or empty, got {timelimit!r} (RAG_TIMELIMIT)."
        )


@dataclass(frozen=True)
class WebResult:
    """One search hit, best first in its list. `snippet` is the engine's text, maybe with markup."""

    title: str
    url: str
    snippet: str

    def __post_init__(self) -> None:
        # An engine's JSON may carry `"\ud800"`: kept as U+FFFD, so the result can be
        # cached (SQLite), tokenized and sent back as UTF-8 like any other.
        for name in ("title", "url", "snippet"):
            object.__setattr__(self, name, replace_surrogates(getattr(self, name)))

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
    """`name` appears in error messages and cache keys; `search` raises `SearchUnavailable`
    (with `engine=`, `cause=` and `hint=` for a chain's one-line error: rag.web.chain).

    An engine whose queries may carry `site:` operators says so with a class attribute
    `site_operator = True` (rag.web.sites); without it, `--site` only filters its results.
    """

    name: str

    def search(self, query: str, max_results: int) -> list[WebResult]: ...

    def cache_identity(self) -> dict[str, Any]:
        """Everything besides the query that changes the results (region, URL, ...)."""
        ...
