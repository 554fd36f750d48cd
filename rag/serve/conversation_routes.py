"""The research desk's conversations: `/v1/conversations` (list, search, create),
`/v1/conversations/ID` (read, rename, delete), `.../export` (Markdown) and `.../ask` (a
turn through the chat path, stored once it is complete). The store is
`rag.conversations`, `$RAG_HOME/conversations.sqlite`, the one `rag chat` and
`rag history` use. Errors are the server's JSON errors: a non-integer id is 400, an id
that names no conversation 404, a damaged file 503 naming it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rag.conversations import (
    ConversationStore,
    history_messages,
    markdown,
    open_store,
    parse_id,
)
from rag.core.errors import UsageError
from rag.orchestrator import Answer
from rag.serve import answering
from rag.serve.errors import ModelMismatch, Stopped, error_body
from rag.serve.fields import ASK_FIELDS, check_fields, flag
from rag.serve.routes import endpoint, read_json, warm_of
from rag.serve.streaming import EventStream, run_watched, sse
from rag.serve.warm import Warm

LIST_PARAMS = frozenset({"q", "limit"})


def routes() -> list[Route]:
    """This module's routes, for `rag.serve.app.create_app`'s list."""
    return [
        Route("/v1/conversations", conversations, methods=["GET", "POST"]),
        Route("/v1/conversations/{ident}", conversation, methods=["GET", "PATCH", "DELETE"]),
        Route("/v1/conversations/{ident}/export", export, methods=["GET"]),
        Route("/v1/conversations/{ident}/ask", ask, methods=["POST"]),
    ]


def store_of(request: Request) -> ConversationStore:
    """The store of the server's RAG_HOME (made on first use; it holds only a path)."""
    state = request.app.state
    store = getattr(state, "conversations", None)
    if store is None:
        store = state.conversations = open_store(warm_of(request).settings)
    return store


def ident_of(request: Request) -> int:
    return parse_id(request.path_params["ident"])


async def in_thread(work: Callable[[], Any]) -> Any:
    """A store call on a worker thread (SQLite blocks); never abandoned halfway: a
    request cancelled meanwhile waits for its transaction to end."""
    return await anyio.to_thread.run_sync(work)


@endpoint
async def conversations(request: Request) -> Response:
    """GET: `{"conversations": [...]}`, newest first, `q` searching titles and turns,
    at most `limit`. POST `{"title"?}`: a new conversation, 201."""
    store = store_of(request)
    if request.method == "POST":
        fields = await read_json(request)
        check_fields(fields, {"title"}, "POST /v1/conversations")
        title = fields.get("title")
        return JSONResponse(await in_thread(lambda: store.create(title)), status_code=201)
    params = request.query_params
    where = "/v1/conversations"
    check_fields(dict(params), LIST_PARAMS, where)
    repeated = [name for name in params if len(params.getlist(name)) > 1]
    if repeated:
        raise UsageError(f"{where}: {repeated[0]} is given more than once.")
    limit = params.get("limit", "100").strip()
    if not (limit.isascii() and limit.isdigit() and len(limit) <= 6):
        raise UsageError(f"{where}: limit must be a whole number, got {limit[:40]!r}.")
    query = params.get("q", "")
    rows = await in_thread(lambda: store.find(query, int(limit)))
    return JSONResponse({"conversations": rows})


@endpoint
async def conversation(request: Request) -> Response:
    """GET: the conversation with its turns. PATCH `{"title"}`: renamed (the summary,
    as listed). DELETE: 204."""
    store, ident = store_of(request), ident_of(request)
    if request.method == "GET":
        return JSONResponse(await in_thread(lambda: store.get(ident)))
    if request.method == "DELETE":
        await in_thread(lambda: store.delete(ident))
        return Response(status_code=204)
    fields = await read_json(request)
    check_fields(fields, {"title"}, f"PATCH /v1/conversations/{ident}")
    if "title" not in fields:
        raise UsageError(f'PATCH /v1/conversations/{ident}: give the new title, {{"title": ...}}.')
    title = fields["title"]
    return JSONResponse(await in_thread(lambda: store.rename(ident, title)))


