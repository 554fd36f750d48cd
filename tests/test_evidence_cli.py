"""Evidence selection through the CLI: --no-rerank, a reranker that cannot load, rag search."""

from __future__ import annotations

import json

import pytest
from conftest import FakeGenerator, FakeRetriever
from typer.testing import CliRunner

from rag.cli.app import app
from rag.core.config import Settings
from rag.core.types import Passage

runner = CliRunner()
NOTES = [
    Passage(
        "Compost needs air. Turn the pile every two weeks in summer. Worms like it damp.",
        "Compost",
        "notes/compost.md#0",
        "index:notes",
        0.9,
    ),
    Passage(
        "Tomatoes want sun. Prune the side shoots weekly. Water at the base.",
        "Tomatoes",
        "notes/tomatoes.md#0",
        "index:notes",
        0.8,
    ),
]


@pytest.fixture
def notes_index(monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.cli.search_command  # noqa: F401 - imported so its module is patched below
    import rag.orchestrator
    import rag.sources

    def build(spec: str, settings: Settings) -> FakeRetriever:
        return FakeRetriever(spec, NOTES)

    monkeypatch.setattr(rag.sources, "build_retriever", build)


def test_a_reranker_that_cannot_load_is_one_line_naming_the_setting(
    notes_index: None, fake_model: FakeGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The hub reads the variable once, at import: an earlier test may have imported it.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    ask = ["ask", "When do I turn the compost?", "--index", "notes", "--model", "fake:"]
    failed = runner.invoke(app, [*ask, "--reranker", "cross-encoder:nobody/no-such-model"])
    assert failed.exit_code == 1
    message = failed.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "cross-encoder:nobody/no-such-model" in message
    assert "RAG_RERANKER" in message and "--no-rerank" in message
    assert fake_model.calls == []

    answered = runner.invoke(app, [*ask, "--no-rerank", "--json"])
    assert answered.exit_code == 0, answered.stderr
    sources = json.loads(answered.stdout)["sources"]
    assert [s["title"] for s in sources] == ["Compost", "Tomatoes"]  # whole, in order
    assert all(s["spans"] is None and s["rerank_score"] is None for s in sources)


def test_unknown_reranker_and_contradicting_flags_are_usage_errors(
    notes_index: None, fake_model: FakeGenerator
) -> None:
    ask = ["ask", "q?", "--index", "notes", "--model", "fake:"]
    unknown = runner.invoke(app, [*ask, "--reranker", "magic"])
    assert unknown.exit_code == 2 and "Unknown reranker 'magic'" in unknown.stderr
    both = runner.invoke(app, [*ask, "--reranker", "bm25", "--no-rerank"])
    assert both.exit_code == 2 and "contradict" in both.stderr


def test_ask_json_gives_whole_sources_and_the_spans_the_model_read(
    notes_index: None, fake_model: FakeGenerator
) -> None:
    result = runner.invoke(
        app,
        ["ask", "When do I turn the compost pile?", "--index", "notes", "--model", "fake:",
         "--reranker", "bm25", "--evidence-tokens", "20", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    first = payload["sources"][0]
    assert first["title"] == "Compost" and first["text"] == NOTES[0].text
    read = [first["text"][a:b] for a, b in first["spans"]]
    assert any("Turn the pile every two weeks in summer." in piece for piece in read)
    assert sum(map(len, read)) < len(first["text"])  # the budget kept part of it
    prompt = fake_model.calls[0][-1].content
    assert all(piece in prompt for piece in read)
    assert "selection_s" in payload["timings"]


def test_search_shows_the_reranked_order_with_scores(notes_index: None) -> None:
    result = runner.invoke(
        app, ["search", "prune tomato shoots", "--index", "notes", "--reranker", "bm25", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    assert [r["title"] for r in results] == ["Tomatoes", "Compost"]  # reranked past the index
    assert results[0]["rerank_score"] > results[1]["rerank_score"]
    plain = runner.invoke(
        app, ["search", "prune tomato shoots", "--index", "notes", "--reranker", "bm25"]
    )
    assert plain.exit_code == 0 and "rerank +" in plain.stdout
