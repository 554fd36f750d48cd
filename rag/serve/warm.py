"""What one `rag serve` process keeps warm between requests, and the queue on its model.

Loaded once: the settings, the generator, one retriever per index (each with its own lock;
reopened when the index gets a new version), the embedder and the reranker (cached by
`indexers.embedders` and `rag.evidence`). Retrieval runs concurrently; generation does not:
llama.cpp's `Llama` is not thread-safe, so every use of the model, from counting prompt
tokens to the last generated piece, happens inside `ModelQueue.turn`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from rag.core.config import Settings
from rag.generators import Generation, Generator, load_generator
from rag.generators.base import serves_concurrently
from rag.serve.config import ServeConfig
from rag.serve.errors import Stopped
from rag.sources import Retriever, build_retriever

#: How often a request waiting for the model checks whether its client is still there.
WAIT_POLL_S = 0.05


class ModelQueue:
    """One request at a time on a local model, in arrival order (roughly: waiters poll)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = threading.Lock()
        self.waiting = 0

    @contextlib.contextmanager
    def turn(self, stop: threading.Event, generator: Any = None) -> Iterator[None]:
        """Hold the model for the block. Raises `Stopped` when `stop` is set while waiting
        (the client left). A model server that batches requests (`openai:`) needs no turn."""
        if generator is not None and serves_concurrently(generator):
            yield
            return
        with self._count:
            self.waiting += 1
        try:
            while not self._lock.acquire(timeout=WAIT_POLL_S):
                if stop.is_set():
                    raise Stopped()
        finally:
            with self._count:
                self.waiting -= 1
        try:
            if stop.is_set():
                raise Stopped()
            yield
        finally:
            self._lock.release()


class Watched:
    """The server's generator as one request sees it: `check()` between pieces ends the
    generation as soon as the request's `stop` is set, so llama.cpp stops decoding and the
    model is free for the next request. Everything else is the generator's own."""

    def __init__(self, inner: Generator, stop: threading.Event) -> None:
        self._inner = inner
        self.stop = stop
        self.current: Generation | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def generate(self, messages: Sequence[Any], **options: Any) -> Generation:
        if self.stop.is_set():
            raise Stopped()
        self.current = self._inner.generate(messages, **options)
        return self.current

    def check(self) -> None:
        if self.stop.is_set() and self.current is not None:
            self.current.close()


class Warm:
    """The process's warm state; safe to use from many request threads."""

    def __init__(self, config: ServeConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.queue = ModelQueue()
        self._generator: Generator | None = None
        self._loading = threading.Lock()
        self._retrievers: dict[tuple[Any, ...], Retriever] = {}
        self._opening = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._generator.model_name if self._generator is not None else self.settings.model

    def generator(self) -> Generator:
        """The model, loaded on first use (`warm_up` loads it at start)."""
        with self._loading:
            if self._generator is None:
                self._generator = load_generator(self.settings)
            return self._generator

    def retriever(self, spec: str, settings: Settings) -> Retriever:
        """A web retriever per request (it is light, and its engine options may differ); an
        index's retriever kept open, reopened when the index has a new version."""
        if not spec.startswith("index:"):
            return build_retriever(spec, settings)
        key = (spec, settings.embedder, settings.embedder_runtime, settings.hybrid, settings.home)
        with self._opening:
            cached = self._retrievers.get(key)
            if cached is not None and _current(cached, spec, settings):
                return cached
            retriever = build_retriever(spec, settings)
            self._retrievers[key] = retriever
            return retriever

    def retrievers(self, specs: Sequence[str], settings: Settings) -> list[Retriever]:
        return [self.retriever(spec, settings) for spec in specs]

    def warm_up(self) -> None:
        """Load now what the first request would otherwise wait for: the model, the
        configured indexes, their embedder and the reranker."""
        from rag.evidence import load_reranker

        self.generator()
        specs = [f"index:{name}" for name in self.config.indexes]
        for retriever in self.retrievers(specs, self.settings):
            _ = getattr(retriever, "embedder", None)
        if specs or self.config.search:
            load_reranker(self.settings)


def _current(retriever: Retriever, spec: str, settings: Settings) -> bool:
    """Whether an open index retriever still reads the index's live version."""
    from indexers import stores

    try:
        live = stores.open_store(spec[len("index:") :], settings).fingerprint()
        return live is not None and retriever.fingerprint() == live  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - reopening reports any real problem properly
        return False