@endpoint
async def export(request: Request) -> Response:
    """The conversation as a Markdown file (`rag history export ID`)."""
    store, ident = store_of(request), ident_of(request)
    text = markdown(await in_thread(lambda: store.get(ident)))
    return Response(
        text,
        media_type="text/markdown; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="conversation-{ident}.md"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def check_model(warm: Warm, model: Any, where: str) -> None:
    if model is not None and model not in (warm.settings.model, warm.model_name):
        raise ModelMismatch(
            f"{where}: this server runs {warm.settings.model!r}, not {model!r}; leave out "
            "`model` or start another `rag serve --model`."
        )


@endpoint
async def ask(request: Request) -> Response:
    """One turn of a stored conversation, through the chat path: the stored turns are the
    history (the last few, trimmed by `rag.chat`'s rules), the follow-up is rewritten into
    a standalone search query, and the answer is stored as a turn once it is complete.
    The body is /v1/ask's (`question`, `stream`, `index`, `search`, `k`, ...); the reply
    is the `rag ask --json` object plus `search_query` and `turn_id`, or with
    `"stream": true` the events `query` {"search_query"}, `text` {"text"}, `answer` and
    `error` {"error"}.

    A client that leaves before the answer is complete stores nothing: its generation
    is cut short, and a cut-short answer is never written. A turn is written in one
    transaction, so a server killed meanwhile loses that turn only."""
    warm, store, ident = warm_of(request), store_of(request), ident_of(request)
    where = f"/v1/conversations/{ident}/ask"
    fields = await read_json(request)
    check_fields(fields, ASK_FIELDS, where)
    question = answering.check_question(fields.get("question"), warm.config.max_question_chars)
    check_model(warm, fields.get("model"), where)
    settings, specs = answering.request_plan(warm, fields, where)
    stream = flag(fields, "stream", where)
    from rag.chat import MAX_HISTORY_TURNS

    await in_thread(lambda: store.check_room(ident))  # 404, or full: before any work
    turns = await in_thread(lambda: store.recent_turns(ident, MAX_HISTORY_TURNS))
    history = history_messages(turns)
    # Open the sources now, so an unknown index is a status code, not an event.
    await in_thread(lambda: warm.retrievers(specs, settings))
    stop = threading.Event()

    def whole(answer: Answer) -> Answer:
        """`answer`, unless the client left while it was made (then it is cut short, and
        `Stopped` says so: nothing is stored)."""
        if stop.is_set():
            raise Stopped()
        return answer

    async def stored(answer: Answer, query: str) -> dict[str, Any]:
        """The turn written, as the reply has it."""
        data = answer.as_dict()
        _, turn = await in_thread(lambda: store.add_turn(ident, question, query, data))
        return {**data, "search_query": query, "turn_id": turn}

    if not stream:

        async def plain() -> dict[str, Any]:
            answer, query = await answering.chat_turn(
                warm, question, history, settings, specs, stop
            )
            return await stored(whole(answer), query)

        return JSONResponse(await run_watched(request, plain, stop))

    async def turn() -> AsyncIterator[tuple[str, Any]]:
        """`answering.chat_turn` in steps, so the search query is sent before the answer."""
        try:
            query, kept = await answering.rewrite(warm, question, history, settings, specs, stop)
            yield "query", query
            retrieved = await answering.retrieve(warm, query, settings, specs)
        except Exception as exc:  # noqa: BLE001 - reported as an event
            yield "error", exc
            return

        def work(generator: Any, on_text: Callable[[str], None]) -> Answer:
            return whole(answering.answer_now(
                generator, question, retrieved, settings, stop, on_text=on_text, history=kept
            ))  # fmt: skip

        finished = None
        async with contextlib.aclosing(answering.streamed(warm, stop, work)) as items:
            async for kind, value in items:
                if kind == "result":
                    finished = value  # stored once the model's turn is over, not in it
                else:
                    yield kind, value
        if finished is not None:
            try:
                yield "result", await stored(finished, query)
            except Exception as exc:  # noqa: BLE001 - reported as an event
                yield "error", exc

    async def events() -> AsyncIterator[bytes]:
        async with contextlib.aclosing(turn()) as items:
            async for kind, value in items:
                if kind == "query":
                    yield sse({"search_query": value}, "query")
                elif kind == "text":
                    yield sse({"text": value}, "text")
                elif kind == "result":
                    yield sse(value, "answer")
                elif not isinstance(value, Stopped):
                    yield sse(error_body(value), "error")

    return EventStream(events())
