"""Engines tried in order: `engine = "ddgs,searxng"` falls to SearxNG when ddgs fails.

Why: the public engines behind ddgs rate-limit, time out and return nothing often enough
that one engine is one point of failure. A chain asks each engine in turn; one that fails
or has nothing (after `--site` and `exclude_domains`, rag.web.sites) costs one warning
naming it and why, and the next one is asked. The answer names the engine that served it.
When every engine fails, that is one error naming each engine and its cause (exit 1).

Each engine's results are cached under its own key (its name, its query and its options),
so a cached answer from any engine in the chain is used before any engine is asked again:
a rate-limited engine is not hit again for a question another engine already answered.
The cache holds what the engine returned; the site rules are applied on the way out, so
changing `exclude_domains` needs no fresh search.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.core import plugins
from rag.core.config import Settings
from rag.core.errors import SearchUnavailable, UsageError
from rag.web.base import SearchEngine, WebResult
from rag.web.cache import SearchCache, cache_key
from rag.web.sites import SiteRules

HINT = " (--engine or RAG_ENGINE)"


def engine_specs(setting: str) -> list[str]:
    """The engine specs of an `engine` setting: `ddgs,searxng` -> ["ddgs", "searxng"]."""
    specs = list(dict.fromkeys(s.strip() for s in setting.split(",") if s.strip()))
    if not specs:
        raise UsageError(
            "No web search engine is set; name one or more, tried in order, e.g. "
            f"--engine ddgs,searxng{HINT}."
        )
    return specs


def build_engines(settings: Settings) -> list[SearchEngine]:
    """One engine per spec of `settings.engine`, in order, each made with its options."""
    specs = engine_specs(settings.engine)
    return [plugins.create("engine", spec, settings, hint=HINT) for spec in specs]


@dataclass
class ChainAnswer:
    """What the chain found: `engine` is the name of the engine that served `results` ("":
    none had any), `warnings` one line per engine that failed or had nothing first."""

    engine: str
    results: list[WebResult]
    warnings: list[str] = field(default_factory=list)


_OWN_PREFIX = re.compile(r"^Web search failed \(engine [^)]*\):\s*")


def _cause(exc: SearchUnavailable) -> str:
    """What went wrong, without the engine's name (the chain names it) or a final stop."""
    return _OWN_PREFIX.sub("", exc.cause or str(exc)).rstrip(". ") or type(exc).__name__


class EngineChain:
    """`search(query, k)` over `engines` in order, through `cache`, under `rules`."""

    def __init__(
        self,
        engines: Sequence[SearchEngine],
        *,
        cache: SearchCache | None = None,
        rules: SiteRules | None = None,
    ) -> None:
        if not engines:
            raise UsageError(f"No web search engine is set{HINT}.")
        self.engines = list(engines)
        self.cache = cache
        self.rules = rules or SiteRules()

    def _wanted(self, k: int) -> int:
        """Results to ask each engine for: more when the rules will drop some."""
        return min(100, 2 * k) if self.rules.active else k

    def _key(self, engine: SearchEngine, query: str, wanted: int) -> str:
        return cache_key(
            "search", engine=engine.name, query=query, k=wanted, **engine.cache_identity()
        )

    def search(self, query: str, k: int) -> ChainAnswer:
        wanted = self._wanted(k)
        queries = [self.rules.query_for(query, engine) for engine in self.engines]
        if self.cache is not None:
            for engine, asked in zip(self.engines, queries, strict=True):
                cached = self.cache.get(self._key(engine, asked, wanted))
                if cached:
                    kept = self.rules.keep([WebResult.from_dict(item) for item in cached])
                    if kept:
                        return ChainAnswer(engine.name, kept[:k])
        failures: list[tuple[str, SearchUnavailable]] = []
        empty: list[tuple[str, str]] = []
        notes: list[str] = []
        for engine, asked in zip(self.engines, queries, strict=True):
            try:
                found = engine.search(asked, wanted)
            except SearchUnavailable as exc:
                failures.append((engine.name, exc))
                notes.append(f"Web search engine {engine.name} failed: {_cause(exc)}")
                continue
            if self.cache is not None and found:
                self.cache.put(
                    self._key(engine, asked, wanted), [r.as_dict() for r in found], kind="search"
                )
            kept = self.rules.keep(found)
            if kept:
                served = [f"{note}; {engine.name} answered." for note in notes]
                return ChainAnswer(engine.name, kept[:k], served)
            why = self.rules.why_empty(len(found))
            empty.append((engine.name, why))
            notes.append(f"Web search engine {engine.name} had nothing: {why}")
        if failures:
            raise self._all_failed(failures, empty)
        # Every engine answered, with nothing to keep: an empty answer, not a failure; say
        # why when the rules, not the engines, emptied it.
        reasons = zip(notes, empty, strict=True)
        filtered = [f"{note}." for note, (_, why) in reasons if why != "no results"]
        return ChainAnswer("", [], filtered)

    def _all_failed(
        self, failures: list[tuple[str, SearchUnavailable]], empty: list[tuple[str, str]]
    ) -> SearchUnavailable:
        """One error for the whole chain: an engine alone keeps its own message."""
        if len(failures) == 1 and not empty:
            return failures[0][1]
        order = {engine.name: i for i, engine in enumerate(self.engines)}
        parts = [(name, _cause(exc)) for name, exc in failures] + empty
        parts.sort(key=lambda part: order.get(part[0], 0))
        hints = list(dict.fromkeys(exc.hint for _, exc in failures if exc.hint))
        causes = "; ".join(f"{name}: {cause}" for name, cause in parts)
        message = f"Web search failed on every engine ({len(parts)} tried): {causes}."
        if hints:
            message += " " + " ".join(hints)
        return SearchUnavailable(message, engine=",".join(n for n, _ in parts), cause=causes)
