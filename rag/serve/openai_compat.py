"""`POST /v1/chat/completions` and `GET /v1/models` in OpenAI's format, so Open WebUI or
any OpenAI client can talk to pocketrag: the last user message is the question, earlier
user and assistant messages are the chat history (a follow-up is rewritten into a
standalone search query, as `rag chat` does), and the answer keeps its `[n]` citations,
with the sources in an extra `pocketrag` field."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rag.core.errors import UsageError
from rag.core.types import Message
from rag.orchestrator import Answer
from rag.serve import answering
from rag.serve.config import MAX_MODEL_CHARS
from rag.serve.errors import Stopped, error_body
from rag.serve.fields import CHAT_FIELDS, check_fields, flag
from rag.serve.routes import endpoint, read_json, warm_of
from rag.serve.streaming import EventStream, run_watched, sse

WHERE = "/v1/chat/completions"


def text_of(content: Any) -> str:
    """A message's text: a string, or OpenAI's list of parts (only `text` parts count)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts):
            return "\n".join(parts)  # type: ignore[arg-type]
    if content is None:
        return ""
    raise UsageError(f"{WHERE}: a message's content must be text, got {type(content).__name__}.")


def conversation(messages: Any) -> tuple[str, list[Message]]:
    """(the last user message, the user/assistant turns before it). System and tool
    messages are left out: pocketrag's prompt has its own instructions."""
    if not isinstance(messages, list) or not messages:
        raise UsageError(f"{WHERE}: messages must be a non-empty list.")
    turns: list[Message] = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise UsageError(f"{WHERE}: each message must be an object with a role.")
        if message["role"] in ("user", "assistant"):
            turns.append(Message(message["role"], text_of(message.get("content"))))
    if not turns or turns[-1].role != "user":
        raise UsageError(f"{WHERE}: the last message must be the user's question.")
    from rag.chat import strip_citations

    history = [
        Message(m.role, strip_citations(m.content) if m.role == "assistant" else m.content)
        for m in turns[:-1]
        if m.content.strip()
    ]
    return turns[-1].content, history


def request_fields(body: dict[str, Any]) -> dict[str, Any]:
    """pocketrag's fields for a chat request: OpenAI's `max_tokens` (or
    `max_completion_tokens`) and `temperature`, plus the extra `pocketrag` object."""
    extra = body.get("pocketrag") or {}
    if not isinstance(extra, dict):
        raise UsageError(f'{WHERE}: pocketrag must be an object, e.g. {{"index": ["notes"]}}.')
    check_fields(extra, CHAT_FIELDS, f"{WHERE} pocketrag object")
    fields = dict(extra)
    for name in ("max_completion_tokens", "max_tokens", "temperature"):
        if body.get(name) is not None:
            fields["max_tokens" if name.startswith("max_") else name] = body[name]
    return fields


def finish_reason(answer: Answer, max_tokens: int) -> str:
    return "length" if answer.timings.get("completion_tokens", 0) >= max_tokens else "stop"


def extras(answer: Answer, search_query: str) -> dict[str, Any]:
    """What pocketrag adds to an OpenAI response: the sources the `[n]` cite, and more."""
    data = answer.as_dict()
    return {
        "sources": data["sources"],
        "warnings": data["warnings"],
        "timings": data["timings"],
        "search_query": search_query,
    }


def usage(answer: Answer) -> dict[str, int]:
    prompt = int(answer.timings.get("prompt_tokens", 0))
    completion = int(answer.timings.get("completion_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


@endpoint
async def chat_completions(request: Request) -> Response:
    warm = warm_of(request)
    body = await read_json(request)
    messages = body.get("messages")
    question, history = conversation(messages)
    question = answering.check_question(question, warm.config.max_question_chars)
    fields = request_fields(body)
    settings, specs = answering.request_plan(warm, fields, WHERE)
    model = echoed_model(body.get("model"), warm.model_name)
    # Open the sources now, so an unknown index is a status code, not an event.
    await anyio.to_thread.run_sync(lambda: warm.retrievers(specs, settings))
    stop = threading.Event()
    ident = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    if not flag(body, "stream", WHERE):
        work = lambda: answering.chat_turn(warm, question, history, settings, specs, stop)  # noqa: E731
        answer, query = await run_watched(request, work, stop)
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer.answer},
                        "finish_reason": finish_reason(answer, settings.max_tokens),
                    }
                ],
                "usage": usage(answer),
                "pocketrag": extras(answer, query),
            }
        )
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(delta: dict[str, Any], reason: str | None = None, **more: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return sse({"id": ident, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [choice], **more})  # fmt: skip

    async def turn() -> AsyncIterator[tuple[str, Any]]:
        """The chat turn as `answering.streamed`'s items; a failure before the answer
        starts (the rewrite, the search) is an error item too."""
        try:
            query, kept = await answering.rewrite(warm, question, history, settings, specs, stop)
            retrieved = await answering.retrieve(warm, query, settings, specs)
        except Exception as exc:  # noqa: BLE001 - reported as an event
            yield "error", exc
            return

        def work(generator: Any, on_text: Callable[[str], None]) -> tuple[Answer, str]:
            answer = answering.answer_now(
                generator, question, retrieved, settings, stop, on_text=on_text, history=kept
            )
            return answer, query

        async with contextlib.aclosing(answering.streamed(warm, stop, work)) as items:
            async for item in items:
                yield item

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        async with contextlib.aclosing(turn()) as items:
            async for kind, value in items:
                if kind == "text":
                    yield chunk({"content": value})
                elif kind == "result":
                    answer, query = value
                    reason = finish_reason(answer, settings.max_tokens)
                    yield chunk({}, reason, pocketrag=extras(answer, query))
                    if include_usage:
                        yield sse({"id": ident, "object": "chat.completion.chunk",
                                   "created": created, "model": model, "choices": [],
                                   "usage": usage(answer)})  # fmt: skip
                elif not isinstance(value, Stopped):
                    yield sse(error_body(value))
        yield sse("[DONE]")

    return EventStream(events())


def echoed_model(given: Any, served: str) -> str:
    """The `model` a response names: the request's (OpenAI echoes it; clients match on
    it), or the server's own when the request names none. One longer than
    `MAX_MODEL_CHARS` is a 400: it would be written again with every streamed piece."""
    if not isinstance(given, str):
        return served
    if len(given) > MAX_MODEL_CHARS:
        raise UsageError(
            f"{WHERE}: model is {len(given)} characters; this server takes a name of at "
            f"most {MAX_MODEL_CHARS} (it answers with {served!r} whatever the name)."
        )
    return given


@endpoint
async def models(request: Request) -> Response:
    """The one model this server answers with (Open WebUI lists models from here)."""
    warm = warm_of(request)
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {"id": warm.model_name, "object": "model", "created": 0, "owned_by": "pocketrag"}
            ],  # fmt: skip
        }
    )
