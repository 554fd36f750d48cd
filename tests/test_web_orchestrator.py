"""The orchestrator with a fake search engine: citation numbering, the budget, the offline paths."""

from __future__ import annotations

import json
import re

import pytest
from conftest import FakeGenerator, FakeRetriever, ask, returning
from typer.testing import CliRunner

from rag.cli.app import app
from rag.core.config import Settings
from rag.core.errors import SearchUnavailable
from rag.core.types import Message, Passage
from rag.web import WebResult, WebRetriever
from rag.web.ddgs_engine import DdgsEngine

runner = CliRunner()


class FakeEngine:
    name = "fake"

    def __init__(self, results: list[WebResult]) -> None:
        self.results = results

    def cache_identity(self) -> dict:
        return {}

    def search(self, query: str, max_results: int) -> list[WebResult]:
        return self.results[:max_results]


WEB_RESULTS = [
    WebResult(
        f"Result {i}",
        f"https://site{i}.example/page",
        f"Fact number {i}: topic {i} is described here in words.",
    )
    for i in range(1, 6)
]
LOCAL = [
    Passage(
        f"Local note {i} says something particular about item {i}.",
        f"note {i}",
        f"notes/n{i}.md#0",
        "index:notes",
        0.9 - i / 10,
    )
    for i in range(1, 4)
]


def prompt_ids_and_titles(messages: list[Message]) -> list[tuple[int, str]]:
    return [
        (int(i), title)
        for i, title in re.findall(r'<source id="(\d+)" title="([^"]*)"', messages[-1].content)
    ]


def test_sources_match_prompt_numbers_across_web_and_index(fake_generator: FakeGenerator) -> None:
    web = WebRetriever(FakeEngine(WEB_RESULTS))
    answer = ask(
        "What do we know?",
        settings=Settings(k=4, reranker="none"),  # fusion and numbering, no reranker's say
        retrievers=[FakeRetriever("index:notes", LOCAL), web],
        generator=fake_generator,
    )
    ids = [s.id for s in answer.sources]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) == 4  # k: sources in the prompt
    assert prompt_ids_and_titles(answer.prompt) == [(s.id, s.title) for s in answer.sources]
    assert {s.origin for s in answer.sources} == {"web", "index:notes"}
    # fair fusion: the first two are the best of each source
    assert {answer.sources[0].origin, answer.sources[1].origin} == {"web", "index:notes"}
    as_json = answer.as_dict()
    assert [s["id"] for s in as_json["sources"]] == ids
    assert as_json["answer"] == "Jane Austen wrote it [1]."


def test_numbering_survives_a_prompt_too_long_retry() -> None:
    class Underestimating(FakeGenerator):
        """Counts the frame low, so the first packed prompt is a few tokens too long."""

        def count_prompt_tokens(self, messages):  # noqa: ANN001, ANN201
            return super().count_prompt_tokens(messages) - 30

    generator = Underestimating(context_size=260)
    web = WebRetriever(FakeEngine(WEB_RESULTS))
    answer = ask(
        "What do we know?",
        settings=Settings(k=5, max_tokens=32),
        retrievers=[web],
        generator=generator,
    )
    assert answer.sources, "some sources should still fit"
    assert [s.id for s in answer.sources] == list(range(1, len(answer.sources) + 1))
    assert prompt_ids_and_titles(answer.prompt) == [(s.id, s.title) for s in answer.sources]
    assert generator.count_prompt_tokens(answer.prompt) + 30 + 32 <= 260


def test_budget_is_measured_with_the_generators_counter(fake_generator: FakeGenerator) -> None:
    big = [WebResult(f"R{i}", f"https://b{i}.example/", " ".join(["word"] * 300)) for i in range(6)]
    generator = FakeGenerator(context_size=1000)
    answer = ask(
        "q?",
        settings=Settings(k=6, max_tokens=100),
        retrievers=[WebRetriever(FakeEngine(big))],
        generator=generator,
    )
    assert 1 <= len(answer.sources) < 6
    assert generator.count_prompt_tokens(answer.prompt) + 100 <= 1000


def test_nothing_fits_is_a_warning(fake_generator: FakeGenerator) -> None:
    import prompts

    frame = FakeGenerator().count_prompt_tokens(
        prompts.load("answer_with_sources").render(question="q?", sources="")
    )
    generator = FakeGenerator(
        context_size=frame + 60 + 16 + 30
    )  # 30 tokens of room: too few to cut
    big = [WebResult("R", "https://b.example/", " ".join(["word"] * 3000))]
    answer = ask(
        "q?",
        settings=Settings(max_tokens=60),
        retrievers=[WebRetriever(FakeEngine(big))],
        generator=generator,
    )
    assert answer.sources == []
    assert any("None of the 1 passages fit" in w for w in answer.warnings)


