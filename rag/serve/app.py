"""The Starlette application and the uvicorn server around it.

`Guard` runs before every endpoint: the bearer token (when the server has one) and the
cap on requests in flight. Endpoints are in `rag.serve.routes` (pocketrag's own) and
`rag.serve.openai_compat` (OpenAI's format).
"""

from __future__ import annotations

import hmac
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.config import Settings
from rag.serve import openai_compat, routes
from rag.serve.config import ServeConfig
from rag.serve.errors import (
    MethodNotAllowed,
    NotFound,
    ServerBusy,
    Unauthorized,
    error_body,
    status_for,
)
from rag.serve.warm import Warm


class Guard:
    """Refuses a request without the right `Authorization: Bearer TOKEN` (401, when the
    server has a token) and one past `max_in_flight` requests at once (503)."""

    def __init__(self, app: ASGIApp, config: ServeConfig) -> None:
        self.app = app
        self.token = config.token.encode()
        self.limit = config.max_in_flight
        self.in_flight = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token and not self._authorized(scope):
            await _refuse(scope, receive, send, Unauthorized(
                "This server needs `Authorization: Bearer TOKEN` (the token `rag serve` was "
                "started with: --token or RAG_SERVE_TOKEN)."
            ))  # fmt: skip
            return
        with self._lock:
            full = self.in_flight >= self.limit
            if not full:
                self.in_flight += 1
        if full:
            await _refuse(scope, receive, send, ServerBusy(
                f"The server is handling {self.limit} requests already; try again shortly."
            ))  # fmt: skip
            return
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    given.strip(), self.token
                )
        return False


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    response = JSONResponse(error_body(exc), status_code=status_for(exc))
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = "Bearer"
    await response(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    code = getattr(exc, "status_code", 500)
    path = request.url.path
    error: Exception = (
        NotFound(f"No endpoint {path}; see the README's `rag serve` section.")
        if code == 404
        else MethodNotAllowed(f"{request.method} is not allowed on {path}.")
        if code == 405
        else RuntimeError(getattr(exc, "detail", "HTTP error"))
    )
    return JSONResponse(error_body(error), status_code=code)


def create_app(warm: Warm) -> Any:
    """The ASGI application serving `warm` (the Guard around the Starlette app)."""
    app = Starlette(
        routes=[
            Route("/v1/ask", routes.ask, methods=["POST"]),
            Route("/v1/search", routes.search, methods=["GET"]),
            Route("/v1/indexes", routes.indexes, methods=["GET"]),
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/v1/models", openai_compat.models, methods=["GET"]),
            Route("/v1/chat/completions", openai_compat.chat_completions, methods=["POST"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.warm = warm
    return Guard(app, warm.config)


def build_server(config: ServeConfig, settings: Settings, *, warm_up: bool = True) -> Any:
    """A `uvicorn.Server` for `config`, its model and indexes loaded first (`warm_up`), so
    a configuration that cannot work fails at start, not at the first request."""
    import uvicorn

    config.check()
    warm = Warm(config, settings)
    if warm_up:
        warm.warm_up()
    server_config = uvicorn.Config(
        create_app(warm),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(server_config)
    server.warm = warm  # type: ignore[attr-defined]
    return server
