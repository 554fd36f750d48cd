"""pocketrag's own endpoints: `POST /v1/ask`, `GET /v1/search`, `GET /v1/indexes`,
`GET /healthz`. Bodies are exactly what the CLI prints with `--json`."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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
from rag.serve.streaming import SSE_HEADERS, EventStream, run_watched, sse
from rag.serve.warm import Warm

Handler = Callable[[Request], Awaitable[Response]]
__all__ = ["SSE_HEADERS", "endpoint", "read_json", "warm_of"]  # what other routes import


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
        work = lambda: answering.ask(warm, question, settings, specs, stop)  # noqa: E731
        result = await run_watched(request, work, stop)
        return JSONResponse(result.as_dict())
    # Retrieve before the response starts, so a source that fails is a status code.
    retrieved = await run_watched(
        request, lambda: answering.retrieve(warm, question, settings, specs), stop
    )

    def work(generator: Any, on_text: Callable[[str], None]) -> Any:
        return answering.answer_now(generator, question, retrieved, settings, stop, on_text=on_text)

    async def events() -> AsyncIterator[bytes]:
        async with contextlib.aclosing(answering.streamed(warm, stop, work)) as items:
            async for kind, value in items:
                if kind == "text":
                    yield sse({"text": value}, "text")
                elif kind == "result":
                    yield sse(value.as_dict(), "answer")
                elif not isinstance(value, Stopped):
                    yield sse(error_body(value), "error")

    return EventStream(events())


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

    retrieved = await answering.retrieve(warm, query, settings, specs)
    found = await anyio.to_thread.run_sync(lambda: ranked(retrieved, settings))
    # The body is exactly `rag search --json`; its warnings (printed on stderr by the CLI)
    # ride in a header, as a JSON list in ASCII, bounded (`warnings_header`).
    headers = {WARNINGS_HEADER: warnings_header(found.warnings)} if found.warnings else None
    return JSONResponse(found.as_dict(), headers=headers)


#: Most characters of one warning in `X-Pocketrag-Warnings`, and most bytes of the header:
#: a client reads a header line of at most 64 KiB (http.client), a proxy often 8 KiB in all.
MAX_WARNING_CHARS = 500
MAX_WARNINGS_BYTES = 8 * 1024


def warnings_header(warnings: list[str]) -> str:
    """`warnings` as the header's JSON list (ASCII): each cut to `MAX_WARNING_CHARS`, and
    as many as fit in `MAX_WARNINGS_BYTES`, the last one then saying how many more there
    were (ten fetch warnings, each naming a 3.5 KB URL twice, used to make a 70 KB line
    that `rag search` through `RAG_SERVER` could not read)."""
    cut = [w if len(w) <= MAX_WARNING_CHARS else w[: MAX_WARNING_CHARS - 1] + "…" for w in warnings]
    kept = list(cut)
    while True:
        more = len(cut) - len(kept)
        shown = kept + ([f"… and {more} more warning{'s' if more > 1 else ''}."] if more else [])
        value = json.dumps(shown)
        if len(value) <= MAX_WARNINGS_BYTES or not kept:
            return value
        kept.pop()


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
            **({"watching": warm.watching} if warm.config.watch else {}),
        }
    )
