"""The internet as ddgs sees it, served on 127.0.0.1: ddgs's real client code (DDGS, its
backends' payloads and parsers, its ranking, its primp HTTP client) with only the address
changed. `install(base)` makes every backend's HTTP client send `https://HOST/PATH?Q` to
`BASE/HOST/PATH?Q` instead, so one local server plays DuckDuckGo, Wikipedia, Brave, ...:
a request ddgs would send anywhere else is refused before it is made, so nothing leaves
the machine and no name is resolved (primp is Rust: the Python network guard cannot see
it, this does).

`FakeInternet` is that server: `hosts` maps a host name to a function of the request that
returns (status, headers, body); a host without one answers 404 (a backend ddgs drops).
The recorded shapes (`duckduckgo_html`, `wikipedia_*`, `grokipedia_json`) are what those
services return, cut down to the fields ddgs reads.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from web_servers import Reply, send_reply, serving

_BASE: dict[str, str] = {}


@dataclass
class Hit:
    """One request the fake internet answered: the host ddgs meant, and what it sent."""

    host: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    method: str


@dataclass
class FakeInternet:
    url: str
    hosts: dict[str, Callable[[Hit], Reply]]
    hits: list[Hit] = field(default_factory=list)

    def hosts_asked(self) -> list[str]:
        return [hit.host for hit in self.hits]


_CLASS: list[type] = []


def loopback_client() -> type:
    """ddgs's HttpClient, sending to the fake internet (made on first use: imports ddgs)."""
    if _CLASS:
        return _CLASS[0]
    from ddgs.exceptions import DDGSException
    from ddgs.http_client import HttpClient

    class LoopbackHttpClient(HttpClient):
        def __init__(self, proxy: str | None = None, timeout: int | None = 10, **kw: Any):
            super().__init__(proxy=None, timeout=timeout, **kw)  # never a proxy

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            base = _BASE.get("url")
            parts = urlsplit(url)
            if not base or parts.scheme not in {"http", "https"} or not parts.hostname:
                raise DDGSException(f"refused by the test: {url!r} is not for the fake internet")
            target = f"{base}/{parts.hostname}{parts.path or '/'}"
            if parts.query:
                target += "?" + parts.query
            return super().request(method, target, *args, **kwargs)

    _CLASS.append(LoopbackHttpClient)
    return LoopbackHttpClient


def install(base_url: str) -> None:
    """Point ddgs at the fake internet at `base_url` (for this process, from now on)."""
    import ddgs.base

    _BASE["url"] = base_url.rstrip("/")
    ddgs.base.HttpClient = loopback_client()  # what every backend's __init__ builds


def use(monkeypatch: Any, base_url: str) -> None:
    """`install`, for one test (monkeypatch puts ddgs back afterwards)."""
    monkeypatch.setattr("ddgs.base.HttpClient", loopback_client())
    monkeypatch.setitem(_BASE, "url", base_url.rstrip("/"))


@contextmanager
def fake_internet(hosts: dict[str, Callable[[Hit], Reply]]) -> Iterator[FakeInternet]:
    state = FakeInternet(url="", hosts=hosts)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            parts = urlsplit(self.path)
            host, _, rest = parts.path.lstrip("/").partition("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            hit = Hit(
                host=host,
                path="/" + rest,
                query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                form={k: v[-1] for k, v in parse_qs(body).items()},
                method=self.command,
            )
            state.hits.append(hit)
            route = state.hosts.get(host)
            status, headers, payload = route(hit) if route else (404, {}, b"no such host here")
            send_reply(self, (status, headers, payload))

        do_POST = do_GET  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    with serving(Handler) as url:
        state.url = url
        yield state


def status(code: int, text: str = "") -> Callable[[Hit], Reply]:
    """A host that refuses: DuckDuckGo's rate limit is `status(202)`."""
    return lambda hit: (code, {"Content-Type": "text/html"}, text.encode())


def slow(seconds: float, then: Callable[[Hit], Reply]) -> Callable[[Hit], Reply]:
    def route(hit: Hit) -> Reply:
        time.sleep(seconds)
        return then(hit)

    return route


def duckduckgo_html(results: list[tuple[str, str, str]]) -> Callable[[Hit], Reply]:
    """html.duckduckgo.com/html/ answering (title, url, snippet) results, as its page
    lays them out (a `result__body` div holding the title's h2 and the snippet's link)."""

    def route(hit: Hit) -> Reply:
        items = "".join(
            '<div class="result results_links results_links_deep web-result">'
            '<div class="links_main links_deep result__body">'
            f'<h2 class="result__title"><a class="result__a" href="{html.escape(url)}">'
            f"{html.escape(title)}</a></h2>"
            f'<a class="result__snippet" href="{html.escape(url)}">{html.escape(snippet)}</a>'
            "</div></div>"
            for title, url, snippet in results
        )
        page = f"<html><body><div id='links' class='results'>{items}</div></body></html>"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode()

    return route


def wikipedia(title: str, extract: str) -> Callable[[Hit], Reply]:
    """LANG.wikipedia.org/w/api.php: the opensearch answer, then the page's extract."""

    def route(hit: Hit) -> Reply:
        if hit.query.get("action") == "opensearch":
            url = f"https://{hit.host}/wiki/{quote(title.replace(' ', '_'))}"
            payload: Any = [hit.query.get("search", ""), [title], [""], [url]]
        else:
            payload = {"query": {"pages": {"1": {"title": title, "extract": extract}}}}
        return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    return route


def grokipedia_json(title: str, slug: str, snippet: str) -> Callable[[Hit], Reply]:
    def route(hit: Hit) -> Reply:
        payload = {"results": [{"title": title, "slug": slug, "snippet": f"{title}\n\n{snippet}"}]}
        return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    return route


#: The child of `run_rag_with_fake_internet`: ddgs pointed at $DDGS_FAKE_INTERNET, a fake
#: model `fake:` registered, then `rag` with the given arguments.
CHILD = """
import os, sys
sys.path.insert(0, sys.argv[1])
import ddgs_loopback
ddgs_loopback.install(os.environ["DDGS_FAKE_INTERNET"])
from conftest import FakeGenerator
from rag.core import plugins

generator = FakeGenerator()
plugins.register(plugins.Part("generator", "fake", lambda *a, **k: generator, argument="ANY"))
from rag.cli.app import main

sys.argv = ["rag", *sys.argv[2:]]
main()
"""


def rag(internet: str, *argv: str, timeout: float = 120.0, **env: str) -> Any:
    """`rag ARGV` in a fresh process whose ddgs talks to the fake internet at `internet`
    (a `subprocess.CompletedProcess`); a child still running after `timeout` fails."""
    import subprocess
    import sys

    import pytest
    from index_fixtures import HERE, child_env

    try:
        return subprocess.run(
            [sys.executable, "-c", CHILD, str(HERE), *argv],
            env=child_env(DDGS_FAKE_INTERNET=internet, **env),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`rag {' '.join(argv)}` hung for {timeout}s")
