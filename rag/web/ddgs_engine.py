"""DuckDuckGo & co. through the `ddgs` metasearch library (the default engine, no API key).

Why the retries: ddgs scrapes public engines, which rate-limit and time out now
and then; a short backoff usually gets through. What does not get through after
the last attempt becomes one `SearchUnavailable` that names the engine and the
cause, because the orchestrator must never answer "from the web" with no web.
`ddgs` is imported on first search, so `rag --help` stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rag.core.config import Settings
from rag.core.errors import SearchUnavailable
from rag.web.base import WebResult, check_search_options

DEFAULT_TIMEOUT_S = 10
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 0.5

HINT = (
    "Check the internet connection, try again later, or use a SearxNG instance "
    "(--engine searxng with RAG_ENGINE_SEARXNG_URL)."
)


def _default_client(timeout: int) -> Any:
    from ddgs import DDGS

    return DDGS(timeout=timeout)


class DdgsEngine:
    """`DDGS().text(query, region=, safesearch=, timelimit=, max_results=)` with retries.

    `client_factory` builds the DDGS object (tests pass a fake); `sleep` is the
    backoff clock (tests pass a recorder).
    """

    name = "ddgs"

    def __init__(
        self,
        *,
        region: str = "wt-wt",
        safesearch: str = "moderate",
        timelimit: str = "",
        timeout_s: int = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_s: float | None = None,
        client_factory: Callable[[int], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        check_search_options(safesearch, timelimit)
        self.region = region
        self.safesearch = safesearch
        self.timelimit = timelimit
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = DEFAULT_BACKOFF_S if backoff_s is None else backoff_s
        self._client_factory = client_factory or _default_client
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> DdgsEngine:
        return cls(
            region=settings.region,
            safesearch=settings.safesearch,
            timelimit=settings.timelimit,
        )

    def cache_identity(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "safesearch": self.safesearch,
            "timelimit": self.timelimit,
        }

    def search(self, query: str, max_results: int) -> list[WebResult]:
        """Best-first results; raises `SearchUnavailable` once every attempt has failed."""
        cause = "no results"
        for attempt in range(1, self.attempts + 1):
            try:
                raw = self._client_factory(self.timeout_s).text(
                    query,
                    region=self.region,
                    safesearch=self.safesearch,
                    timelimit=self.timelimit or None,
                    max_results=max_results,
                )
            except ImportError as exc:
                raise SearchUnavailable(
                    f"Web search (engine ddgs) is not available: {exc}. Install it with "
                    "`pip install ddgs`, or use --engine searxng."
                ) from None
            except Exception as exc:  # noqa: BLE001 - ddgs and its HTTP stack raise many kinds
                cause = _describe(exc)
            else:
                results = _parse(raw or [])[:max_results]
                if results:
                    return results
                cause = "the engines returned no results (often a sign of rate limiting)"
            if attempt < self.attempts:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        raise SearchUnavailable(
            f"Web search failed (engine ddgs): {cause}; gave up after {self.attempts} "
            f"attempt{'s' if self.attempts != 1 else ''}. {HINT}"
        )


def _describe(exc: Exception) -> str:
    """A one-line cause: the exception kind (rate limit, timeout...) and its first line."""
    kind = type(exc).__name__
    labels = {
        "RatelimitException": "rate limited",
        "TimeoutException": "timed out",
        "DDGSException": "search error",
    }
    text = " ".join(str(exc).split())
    if len(text) > 240:
        text = text[:237] + "..."
    label = labels.get(kind, kind)
    return f"{label}: {text}" if text else label


def _parse(raw: list[dict[str, Any]]) -> list[WebResult]:
    """ddgs text results are dicts with `title`, `href`, `body`; keep those with a URL."""
    results = []
    for item in raw:
        url = str(item.get("href") or item.get("url") or "").strip()
        if not url:
            continue
        results.append(
            WebResult(
                title=str(item.get("title") or url).strip(),
                url=url,
                snippet=str(item.get("body") or item.get("snippet") or "").strip(),
            )
        )
    return results
