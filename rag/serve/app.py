"""The Starlette application and the uvicorn server around it.

`Guard` runs before every endpoint, in this order: the request must name this server
(`Host`) and come from its own pages or from no page at all (`Origin`, `Sec-Fetch-Site`;
a link on another site may open only the page at `/`), so a hostile web page can neither
rebind a name to 127.0.0.1 nor post to it nor send the browser to an API route; then the
bearer token (when the server has one); then the body is read whole, bounded in size and
time (an upload's is streamed to disk by its endpoint instead, under its own cap and pace:
`rag.serve.uploads`); only then does the request count against the cap on requests in
flight. Endpoints are in `rag.serve.routes` (pocketrag's own) and `rag.serve.openai_compat`
(OpenAI's); the connections under them (deadlines, a cap, the open-file limit) in
`rag.serve.transport`.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import socket
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.core import plugins
from rag.core.config import Settings
from rag.core.errors import RagError, UsageError
from rag.serve import (
    conversation_routes,
    index_routes,
    openai_compat,
    page_routes,
    routes,
    session,
    uploads,
)
from rag.serve.config import ServeConfig
from rag.serve.errors import (
    ForbiddenHost,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServerBusy,
    Unauthorized,
    error_body,
    status_for,
)
from rag.serve.transport import (
    BACKLOG,
    KEEP_ALIVE_S,
    AcceptErrors,
    Connections,
    connection_limits,
    protocol_class,
    raise_fd_limit,
)
from rag.serve.warm import Warm

#: The port an origin without one has, by scheme.
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Paths a link on another site may open (a top-level navigation, `Sec-Fetch-Site:
#: cross-site`): the page, which holds no data. Every API route refuses one, as a link
#: to `/v1/search?q=...&fetch=10` would otherwise make this server search and fetch for
#: that site, and leave the results in the user's browser history.
NAVIGABLE = frozenset({"/"})


class Guard:
    """Refuses, in this order: a request that does not name this server or comes from
    another site's page (403), one without the right `Authorization: Bearer TOKEN` (401,
    when the server has a token), a body over the limit (413) or slower than the read
    deadline (408), and one past `max_in_flight` requests at once (503). A request counts
    as in flight once its body has arrived: clients that stall mid-body hold no slot.
    `/healthz` counts like any request, so that its 503 tells a monitor the server is full;
    idle or stalled connections never make it say so."""

    def __init__(self, app: ASGIApp, config: ServeConfig) -> None:
        self.app = app
        self.config = config
        self.token = config.token.encode()
        self.limit = config.max_in_flight
        self.in_flight = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        foreign = self._foreign(scope)
        if foreign is not None:
            await _refuse(scope, receive, send, foreign)
            return
        if self.token and not session.is_public(scope["path"]) and not self._authorized(scope):
            await _refuse(scope, receive, send, Unauthorized(
                "This server needs `Authorization: Bearer TOKEN` (the token `rag serve` was "
                "started with: --token or RAG_SERVE_TOKEN)."
            ))  # fmt: skip
            return
        try:
            if index_routes.is_upload(scope):  # streamed to disk by its endpoint, own cap
                limit, deadline = self.config.max_upload_bytes, self.config.read_timeout_s
                app_receive = uploads.bounded_receive(scope, receive, limit, deadline)
            else:
                body = await self._body(scope, receive)
                if body is None:  # the client left before sending it all
                    return
                app_receive = _replay(body, receive)
        except (PayloadTooLarge, RequestTimeout) as exc:
            await _refuse(scope, receive, send, exc)
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
            await self.app(scope, app_receive, send)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _foreign(self, scope: Scope) -> Exception | None:
        """Why a request is not this server's to answer, or None. A browser always says
        where a request comes from; curl, the SDKs and `rag`'s own client say nothing."""
        host = _header(scope, b"host")
        named = _split_host(host) if host is not None else None
        if host is not None and (named is None or not self.config.accepts_host(named[0])):
            return ForbiddenHost(
                f"This server does not answer to the host {host!r} (a web page may be "
                "trying to reach it through its own name). Use http://127.0.0.1:PORT, or "
                "start `rag serve` with --allowed-host NAME (or RAG_SERVE_ALLOWED_HOSTS) "
                "for a name a proxy or DNS gives it."
            )
        for origin in _headers(scope, b"origin"):
            if named is None or not _same_origin(origin, *named):
                return ForbiddenHost(
                    f"Requests from the web page at {origin!r} are refused: only this "
                    "server's own pages, and programs that are not browsers, may call it."
                )
        site = _header(scope, b"sec-fetch-site")
        navigating = _header(scope, b"sec-fetch-mode") == "navigate"
        if site in ("cross-site", "same-site") and not (
            navigating and scope["method"] in ("GET", "HEAD") and scope["path"] in NAVIGABLE
        ):
            return ForbiddenHost(
                f"Requests from another site's web page are refused (Sec-Fetch-Site: {site}); "
                "a link from another site opens only the page, at /."
            )
        return None

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, at most `max_body_bytes`, within the read deadline counted
        from the end of its head (whose own deadline is `head_deadline`'s); None when the
        client disconnects first."""
        limit = self.config.max_body_bytes
        declared = _header(scope, b"content-length") or ""
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The request body is {declared} bytes; the limit is {limit}.")
        body = bytearray()
        with anyio.move_on_after(self.config.read_timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body += message.get("body", b"")
                if len(body) > limit:
                    raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
                if not message.get("more_body", False):
                    return bytes(body)
        raise RequestTimeout(
            f"The request did not arrive within {self.config.read_timeout_s:g} s "
            f"({len(body)} bytes of its body came)."
        )

    def _authorized(self, scope: Scope) -> bool:
        if session.has_cookie(scope, self.config.token):  # the page's sign-in
            return True
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    given.strip(), self.token
                )
        return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app: the body already read, then the client's own messages (a
    disconnect, which stops the request's work)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Any:
        return pending.pop() if pending else await receive()

    return replayed


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers", []) if key == name]


def _header(scope: Scope, name: bytes) -> str | None:
    values = _headers(scope, name)
    return values[0] if values else None


def _split_host(value: str) -> tuple[str, int | None] | None:
    """A `Host` header as (host, port): `[::1]:8765` is ("::1", 8765); None when it is not
    host[:port]."""
    value = value.strip().lower()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        host, _, port = value.partition(":")
    if not host or (port and not (port.isascii() and port.isdigit())) or ":" in port:
        return None
    return host, int(port) if port else None


def _same_origin(origin: str, host: str, port: int | None) -> bool:
    """Whether `origin` (`scheme://host[:port]`; `null` never is) is the page of the very
    host and port the request was sent to. http and https both count: behind a TLS proxy
    this server cannot tell which one the page was loaded over."""
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        given = parts.port
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.username:
        return False
    default = DEFAULT_PORTS[scheme]
    return parts.hostname == host and (given or default) == (port or default)


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    response = JSONResponse(error_body(exc), status_code=status_for(exc))
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = "Bearer"
    if not isinstance(exc, ServerBusy):  # refused before its body was read: never read it
        response.headers["Connection"] = "close"
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
    mounted: list[Any] = []  # every route part: evals' GET /v1/runs, any plugin's
    for name in plugins.parts("route"):
        mounted += plugins.create("route", name, warm.settings, warm.config)
    app = Starlette(
        routes=[
            Route("/v1/ask", routes.ask, methods=["POST"]),
            Route("/v1/search", routes.search, methods=["GET"]),
            Route("/v1/indexes", routes.indexes, methods=["GET"]),
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/v1/models", openai_compat.models, methods=["GET"]),
            Route("/v1/chat/completions", openai_compat.chat_completions, methods=["POST"]),
            *page_routes.routes(),  # the research desk: /, /static/*, /v1/session
            *conversation_routes.routes(),  # the desk's /v1/conversations
            *index_routes.routes(),  # the desk's index management and /v1/jobs
            *mounted,
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.warm = warm
    return Guard(app, warm.config)


def build_server(
    config: ServeConfig,
    settings: Settings,
    *,
    warm_up: bool = True,
    loading: Callable[[], None] | None = None,
) -> Any:
    """A `uvicorn.Server` for `config`, listening once this returns. The address is bound
    first, so a port in use fails in a second with one line, before `loading` is called
    (to say so) and the model and indexes are loaded (`warm_up`), so that a configuration
    that cannot work fails at start, not at the first request."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn on the socket bound here, not one it binds after saying it serves;
        failed accepts said in one line now and then (`transport.AcceptErrors`)."""

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            asyncio.get_running_loop().set_exception_handler(accept_errors)
            await super().serve(sockets=sockets or [bound])

    config.check()
    cap, backlog = connection_limits(config, raise_fd_limit())
    connections = Connections(cap)
    accept_errors = AcceptErrors(connections)
    bound = bind(config)
    try:
        if loading is not None:
            loading()
        warm = Warm(config, settings)
        if warm_up:
            warm.warm_up()
        listen(bound, config, backlog)
    except BaseException:
        bound.close()
        raise
    server_config = uvicorn.Config(
        create_app(warm),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=KEEP_ALIVE_S,
        backlog=backlog,  # asyncio listens with it again, and tries as many accepts a turn
        http=protocol_class(config, connections),
    )
    server = Server(server_config)
    server.warm = warm  # type: ignore[attr-defined]
    return server


def bind(config: ServeConfig) -> socket.socket:
    """A socket bound to `config`'s host and port, not yet listening (a client meanwhile is
    refused, as before the server started, rather than left waiting for the model)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host.strip("[]"), config.port))
    except OSError as exc:
        sock.close()
        raise cannot_listen(config, exc) from None
    return sock


def listen(sock: socket.socket, config: ServeConfig, backlog: int = BACKLOG) -> None:
    try:
        sock.listen(backlog)
    except OSError as exc:  # another server bound the same port meanwhile
        sock.close()
        raise cannot_listen(config, exc) from None


def cannot_listen(config: ServeConfig, exc: OSError) -> RagError:
    """One line for a failed bind or listen: in use and no permission are exit 1, an
    address this machine does not have exit 2 (the --host to fix)."""
    where = f"port {config.port} on {config.host}"
    why = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return RagError(f"{where} is in use: {why}. Stop what listens there, or give --port.")
    if exc.errno == errno.EACCES:
        return RagError(f"{where} cannot be used: {why} (ports below 1024 need privileges).")
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return UsageError(
            f"Cannot listen on {where}: {why}; give --host an address of this machine."
        )
    return RagError(f"Cannot listen on {where}: {why}.")
