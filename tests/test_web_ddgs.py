"""The ddgs engine with a fake DDGS object: options passed through, recorded results parsed,
failures -> one error, transient ones tried again. ddgs's real client code, on a fake
internet, is in tests/test_web_ddgs_client.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from rag.core.config import Settings
from rag.core.errors import SearchUnavailable, UsageError
from rag.web.ddgs_engine import DdgsEngine

RECORDED = json.loads(
    (Path(__file__).parent / "fixtures" / "web" / "ddgs_text_emma.json").read_text()
)


class FakeDDGS:
    """Plays back one outcome per call: a result list, or an exception to raise."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.timeouts: list[int] = []

    def factory(self, timeout: int) -> FakeDDGS:
        self.timeouts.append(timeout)
        return self

    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append((query, kwargs))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def engine(fake: FakeDDGS, sleeps: list[float] | None = None, **options: Any) -> DdgsEngine:
    record = sleeps if sleeps is not None else []
    return DdgsEngine(client_factory=fake.factory, sleep=record.append, **options)


def test_options_reach_ddgs_and_recorded_results_parse() -> None:
    fake = FakeDDGS([RECORDED])
    results = engine(fake, region="uk-en", safesearch="off", timelimit="y").search("emma", 4)
    query, kwargs = fake.calls[0]
    assert query == "emma"
    assert kwargs == {
        "backend": "auto",
        "region": "uk-en",
        "safesearch": "off",
        "timelimit": "y",
        "max_results": 4,
    }
    assert [r.url for r in results] == [
        "https://en.wikipedia.org/wiki/Emma_(novel)",
        "https://www.britannica.com/topic/Emma-novel-by-Austen",
        "https://www.gutenberg.org/ebooks/158",
        "https://www.janeausten.org/emma/",
    ]
    assert results[0].title == "Emma (novel) - Wikipedia"
    assert results[0].snippet.startswith("Emma is a novel written by English author Jane Austen.")
    assert results[3].title == "https://www.janeausten.org/emma/"  # no title: the URL stands in


def test_empty_timelimit_means_none_and_settings_are_used() -> None:
    fake = FakeDDGS([RECORDED])
    settings = Settings(region="de-de", safesearch="on", timelimit="")
    built = DdgsEngine.from_settings(settings)
    built._client_factory = fake.factory
    built.search("emma", 2)
    assert fake.calls[0][1]["timelimit"] is None
    assert fake.calls[0][1]["region"] == "de-de"
    assert fake.calls[0][1]["safesearch"] == "on"


def test_max_results_caps_the_list() -> None:
    assert len(engine(FakeDDGS([RECORDED])).search("emma", 2)) == 2


def test_transient_failures_are_retried_with_backoff_then_succeed() -> None:
    sleeps: list[float] = []
    fake = FakeDDGS([TimeoutException("timed out"), DDGSException("connection reset"), RECORDED])
    results = engine(fake, sleeps, attempts=3, backoff_s=0.5).search("emma", 5)
    assert len(results) == 4
    assert sleeps == [0.5, 1.0]
    assert len(fake.calls) == 3


def test_a_rate_limit_is_not_asked_again_at_once() -> None:
    """Asking a rate-limiting engine again within a second only prolongs the limit; the
    error says what to do instead."""
    sleeps: list[float] = []
    fake = FakeDDGS([RatelimitException("https://html.duckduckgo.com/html 202 Ratelimit")])
    with pytest.raises(SearchUnavailable) as info:
        engine(fake, sleeps, attempts=3).search("emma", 5)
    message = str(info.value)
    assert "engine ddgs" in message and "rate limited" in message
    assert "Wait a few minutes" in message and "searxng" in message and "backend" in message
    assert len(fake.calls) == 1 and sleeps == []
    assert info.value.engine == "ddgs" and "rate limited" in info.value.cause


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (TimeoutException("https://lite.duckduckgo.com/lite/ timed out"), "timed out"),
        (DDGSException("DNSError: no records found"), "search error: DNSError"),
        (ConnectionError("network unreachable"), "ConnectionError: network unreachable"),
    ],
)
def test_failures_become_one_search_unavailable(error: Exception, cause: str) -> None:
    sleeps: list[float] = []
    fake = FakeDDGS([error, error, error])
    with pytest.raises(SearchUnavailable) as info:
        engine(fake, sleeps, attempts=3).search("emma", 5)
    message = str(info.value)
    assert "engine ddgs" in message
    assert cause in message
    assert "3 attempts" in message
    assert "--engine searxng" in message  # says what to do
    assert len(fake.calls) == 3
    assert len(sleeps) == 2  # no sleep after the last attempt


def test_empty_results_are_an_error_that_suspects_a_rate_limit() -> None:
    """A fake client cannot be watched: its empty answer may still be a swallowed refusal."""
    fake = FakeDDGS([[{"title": "no link", "href": "", "body": "x"}]])
    with pytest.raises(SearchUnavailable, match="no results.*refused request.*rate limit"):
        engine(fake, attempts=3).search("emma", 5)
    assert len(fake.calls) == 1  # nothing transient: not asked again


@pytest.mark.parametrize("region", ["", "wt-wt", "WT-WT"])
def test_no_region_is_left_to_ddgs(region: str) -> None:
    """ddgs splits a region into country and language and builds host names from them:
    `wt-wt` sent its Wikipedia backend to wt.wikipedia.org. No region: ddgs's default."""
    fake = FakeDDGS([RECORDED])
    engine(fake, region=region).search("emma", 2)
    assert "region" not in fake.calls[0][1]


def test_backends_are_checked_against_the_installed_ddgs() -> None:
    fake = FakeDDGS([RECORDED])
    engine(fake, backend=" DuckDuckGo , brave,duckduckgo").search("emma", 2)
    assert fake.calls[0][1]["backend"] == "duckduckgo,brave"
    with pytest.raises(UsageError) as info:
        DdgsEngine(backend="duckduckgo,bign")
    message = str(info.value)
    assert (
        "'bign'" in message and "[engines.ddgs]" in message and "RAG_ENGINE_DDGS_BACKEND" in message
    )
    assert "auto" in message and "duckduckgo" in message and "wikipedia" in message


def test_missing_ddgs_package_says_how_to_install() -> None:
    def factory(timeout: int) -> Any:
        raise ImportError("No module named 'ddgs'")

    with pytest.raises(SearchUnavailable, match="pip install ddgs"):
        DdgsEngine(client_factory=factory, sleep=lambda s: None).search("emma", 5)


@pytest.mark.parametrize(
    "options",
    [{"safesearch": "strict"}, {"timelimit": "decade"}, {"region": "us"}, {"region": "en_US"}],
)
def test_bad_options_are_usage_errors(options: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        DdgsEngine(**options)


@pytest.mark.network
def test_live_ddgs_search() -> None:
    results = DdgsEngine().search("Jane Austen Emma novel", 5)
    assert results and all(r.url.startswith("http") for r in results)
