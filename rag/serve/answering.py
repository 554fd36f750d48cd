"""The work of one request, as the event loop awaits it: retrieval on a worker thread
(concurrently with other requests), then the answer in the model's turn. The turn is
awaited on the loop (`warm.ModelQueue`), so a request waiting for the model holds no
thread; only the one whose turn it is runs on one (`Warm.generating`, or a stream's own
thread). The HTTP side is in `rag.serve.routes` and `rag.serve.openai_compat`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio.to_thread

from rag import orchestrator
from rag.core.config import Settings
from rag.core.errors import UsageError
from rag.core.types import Message
from rag.generators import Generator
from rag.orchestrator import Answer, Retrieved, validate_question
from rag.serve.errors import Stopped
from rag.serve.fields import settings_for_request, sources_for_request
from rag.serve.streaming import from_thread
from rag.serve.warm import Warm, Watched

OnText = Callable[[str], None]


def check_question(question: Any, limit: int, what: str = "question") -> str:
    """The question stripped; a UsageError (400) when it is not text, empty or too long."""
    if not isinstance(question, str):
        raise UsageError(f"The {what} must be text, got {type(question).__name__}.")
    if len(question) > limit:
        raise UsageError(
            f"The {what} is {len(question)} characters; this server takes at most {limit}."
        )
    return validate_question(question, what=what)


def request_plan(warm: Warm, fields: dict[str, Any], where: str) -> tuple[Settings, list[str]]:
    """The settings and source specs of a request, checked before any work starts: an
    index the server does not serve, or the web on a server started without `--search`,
    is refused (403)."""
    settings = settings_for_request(warm.settings, fields, where=where)
    config = warm.config
    specs = sources_for_request(
        fields,
        indexes=config.indexes,
        search=config.search,
        allowed=config.indexes or None,
        where=where,
    )
    if "web" in specs and not config.search:
        from rag.serve.errors import SearchNotServed

        raise SearchNotServed(
            f"{where}: this server was started without --search, so it does not search "
            "the web; ask for its indexes only, or start `rag serve --search`."
        )
    return settings, specs


async def retrieve(warm: Warm, query: str, settings: Settings, specs: Sequence[str]) -> Retrieved:
    """What the warm retrievers of `specs` found (`rag.orchestrator.retrieve`), on a
    worker thread."""

    def work() -> Retrieved:
        return orchestrator.retrieve(query, warm.retrievers(specs, settings), settings)

    return await anyio.to_thread.run_sync(work)


def answer_now(
    generator: Generator,
    question: str,
    retrieved: Retrieved,
    settings: Settings,
    stop: threading.Event,
    *,
    on_text: OnText | None = None,
    history: Sequence[Message] = (),
) -> Answer:
    """`rag.orchestrator.answer` on the model, on this thread, in a turn the caller holds;
    stops between pieces once `stop` is set (the answer is then cut short, and nobody
    reads it)."""
    if stop.is_set():
        raise Stopped()
    watched = Watched(generator, stop)

    def text(chunk: str) -> None:
        if on_text is not None:
            on_text(chunk)
        watched.check()

    return orchestrator.answer(
        question,
        retrieved,
        watched,  # type: ignore[arg-type]
        settings,
        history=history,
        on_text=text,
    )


async def answer(
    warm: Warm,
    question: str,
    retrieved: Retrieved,
    settings: Settings,
    stop: threading.Event,
    *,
    history: Sequence[Message] = (),
) -> Answer:
    """The whole answer, in the model's turn."""
    generator = await warm.loaded()
    async with warm.queue.turn(generator):
        return await warm.generating(
            lambda: answer_now(generator, question, retrieved, settings, stop, history=history)
        )


async def streamed(
    warm: Warm,
    stop: threading.Event,
    work: Callable[[Generator, OnText], Any],
) -> AsyncIterator[tuple[str, Any]]:
    """`work(generator, on_text)` in the model's turn, on its own thread: ("text", piece)
    for each piece it passes to `on_text`, then ("result", what it returned) or ("error",
    the exception). The turn ends only once that thread is done with the model. Iterate
    it inside `contextlib.aclosing`, as this does `from_thread`: an async generator left
    suspended is closed only when the garbage collector gets to it, and until then it
    would keep the model's turn."""
    try:
        generator = await warm.loaded()
    except Exception as exc:  # noqa: BLE001 - reported as an event
        yield "error", exc
        return
    async with warm.queue.turn(generator):
        run = lambda emit: work(generator, lambda text: emit(("text", text)))  # noqa: E731
        async with contextlib.aclosing(from_thread(run, stop)) as items:
            async for item in items:
                yield item


async def ask(
    warm: Warm, question: str, settings: Settings, specs: Sequence[str], stop: threading.Event
) -> Answer:
    """`rag ask --json`'s answer: retrieve, then answer in the model's turn."""
    retrieved = await retrieve(warm, question, settings, specs)
    return await answer(warm, question, retrieved, settings, stop)


async def rewrite(
    warm: Warm,
    question: str,
    history: Sequence[Message],
    settings: Settings,
    specs: Sequence[str],
    stop: threading.Event,
) -> tuple[str, list[Message]]:
    """A `rag chat` follow-up as a standalone search query (`rag.chat`), and the recent
    turns kept for the answer (at most a quarter of the context), in the model's turn. A
    first turn needs neither, nor the model."""
    from rag.chat import ChatSession

    if not history:
        return question, []
    generator = await warm.loaded()
    retrievers = await anyio.to_thread.run_sync(lambda: warm.retrievers(specs, settings))
    session = ChatSession(
        settings,
        retrievers=retrievers,
        generator=Watched(generator, stop),  # type: ignore[arg-type]
        history=list(history),
    )

    def work() -> str:
        if stop.is_set():
            raise Stopped()
        session.trim_history()
        return session.rewrite_query(question)

    async with warm.queue.turn(generator):
        query = await warm.generating(work)
    return query, session.history


async def chat_turn(
    warm: Warm,
    question: str,
    history: Sequence[Message],
    settings: Settings,
    specs: Sequence[str],
    stop: threading.Event,
) -> tuple[Answer, str]:
    """One `rag chat` turn over a history the client keeps: the follow-up rewritten,
    searched, then answered with the recent turns."""
    query, kept = await rewrite(warm, question, history, settings, specs, stop)
    retrieved = await retrieve(warm, query, settings, specs)
    result = await answer(warm, question, retrieved, settings, stop, history=kept)
    return result, query
