"""The ddgs engine: options passed through, recorded results parsed, failures -> one error."""

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
    assert kwargs == {"region": "uk-en", "safesearch": "off", "timelimit": "y", "max_results": 4}
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


def test_retries_with_backoff_then_succeeds() -> None:
    sleeps: list[float] = []
    fake = FakeDDGS([RatelimitException("202 Ratelimit"), TimeoutException("timed out"), RECORDED])
    results = engine(fake, sleeps, attempts=3, backoff_s=0.5).search("emma", 5)
    assert len(results) == 4
    assert sleeps == [0.5, 1.0]
    assert len(fake.calls) == 3


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (RatelimitException("https://html.duckduckgo.com/html 202 Ratelimit"), "rate limited"),
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


def test_empty_results_from_a_rate_limited_engine_are_an_error() -> None:
    fake = FakeDDGS([[], [], [{"title": "no link", "href": "", "body": "x"}]])
    with pytest.raises(SearchUnavailable, match="no results.*rate limiting"):
        engine(fake, attempts=3).search("emma", 5)


def test_missing_ddgs_package_says_how_to_install() -> None:
    def factory(timeout: int) -> Any:
        raise ImportError("No module named 'ddgs'")

    with pytest.raises(SearchUnavailable, match="pip install ddgs"):
        DdgsEngine(client_factory=factory, sleep=lambda s: None).search("emma", 5)


@pytest.mark.parametrize("options", [{"safesearch": "strict"}, {"timelimit": "decade"}])
def test_bad_options_are_usage_errors(options: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        DdgsEngine(**options)


@pytest.mark.network
def test_live_ddgs_search() -> None:
    results = DdgsEngine().search("Jane Austen Emma novel", 5)
    assert results and all(r.url.startswith("http") for r in results)
