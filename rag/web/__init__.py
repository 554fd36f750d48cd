"""Web search as a Retriever: engines from the registry, a result cache, optional page reading.

`build_web_retriever(settings)` is what `build_retriever("web", ...)` calls. The
engines are named by `settings.engine`, one or a chain tried in order (`ddgs,searxng`:
rag.web.chain), among the `engine` parts of `rag.core.plugins` (`ddgs`, `searxng`, and
any plugin's). Results are cached per engine in SQLite under `$RAG_HOME/cache` for
`search_cache_ttl` seconds, so repeated questions and eval runs do not hit an engine
again; `--site` and `exclude_domains` (rag.web.sites) decide which results are kept,
whichever engine answered. With `settings.fetch = N` the top N result pages are
downloaded (see `rag.web.fetch` for the safety rules) and their most relevant
paragraphs replace the snippet; a page that cannot be read keeps its snippet and leaves
a warning in `meta["warning"]`, which the orchestrator reports. Each passage names the
engine that found it in `meta["engine"]`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from rag.core.config import Settings
from rag.core.types import Passage, Passages
from rag.web.base import SearchEngine, WebResult
from rag.web.cache import SearchCache, cache_key
from rag.web.chain import ChainAnswer, EngineChain, build_engines
from rag.web.sites import SiteRules

__all__ = [
    "SearchEngine",
    "WebResult",
    "WebRetriever",
    "build_engine",
    "build_engines",
    "build_web_retriever",
]

CACHE_FILE = "web-search.sqlite3"


def build_engine(settings: Settings) -> SearchEngine:
    """The first engine `settings.engine` names, made with its options (`[engines.NAME]`)."""
    return build_engines(settings)[0]


class WebRetriever:
    """Passages from web engines: origin `web`, location the result URL, best first.

    `engine` is one engine or a chain of them, tried in order (rag.web.chain); `rules`
    the site rules every engine's results go through. `score` is rank-derived (1/rank:
    1.0 for the top hit), since engines give no score.
    """

    name = "web"

    def __init__(
        self,
        engine: SearchEngine | Sequence[SearchEngine],
        *,
        cache: SearchCache | None = None,
        fetch: int = 0,
        allow_private_fetch: bool = False,
        fetcher: Callable[..., Any] | None = None,
        rules: SiteRules | None = None,
        private_hosts: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        self.engines = list(engine) if isinstance(engine, list | tuple) else [engine]
        self.cache = cache
        self.rules = rules or SiteRules()
        self.fetch = max(0, fetch)
        self.allow_private_fetch = allow_private_fetch
        self.private_hosts = private_hosts
        self._fetcher = fetcher
        self._chain = EngineChain(self.engines, cache=cache, rules=self.rules)

    @property
    def engine(self) -> SearchEngine:
        """The first engine of the chain (the only one, unless a chain was configured)."""
        return self.engines[0]

    def with_fetch(self, fetch: int) -> WebRetriever:
        """The same engines, cache and rules, reading `fetch` pages per search: what an
        eval condition `web[fetch=N]` asks (evals.conditions)."""
        twin = copy.copy(self)
        twin.fetch = max(0, fetch)
        return twin

    def search_chain(self, query: str, k: int) -> ChainAnswer:
        """The first engine's results for `query` that has any, from the cache when fresh."""
        return self._chain.search(query, k)

    def search(self, query: str, k: int) -> list[WebResult]:
        return self.search_chain(query, k).results

    def retrieve(self, query: str, k: int) -> Passages:
        found = self.search_chain(query, k)
        passages = Passages(
            [
                Passage(
                    text=r.snippet,
                    title=r.title or r.url,
                    location=r.url,
                    origin="web",
                    score=round(1.0 / rank, 6),
                    meta={"rank": rank, "engine": found.engine},
                )
                for rank, r in enumerate(found.results[:k], start=1)
            ],
            found.warnings,
        )
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
            private_hosts=self.private_hosts,
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
    """The configured engines behind the cache, under the site rules, reading
    `settings.fetch` pages per search."""
    from rag.web.fetch import parse_private_hosts

    return WebRetriever(
        build_engines(settings),
        cache=SearchCache(settings.cache_dir / CACHE_FILE, settings.search_cache_ttl),
        fetch=settings.fetch,
        allow_private_fetch=settings.allow_private_fetch,
        rules=SiteRules.from_settings(settings),
        private_hosts=parse_private_hosts(
            settings.private_fetch_hosts, "private_fetch_hosts (RAG_PRIVATE_FETCH_HOSTS)"
        ),
    )
