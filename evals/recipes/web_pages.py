"""The offline web's server: SearxNG's JSON API and article pages with real sites' chrome.

Why the chrome: `--fetch` is only as good as the main-text extraction on pages as sites
send them, so each page has what extraction must drop (navigation, a cookie banner,
related links, a newsletter footer, inline scripts) and what it must keep joined (a
sentence split across links, bold words and spans). Why failing pages: on the real web
some result pages cannot be read, and that must cost the snippet, not the answer: a page
in FAIL_EVERY is a 404, slower than the fetch budget, a PDF, or bigger than the fetch
cap (its article after megabytes of inline data), chosen by a hash of its title.

`serve_web(index)` runs the server on 127.0.0.1 in a thread and yields its base URL.
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from urllib.parse import parse_qs, unquote, urlsplit

from evals.recipes.local_web import Page, SearchIndex, slug_for

#: One page in this many fails, and how (by hash: the same page fails the same way).
FAIL_EVERY = 40
FAILURES = ("missing", "slow", "pdf", "huge")
#: Seconds a slow page waits before answering: beyond the fetch budget (rag.web.fetch).
SLOW_S = 12.0
#: Bytes of inline data before a huge page's article: more than the fetch cap reads.
HUGE_BYTES = 2_500_000
#: What the chrome says: tests check none of it reaches the evidence.
CHROME_PHRASES = (
    "We use cookies to improve your experience",
    "Subscribe to our newsletter",
    "Related articles",
    "All rights reserved",
    "window.dataLayer",
    "Skip to main content",
)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def failure_of(page: Page) -> str:
    """How `page` fails ("" for most pages): one of FAILURES for one in FAIL_EVERY."""
    value = _digest(page.title)
    if value % FAIL_EVERY:
        return ""
    return FAILURES[(value // FAIL_EVERY) % len(FAILURES)]


def delay_of(page: Page, low: float, high: float) -> float:
    """A per-page delay in [low, high), the same for a page on every request."""
    if high <= low:
        return low
    return low + (high - low) * ((_digest("delay " + page.title) % 1000) / 1000)


def _split_sentence(text: str, n: int) -> str:
    """`text` escaped, with some words in links, bold or spans, as article markup has it:
    the words must come out joined, with their spaces."""
    words = [html.escape(w) for w in text.split(" ")]
    out = []
    for i, word in enumerate(words):
        kind = (i + n) % 11
        if kind == 3 and len(word) > 3:
            out.append(f'<a href="/wiki/{word}" title="{word}">{word}</a>')
        elif kind == 7:
            out.append(f"<b>{word}</b>")
        elif kind == 9:
            out.append(f'<span class="w">{word}</span>')
        else:
            out.append(word)
    half = len(out) // 2
    return f"<span>{' '.join(out[:half])} </span><span>{' '.join(out[half:])}</span>"


def render_page(page: Page, related: list[Page]) -> str:
    """The article as a site sends it: head scripts, nav, cookie banner, the article (its
    paragraphs split across tags), related links, footer."""
    title = html.escape(page.title)
    body = "\n".join(
        f"<p>{_split_sentence(p, n)}</p>" + ("\n<h2>History</h2>" if n == 0 else "")
        for n, p in enumerate(page.paragraphs)
    )
    links = "\n".join(
        f'<li><a href="/wiki/{r.slug}">{html.escape(r.title)}</a></li>' for r in related
    )
    nav = " ".join(
        f'<a href="/{w.lower()}">{w}</a>'
        for w in ("Home", "News", "Sport", "Weather", "Culture", "Travel", "Login", "Donate")
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Encyclopedia Online</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}
gtag('js', new Date()); gtag('config', 'G-XXXX'); var consent = "We use cookies";</script>
<style>.cookie{{position:fixed;bottom:0}} nav a{{margin:0 4px}}</style></head>
<body>
<a class="skip" href="#content">Skip to main content</a>
<header><nav class="top">{nav}</nav>
<form action="/search"><input name="q" placeholder="Search the encyclopedia"></form></header>
<div class="cookie" id="cookie-banner"><p>We use cookies to improve your experience and
to show you personalised ads. By clicking Accept all you agree to our use of cookies.</p>
<button>Accept all</button> <button>Manage preferences</button></div>
<main id="content"><article>
<h1>{title}</h1>
<div class="byline">From Encyclopedia Online, the free encyclopedia</div>
{body}
</article>
<aside class="related"><h3>Related articles</h3><ul>{links}</ul></aside></main>
<script>document.getElementById('cookie-banner').onclick = function () {{
  this.style.display = 'none'; window.dataLayer.push({{event: 'consent'}}); }};</script>
<footer><div class="newsletter">Subscribe to our newsletter for the best of the
encyclopedia every week. <a href="/newsletter">Sign up</a></div>
<p>&copy; 2024 Encyclopedia Online. All rights reserved. <a href="/privacy">Privacy</a>
<a href="/terms">Terms of use</a> <a href="/contact">Contact us</a></p></footer>
</body></html>"""