def test_web_down_alone_raises_with_engine_and_cause(fake_generator: FakeGenerator) -> None:
    down = WebRetriever(DdgsEngine(client_factory=_failing_ddgs, sleep=lambda s: None))
    with pytest.raises(SearchUnavailable, match=r"engine ddgs.*DNSError"):
        ask("Who wrote Emma?", settings=Settings(), retrievers=[down], generator=fake_generator)
    assert fake_generator.calls == []  # never a silently ungrounded answer


def test_web_down_with_index_warns_and_answers_from_the_index(
    fake_generator: FakeGenerator,
) -> None:
    down = WebRetriever(DdgsEngine(client_factory=_failing_ddgs, sleep=lambda s: None))
    answer = ask(
        "Who wrote Emma?",
        settings=Settings(reranker="none"),
        retrievers=[FakeRetriever("index:notes", LOCAL), down],
        generator=fake_generator,
    )
    assert [s.origin for s in answer.sources] == ["index:notes"] * 3
    assert len(answer.warnings) == 1 and "engine ddgs" in answer.warnings[0]
    assert "other sources" in answer.warnings[0]


def _failing_ddgs(timeout: int):  # noqa: ANN202
    from ddgs.exceptions import DDGSException

    class Client:
        def text(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            raise DDGSException("DNSError: error resolving DNS for html.duckduckgo.com")

    return Client()


@pytest.fixture
def offline_ddgs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ddgs engine, with the DDGS client failing the way it does without a network."""
    monkeypatch.setattr("rag.web.ddgs_engine._default_client", _failing_ddgs)
    monkeypatch.setattr("rag.web.ddgs_engine.DEFAULT_BACKOFF_S", 0.0)


def test_cli_search_alone_offline_exits_1_with_engine_and_cause(
    offline_ddgs: None, fake_model: FakeGenerator
) -> None:
    result = runner.invoke(app, ["ask", "Who wrote Emma?", "--search", "--model", "fake:"])
    assert result.exit_code == 1
    assert "engine ddgs" in result.stderr and "DNSError" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    assert fake_model.calls == []


def test_cli_search_with_index_offline_warns_and_reports_warnings_in_json(
    offline_ddgs: None, fake_model: FakeGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.sources
    from rag.sources import build_retriever as real_build

    def build(spec: str, settings: Settings):  # noqa: ANN202
        return (
            FakeRetriever(spec, LOCAL) if spec.startswith("index:") else real_build(spec, settings)
        )

    monkeypatch.setattr(rag.sources, "build_retriever", build)
    ask = ["ask", "Who wrote Emma?", "--search", "--index", "notes", "--model", "fake:"]
    result = runner.invoke(app, [*ask, "--no-rerank", "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [s["origin"] for s in payload["sources"]] == ["index:notes"] * 3
    assert [s["id"] for s in payload["sources"]] == [1, 2, 3]
    assert len(payload["warnings"]) == 1 and "engine ddgs" in payload["warnings"][0]
    assert "Warning:" in result.stderr and "engine ddgs" in result.stderr

    plain = runner.invoke(app, [*ask, "--no-rerank"])
    assert plain.exit_code == 0
    assert "Jane Austen wrote it [1]." in plain.stdout
    assert "[1] note 1 — notes/n1.md#0" in plain.stdout
    assert "engine ddgs" in plain.stderr and "engine ddgs" not in plain.stdout


def test_cli_search_web_json_with_a_registered_engine(register_part) -> None:  # noqa: ANN001
    register_part("engine", "fake", returning(FakeEngine(WEB_RESULTS)))
    result = runner.invoke(
        app,
        ["search", "facts", "--web", "--engine", "fake", "--k", "3", "--no-rerank", "--json"],
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["query"] == "facts"
    assert [r["location"] for r in payload["results"]] == [r.url for r in WEB_RESULTS[:3]]
    assert [r["id"] for r in payload["results"]] == [1, 2, 3]
    assert {r["origin"] for r in payload["results"]} == {"web"}


def test_cli_unknown_engine_exits_2(fake_model: FakeGenerator) -> None:
    result = runner.invoke(app, ["ask", "q?", "--search", "--engine", "bing", "--model", "fake:"])
    assert result.exit_code == 2
    assert "ddgs, searxng" in result.stderr
