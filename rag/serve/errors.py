"""Errors as HTTP answers: one JSON shape, `{"error": {"message", "type", "exit_code"}}`, and
a status code that says what the CLI's exit code says (2: the request is wrong, 1: the
server or something behind it failed). Never a traceback in a body."""

from __future__ import annotations

from typing import Any

from rag.core.errors import (
    GenerationError,
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
    ModelUnavailable,
    RagError,
    SearchUnavailable,
    StorageError,
    StoreUnavailable,
    UsageError,
)


class Unauthorized(UsageError):
    """No `Authorization: Bearer TOKEN`, or the wrong token."""

    status = 401


class Forbidden(UsageError):
    """An index outside the ones the server was started with (`rag serve --index`)."""

    status = 403


class SearchNotServed(UsageError):
    """A request for web search (`"search": true`, `web=true`) on a server started without
    `--search`: it serves its indexes, and any caller would otherwise make it send queries
    (and fetch pages) to the web."""

    status = 403


class ForbiddenHost(UsageError):
    """A `Host` that is not this server's (DNS rebinding: a web page's name pointed at
    127.0.0.1), or an `Origin` that is not its own (another site's page calling it)."""

    status = 403


class ModelMismatch(UsageError):
    """A request names a model other than the one this server runs (`rag ask --model` sent
    to a server started with another: the CLI then answers in its own process)."""


class NotFound(UsageError):
    """No such endpoint."""

    status = 404


class MethodNotAllowed(UsageError):
    status = 405


class PayloadTooLarge(UsageError):
    """A request body over the server's limit."""

    status = 413


class RequestTimeout(UsageError):
    """The request's body did not arrive within the server's read deadline."""

    status = 408


class UnsupportedMediaType(UsageError):
    """A JSON endpoint's body sent without `Content-Type: application/json`."""

    status = 415


class ServerBusy(RagError):
    """More requests in flight than the server takes at once: try again shortly."""

    status = 503


class Stopped(Exception):  # noqa: N818 - a signal between threads, never shown
    """The client went away: stop working on its request."""


#: Status codes by error class, most specific first (checked with isinstance, in order).
STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (IndexNotFound, 404),
    (UsageError, 400),
    (IndexBusy, 409),
    (SearchUnavailable, 502),
    (GenerationError, 502),
    (ModelUnavailable, 503),
    (StoreUnavailable, 503),
    (IndexCorrupt, 503),
    (StorageError, 503),
    (RagError, 503),
)


def status_for(exc: BaseException) -> int:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    for kind, code in STATUSES:
        if isinstance(exc, kind):
            return code
    return 500


def one_line(text: str, limit: int = 2000) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON body for `exc`. An unexpected exception says only its class and message."""
    if isinstance(exc, RagError):
        message, exit_code = one_line(str(exc)), exc.exit_code
    else:
        message = one_line(f"Internal error ({type(exc).__name__}): {exc}")
        exit_code = 1
    return {"error": {"message": message, "type": type(exc).__name__, "exit_code": exit_code}}
