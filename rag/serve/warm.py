"""What one `rag serve` process keeps warm between requests, and the queue on its model.

Loaded once: the settings, the generator, one retriever per index (each with its own lock;
reopened when the index gets a new version), the embedder and the reranker (cached by
`indexers.embedders` and `rag.evidence`). Retrieval runs concurrently; generation does not:
llama.cpp's `Llama` is not thread-safe, so every use of the model, from counting prompt
tokens to the last generated piece, happens in a turn of `ModelQueue`, on one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import anyio.to_thread

from rag.core.config import Settings
from rag.generators import Generation, Generator, load_generator
from rag.generators.base import serves_concurrently
from rag.serve.config import ServeConfig
from rag.serve.errors import Stopped
from rag.sources import Retriever, build_retriever

T = TypeVar("T")


class ModelQueue:
    """One request at a time on a local model, in arrival order. The wait is on the event
    loop, not on a thread: a queued request holds none of the worker threads searches run
    on, and a request cancelled while queued (its client left) leaves the queue at once.
    `waiting` counts every request queued, whichever endpoint it came through."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def turn(self, generator: Any = None) -> AsyncIterator[None]:
        """Hold the model for the block (on the event loop's thread). A model server that
        batches requests (`openai:`) needs no turn. Whoever holds the turn must not let
        the block end while its thread still uses the model (`Warm.generating` and
        `streaming.from_thread` wait for theirs)."""
        if generator is not None and serves_concurrently(generator):
            yield
            return
        if self._lock is None:
            self._lock = asyncio.Lock()  # made here: it belongs to the server's loop
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        try:
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
        from rag.core.threads import meter

        # Readings every second keep the thread decision's window short between requests.
        meter().keep_sampling()
        self.config = config
        self.settings = settings
        self.queue = ModelQueue()
        self._generating: anyio.CapacityLimiter | None = None
        self._generator: Generator | None = None
        self._loading = threading.Lock()
        self._retrievers: dict[tuple[Any, ...], Retriever] = {}
        self._opening = threading.Lock()
        #: `--watch`: each watched index's last update, for /healthz (`rag.serve.watching`).
        self.watching: dict[str, dict[str, Any]] = {}

    @property
    def model_name(self) -> str:
        return self._generator.model_name if self._generator is not None else self.settings.model

    def generator(self) -> Generator:
        """The model, loaded on first use (`warm_up` loads it at start)."""
        with self._loading:
            if self._generator is None:
                self._generator = load_generator(self.settings)
            return self._generator

    async def loaded(self) -> Generator:
        """The model, loading it on a thread if `warm_up` did not."""
        if self._generator is not None:
            return self._generator
        return await anyio.to_thread.run_sync(self.generator)

    async def generating(self, work: Callable[[], T]) -> T:
        """`work()` (a use of the model, in the caller's turn) on a thread of its own
        budget, apart from the worker threads retrieval uses: one per request at most, so
        a model server's concurrent answers (`openai:`) never starve the searches either.
        Cancelled, it waits for `work` to end (it stops at its next check of `stop`)."""
        if self._generating is None:
            self._generating = anyio.CapacityLimiter(self.config.max_in_flight)
        return await anyio.to_thread.run_sync(work, limiter=self._generating)

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
