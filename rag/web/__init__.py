"""Web search as a Retriever: an engine from the registry, a result cache, optional page reading.

`build_web_retriever(settings)` is what `build_retriever("web", ...)` calls. The
engine is chosen by `settings.engine` among the `engine` parts of `rag.core.plugins`
(`ddgs`, `searxng`, and any plugin's). Results are
cached in SQLite under `$RAG_HOME/cache` for `search_cache_ttl` seconds, so
repeated questions and eval runs do not hit the engine again. With
`settings.fetch = N` the top N result pages are downloaded (see `rag.web.fetch`
for the safety rules) and their most relevant paragraphs replace the snippet; a
page that cannot be read keeps its snippet and leaves a warning in
`meta["warning"]`, which the orchestrator reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rag.core import plugins
from rag.core.config import Settings
from rag.core.types import Passage
from rag.web.base import SearchEngine, WebResult
from rag.web.cache import SearchCache, cache_key

__all__ = ["SearchEngine", "WebResult", "WebRetriever", "build_engine", "build_web_retriever"]

CACHE_FILE = "web-search.sqlite3"


def build_engine(settings: Settings) -> SearchEngine:
    """The engine `settings.engine` names, made with its options (`[engines.NAME]`)."""
    return plugins.create("engine", settings.engine, settings, hint=" (--engine or RAG_ENGINE)")


class WebRetriever:
    """Passages from a web engine: origin `web`, location the result URL, best first.

    `score` is rank-derived (1/rank: 1.0 for the top hit), since engines give no score.
    """

    name = "web"

    def __init__(
        self,
        engine: SearchEngine,
        *,
        cache: SearchCache | None = None,
        fetch: int = 0,
        allow_private_fetch: bool = False,
        fetcher: Callable[..., Any] | None = None,
    ) -> None:
        self.engine = engine
        self.cache = cache
        self.fetch = max(0, fetch)
        self.allow_private_fetch = allow_private_fetch
        self._fetcher = fetcher

    def search(self, query: str, k: int) -> list[WebResult]:
        """The engine's results for `query`, from the cache when fresh."""
        key = cache_key(
            "search", engine=self.engine.name, query=query, k=k, **self.engine.cache_identity()
        )
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return [WebResult.from_dict(item) for item in cached]
        results = self.engine.search(query, k)
        if self.cache is not None and results:
            self.cache.put(key, [r.as_dict() for r in results], kind="search")
        return results

    def retrieve(self, query: str, k: int) -> list[Passage]:
        results = self.search(query, k)[:k]
        passages = [
            Passage(
                text=r.snippet,
                title=r.title or r.url,
                location=r.url,
                origin="web",
                score=round(1.0 / rank, 6),
                meta={"rank": rank, "engine": self.engine.name},
            )
            for rank, r in enumerate(results, start=1)
        ]
        if self.fetch and passages:
            self._read_pages(passages[: self.fetch], query)
        return passages

    def _read_pages(self, passages: list[Passage], query: str) -> None:
        """Replace each passage's snippet by the relevant part of its page, where readable;
        a page that is not (whyever: `fetch_pages` never raises for one) keeps its snippet
        and says why in `meta["warning"]`."""
        from rag.web.fetch import FetchedPage, FetchError, fetch_pages, select_relevant
        from rag.web.fetch_limits import shown_url

        pages: list[FetchedPage | FetchError | None] = [None] * len(passages)
        missing: list[int] = []
        for i, passage in enumerate(passages):
            cached = self.cache.get(self._page_key(passage.location)) if self.cache else None
            if cached is not None:
                pages[i] = FetchedPage(**cached)
            else:
                missing.append(i)
        fetched = fetch_pages(
            [passages[i].location for i in missing],
            allow_private=self.allow_private_fetch,
            fetcher=self._fetcher,
        )
        for i, outcome in zip(missing, fetched, strict=True):
            pages[i] = outcome
            if isinstance(outcome, FetchedPage) and self.cache is not None:
                self.cache.put(
                    self._page_key(passages[i].location),
                    {"url": outcome.url, "title": outcome.title, "text": outcome.text},
                    kind="page",
                )
        for passage, page in zip(passages, pages, strict=True):
            if isinstance(page, FetchedPage):
                passage.text = select_relevant(page.text, query)
                passage.title = passage.title or page.title
                passage.meta["fetched"] = True
            elif isinstance(page, FetchError):
                passage.meta["fetched"] = False
                passage.meta["warning"] = (
                    f"Could not read {shown_url(passage.location)}: {page}; using its snippet."
                )

    @staticmethod
    def _page_key(url: str) -> str:
        return cache_key("page", url=url)


def build_web_retriever(settings: Settings) -> WebRetriever:
    """The configured engine behind the cache, reading `settings.fetch` pages per search."""
    return WebRetriever(
        build_engine(settings),
        cache=SearchCache(settings.cache_dir / CACHE_FILE, settings.search_cache_ttl),
        fetch=settings.fetch,
        allow_private_fetch=settings.allow_private_fetch,
    )
