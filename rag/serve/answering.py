"""The work of one request, run on a worker thread: retrieve (concurrently with other
requests), then answer inside the model's queue. The HTTP side is in `rag.serve.routes`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from rag import orchestrator
from rag.core.config import Settings
from rag.core.errors import UsageError
from rag.core.types import Message
from rag.orchestrator import Answer, Retrieved, validate_question
from rag.serve.fields import settings_for_request, sources_for_request
from rag.serve.warm import Warm, Watched
from rag.sources import Retriever

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
    """The settings and source specs of a request, checked before any work starts."""
    settings = settings_for_request(warm.settings, fields, where=where)
    config = warm.config
    specs = sources_for_request(
        fields,
        indexes=config.indexes,
        search=config.search,
        allowed=config.indexes or None,
        where=where,
    )
    return settings, specs


def retrieve(
    warm: Warm, query: str, settings: Settings, specs: Sequence[str]
) -> tuple[list[Retriever], Retrieved]:
    """The warm retrievers of `specs`, and what they found (`rag.orchestrator.retrieve`)."""
    retrievers = warm.retrievers(specs, settings)
    return retrievers, orchestrator.retrieve(query, retrievers, settings)


def answer(
    warm: Warm,
    question: str,
    retrieved: Retrieved,
    settings: Settings,
    stop: threading.Event,
    *,
    on_text: OnText | None = None,
    history: Sequence[Message] = (),
) -> Answer:
    """`rag.orchestrator.answer` on the warm model, in its turn; stops between pieces once
    `stop` is set (the answer is then cut short, and nobody reads it)."""
    generator = warm.generator()
    watched = Watched(generator, stop)

    def text(chunk: str) -> None:
        if on_text is not None:
            on_text(chunk)
        watched.check()

    with warm.queue.turn(stop, generator):
        return orchestrator.answer(
            question,
            retrieved,
            watched,
            settings,
            history=history,
            on_text=text,  # type: ignore[arg-type]
        )


def ask_once(
    warm: Warm,
    question: str,
    settings: Settings,
    specs: Sequence[str],
    stop: threading.Event,
    on_text: OnText | None = None,
) -> Answer:
    _, retrieved = retrieve(warm, question, settings, specs)
    return answer(warm, question, retrieved, settings, stop, on_text=on_text)


def chat_turn(
    warm: Warm,
    question: str,
    history: Sequence[Message],
    settings: Settings,
    specs: Sequence[str],
    stop: threading.Event,
    on_text: OnText | None = None,
) -> tuple[Answer, str]:
    """One `rag chat` turn over a history the client keeps: the follow-up rewritten into a
    standalone query (`rag.chat`), searched, then answered with the recent turns."""
    from rag.chat import ChatSession

    generator = warm.generator()
    retrievers = warm.retrievers(specs, settings)
    watched = Watched(generator, stop)
    session = ChatSession(settings, retrievers=retrievers, generator=watched, history=list(history))  # type: ignore[arg-type]
    with warm.queue.turn(stop, generator):
        session.trim_history()  # the last few turns, at most a quarter of the context
        query = session.rewrite_query(question)
    retrieved = orchestrator.retrieve(query, retrievers, settings)
    result = answer(
        warm, question, retrieved, settings, stop, on_text=on_text, history=session.history
    )
    return result, query