@dataclass
class WebState:
    index: SearchIndex
    by_slug: dict[str, Page]
    delay: tuple[float, float] = (0.0, 0.0)
    results: int = 10
    searches: int = 0
    page_requests: int = 0


def _reply(handler: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # a client that gave up (the fetch budget, the size cap) is what slow pages test


def _search(state: WebState, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
    if query.get("format") != "json":
        _reply(handler, 403, "text/html", b"<h1>403 Forbidden</h1>")
        return
    state.searches += 1
    base = f"http://{handler.headers.get('Host') or '127.0.0.1'}"
    found = state.index.search(query.get("q", ""), state.results)
    payload = {
        "query": query.get("q", ""),
        "number_of_results": len(found),
        "results": [
            {
                "title": page.title,
                "url": f"{base}/wiki/{page.slug}",
                "content": snippet,
                "engine": "localwiki",
                "score": round(1.0 / rank, 4),
            }
            for rank, (page, snippet) in enumerate(found, start=1)
        ],
        "answers": [],
        "unresponsive_engines": [],
    }
    _reply(handler, 200, "application/json", json.dumps(payload).encode())


def _page(state: WebState, handler: BaseHTTPRequestHandler, slug: str) -> None:
    state.page_requests += 1
    page = state.by_slug.get(slug)
    failure = failure_of(page) if page else "missing"
    if page is not None:
        time.sleep(delay_of(page, *state.delay))
    if failure == "missing":
        _reply(handler, 404, "text/html", b"<h1>Not found</h1><p>No such article.</p>")
        return
    assert page is not None
    if failure == "slow":
        time.sleep(SLOW_S)
    if failure == "pdf":
        _reply(handler, 200, "application/pdf", b"%PDF-1.4\n" + page.text.encode()[:2000])
        return
    pages = state.index.pages
    start = _digest(page.title) % max(1, len(pages))
    related = [pages[(start + i * 7919) % len(pages)] for i in range(1, 6)]
    markup = render_page(page, related)
    if failure == "huge":
        blob = '<script>window.__DATA__ = "' + "x" * HUGE_BYTES + '";</script>'
        markup = markup.replace("</head>", blob + "</head>", 1)
    _reply(handler, 200, "text/html; charset=utf-8", markup.encode("utf-8"))


class _QuietServer(ThreadingHTTPServer):
    """A client that hung up (the fetch budget shuts its sockets) is no error to print."""

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_web(
    index: SearchIndex, *, delay: tuple[float, float] = (0.0, 0.0), port: int = 0
) -> Iterator[tuple[str, WebState]]:
    """The offline web on 127.0.0.1 (`port`, 0: a free one) in a thread: yields its base
    URL and its state (request counts). `delay`: each page waits a seconds in that range."""
    state = WebState(index, {p.slug: p for p in index.pages}, delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            parts = urlsplit(self.path)
            if parts.path == "/search":
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                _search(state, self, query)
            elif parts.path.startswith("/wiki/"):
                slug = unquote(parts.path[len("/wiki/") :])
                _page(state, self, slug_for(slug))  # stored quoted
            else:
                _reply(self, 404, "text/plain", b"not found")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = _QuietServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
