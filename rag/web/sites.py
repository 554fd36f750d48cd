"""`--site` and `exclude_domains`: which results may reach the reranker, whatever the engine.

Why two halves: an engine that understands `site:` operators (DuckDuckGo and the engines
behind ddgs, SearxNG's general engines) is asked for the sites' pages only, so the results
are worth having; but no engine can be trusted to obey (ddgs's Wikipedia backend ignores
operators, a plugin's engine may not know them), so every result's host is checked as
well, for every engine alike. An engine declares `site_operator = True` to get the query
operators; without it, only the host check applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.core.config import Settings
from rag.core.domains import host_matches, parse_domains, url_host
from rag.web.base import WebResult


@dataclass(frozen=True)
class SiteRules:
    """`sites`: results must come from one of them (none: any site); `excluded`: results
    from these are dropped. Both are normalised domains (rag.core.domains)."""

    sites: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> SiteRules:
        return cls(
            parse_domains(settings.site, "--site (RAG_SITE)"),
            parse_domains(settings.exclude_domains, "exclude_domains (RAG_EXCLUDE_DOMAINS)"),
        )

    @property
    def active(self) -> bool:
        return bool(self.sites or self.excluded)

    def query_for(self, query: str, engine: object) -> str:
        """`query` with `site:` operators for an engine that declares it understands them."""
        if not self.sites or not getattr(engine, "site_operator", False):
            return query
        return f"{query} {' OR '.join(f'site:{site}' for site in self.sites)}"

    def allows(self, url: str) -> bool:
        host = url_host(url)
        if self.excluded and host_matches(host, self.excluded):
            return False
        return not self.sites or host_matches(host, self.sites)

    def keep(self, results: list[WebResult]) -> list[WebResult]:
        return [r for r in results if self.allows(r.url)]

    def why_empty(self, found: int) -> str:
        """Why `found` results (none kept) came to nothing, for a warning."""
        if not found:
            return "no results"
        what = f"{found} result{'s' if found != 1 else ''}"
        if self.sites:
            return f"none of its {what} was from {', '.join(self.sites)} (--site)"
        return f"all of its {what} were from excluded domains (exclude_domains)"
