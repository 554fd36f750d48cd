"""pocketrag's own endpoints: `POST /v1/ask`, `GET /v1/search`, `GET /v1/indexes`,
`GET /healthz`. Bodies are exactly what the CLI prints with `--json`."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rag.core.errors import UsageError
from rag.question_options import SEARCH_OPTIONS
from rag.serve import answering
from rag.serve.client import WARNINGS_HEADER
from rag.serve.errors import (
    ModelMismatch,
    Stopped,
    UnsupportedMediaType,
    error_body,
    status_for,
)
from rag.serve.fields import ASK_FIELDS, check_fields, flag
from rag.serve.streaming import from_thread, run_watched, sse
from rag.serve.warm import Warm

Handler = Callable[[Request], Awaitable[Response]]
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def error_response(exc: BaseException) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=status_for(exc))


def endpoint(handler: Handler) -> Handler:
    """Any exception becomes the JSON error body with its status; never a traceback."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Stopped:  # the client left: nobody reads this
            return Response(status_code=499)
        except Exception as exc:  # noqa: BLE001 - reported as JSON
            return error_response(exc)

    return wrapped


def warm_of(request: Request) -> Warm:
    return request.app.state.warm


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object. 415 without `Content-Type: application/json` (a web page
    can post text/plain to any address without asking first; JSON it cannot); 400 when it
    is not JSON, is nested deeper than Python's parser goes, or holds text that is not
    Unicode (a lone surrogate, `"\\ud800"`, which no tokenizer or JSON output can encode).
    Its size and the time it takes to arrive are bounded before this (`app.Guard`)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType(
            f"The request body must be JSON, sent with `Content-Type: application/json` "
            f"(got {repr(media_type) if media_type else 'none'})."
        )
    body = await request.body()
    try:
        data = json.loads(body)
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise UsageError("The request body is JSON nested too deeply.") from None
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"The request body holds text that is not valid Unicode ({exc.reason}: "
            f"{exc.object[exc.start : exc.end]!r})."
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise UsageError("The request body must be a JSON object.")
    return data


@endpoint
async def ask(request: Request) -> Response:
    """`rag ask --json` as a request; `"stream": true` for server-sent events."""
    warm = warm_of(request)
    fields = await read_json(request)
    where = "/v1/ask"
    check_fields(fields, ASK_FIELDS, where)
    question = answering.check_question(fields.get("question"), warm.config.max_question_chars)
    model = fields.get("model")
    if model is not None and model not in (warm.settings.model, warm.model_name):
        raise ModelMismatch(
            f"{where}: this server runs {warm.settings.model!r}, not {model!r}; leave out "
            "`model` or start another `rag serve --model`."
        )
    settings, specs = answering.request_plan(warm, fields, where)
    stop = threading.Event()
    if not flag(fields, "stream", where):
        result = await run_watched(
            request,
            lambda: answering.ask_once(warm, question, settings, specs, stop),
            stop,
        )
        return JSONResponse(result.as_dict())
    # Retrieve before the response starts, so a source that fails is a status code.
    _, retrieved = await run_watched(
        request, lambda: answering.retrieve(warm, question, settings, specs), stop
    )

    def work(emit: Callable[[Any], None]) -> Any:
        on_text = lambda text: emit(("text", text))  # noqa: E731
        return answering.answer(warm, question, retrieved, settings, stop, on_text=on_text)

    async def events() -> AsyncIterator[bytes]:
        async for kind, value in from_thread(work, stop):
            if kind == "text":
                yield sse({"text": value}, "text")
            elif kind == "result":
                yield sse(value.as_dict(), "answer")
            elif not isinstance(value, Stopped):
                yield sse(error_body(value), "error")

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


#: Query parameters of `GET /v1/search` (the `rag search` options): `q`, `index`
#: (repeatable), `web`, and the settings that shape retrieval.
SEARCH_PARAMS = frozenset({"q", "index", "web", *SEARCH_OPTIONS})


@endpoint
async def search(request: Request) -> Response:
    """`rag search --json` as a request."""
    from rag.search import ranked

    warm = warm_of(request)
    where = "/v1/search"
    params = request.query_params
    check_fields(dict(params), SEARCH_PARAMS, where)
    repeated = [name for name in params if name != "index" and len(params.getlist(name)) > 1]
    if repeated:
        raise UsageError(f"{where}: {repeated[0]} is given more than once.")
    fields: dict[str, Any] = {name: params[name] for name in params if name != "index"}
    if "index" in params:  # `index=` (empty): no index, not the server's --index
        fields["index"] = [name for name in params.getlist("index") if name != ""]
    if "web" in fields:
        fields["search"] = fields.pop("web")
    query = answering.check_question(fields.pop("q", None), warm.config.max_question_chars, "query")
    settings, specs = answering.request_plan(warm, fields, where)
    if not specs:
        raise UsageError(f"{where}: say where to search: index=NAME (repeatable) and/or web=true.")

    def work() -> Any:
        return ranked(answering.retrieve(warm, query, settings, specs)[1], settings)

    found = await anyio.to_thread.run_sync(work)
    # The body is exactly `rag search --json`; its warnings (printed on stderr by the CLI)
    # ride in a header, as a JSON list in ASCII.
    headers = {WARNINGS_HEADER: json.dumps(found.warnings)} if found.warnings else None
    return JSONResponse(found.as_dict(), headers=headers)


@endpoint
async def indexes(request: Request) -> Response:
    """`rag indexes list --json`; with `rag serve --index`, only the indexes served."""
    from indexers import stores

    warm = warm_of(request)

    def work() -> list[dict[str, Any]]:
        rows = [stores.summary(index) for index in stores.list_indexes(warm.settings)]
        served = set(warm.config.indexes)
        return [row for row in rows if not served or row["name"] in served]

    return JSONResponse({"indexes": await anyio.to_thread.run_sync(work)})


@endpoint
async def healthz(request: Request) -> Response:
    warm = warm_of(request)
    return JSONResponse(
        {
            "ok": True,
            "model": warm.model_name,
            "indexes": list(warm.config.indexes),
            "search": warm.config.search,
            "waiting": warm.queue.waiting,
        }
    )
