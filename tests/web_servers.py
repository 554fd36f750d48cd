"""Real HTTP servers on 127.0.0.1 for the web tests: a SearxNG look-alike and a page server.

Each route maps a path to a function of the request that returns
(status, headers, body). Requests are recorded so tests can check what was sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""  # a POST's body
    method: str = "GET"


@dataclass
class LocalServer:
    url: str
    routes: dict[str, Callable[[Request], Reply]]
    requests: list[Request] = field(default_factory=list)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def json_reply(payload: object, status: int = 200) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def html_reply(markup: str, status: int = 200) -> Reply:
    return status, {"Content-Type": "text/html; charset=utf-8"}, markup.encode("utf-8")


@contextmanager
def local_server(routes: dict[str, Callable[[Request], Reply]]) -> Iterator[LocalServer]:
    state = LocalServer(url="", routes=routes)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                path=parts.path,
                query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                headers=dict(self.headers.items()),
                body=self.rfile.read(length) if length else b"",
                method=self.command,
            )
            state.requests.append(request)
            route = state.routes.get(parts.path)
            if route is None:
                status, headers, body = 404, {"Content-Type": "text/plain"}, b"not found"
            else:
                status, headers, body = route(request)
            send_reply(self, (status, headers, body))

        do_POST = do_GET  # noqa: N815 - a route reads `request.method` and `request.body`

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    with serving(Handler) as url:
        state.url = url
        yield state


def send_reply(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    """Write `reply` (status, headers, body) with its length; a client that stopped
    reading (a size cap, a timeout) is what some tests are about, never an error."""
    status, headers, body = reply
    try:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def slow(reply: Reply, seconds: float) -> Callable[[Request], Reply]:
    def route(_: Request) -> Reply:
        time.sleep(seconds)
        return reply

    return route


def searxng_results(*items: tuple[str, str, str]) -> dict:
    """A SearxNG /search JSON body from (title, url, content) triples."""
    return {
        "query": "q",
        "number_of_results": len(items),
        "results": [
            {"title": t, "url": u, "content": c, "engine": "wikipedia", "score": 1.0}
            for t, u, c in items
        ],
        "answers": [],
        "unresponsive_engines": [],
    }
