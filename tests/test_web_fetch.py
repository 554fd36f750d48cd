"""Page fetching: address rules, size and time limits, and main-text extraction,
against a real HTTP server on 127.0.0.1 (allowed explicitly, as loopback is refused by default)."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import ssl
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import trustme
from hostile_pages import RawServer, Reply, drips, html, raw_server, redirect, sends, slow_redirects
from web_servers import html_reply, local_server, slow

from rag.web.fetch import (
    FetchedPage,
    FetchError,
    check_url,
    fetch_page,
    fetch_pages,
    select_relevant,
)

ARTICLE = """<!doctype html><html><head><title>Emma (novel)</title>
<script>var tracking = "SCRIPT-SECRET";</script><style>.x { color: red }</style></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article><h1>Emma (novel)</h1>
<p>Emma is a novel written by the English author Jane Austen. It was first published in
December 1815, and it is set in the fictional country village of Highbury.</p>
<p>The story follows Emma Woodhouse, a young woman who overestimates her matchmaking
abilities and misreads the romantic lives of the people around her.</p>
</article><footer>Copyright footer text</footer></body></html>"""


def public(host_ip: str = "93.184.216.34"):
    """A resolver that says every host is the given (public) address."""

    def resolve(host: str, port: int, **kwargs: object) -> list[tuple]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host_ip, port))]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/admin",
        "http://localhost:8080/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ],
)
def test_loopback_private_and_link_local_are_refused(url: str) -> None:
    with pytest.raises(FetchError, match="non-public address"):
        check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x/", "http:///nohost"]
)
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(FetchError, match="only http and https|no host"):
        check_url(url, allow_private=True)


def test_public_addresses_pass_and_private_can_be_allowed() -> None:
    check_url("https://en.wikipedia.org/wiki/Emma", allow_private=False, resolver=public())
    check_url("http://127.0.0.1:8080/", allow_private=True)
    with pytest.raises(FetchError):
        check_url("https://sneaky.example/", allow_private=False, resolver=public("10.1.2.3"))


def test_refused_before_any_request_is_sent() -> None:
    with (
        local_server({"/": lambda r: html_reply(ARTICLE)}) as server,
        pytest.raises(FetchError, match="RAG_ALLOW_PRIVATE_FETCH"),
    ):
        fetch_page(server.url + "/")
    assert server.requests == []


def test_main_text_is_extracted_without_scripts_or_menus() -> None:
    with local_server({"/emma": lambda r: html_reply(ARTICLE)}) as server:
        page = fetch_page(server.url + "/emma", allow_private=True)
    assert page.title == "Emma (novel)"
    assert "first published in" in page.text and "Jane Austen" in page.text
    assert "SCRIPT-SECRET" not in page.text
    assert "color: red" not in page.text
    assert "<p>" not in page.text


def test_size_cap_stops_reading() -> None:
    huge = "<html><body>" + "<p>" + "word " * 400_000 + "</p></body></html>"  # ~2 MB
    with local_server({"/big": lambda r: html_reply(huge)}) as server:
        page = fetch_page(server.url + "/big", allow_private=True, max_bytes=20_000)
    assert 0 < len(page.text) <= 20_000


def test_timeout() -> None:
    with (
        local_server({"/slow": slow(html_reply(ARTICLE), 2.0)}) as server,
        pytest.raises(FetchError, match="did not answer within 0.3s"),
    ):
        fetch_page(server.url + "/slow", allow_private=True, timeout_s=0.3)


def test_non_html_and_http_errors_are_refused() -> None:
    routes = {
        "/file.pdf": lambda r: (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4"),
        "/gone": lambda r: html_reply("gone", status=404),
        "/plain": lambda r: (200, {"Content-Type": "text/plain"}, b"Plain facts about Emma."),
    }
    with local_server(routes) as server, pytest.raises(FetchError, match="application/pdf"):
        fetch_page(server.url + "/file.pdf", allow_private=True)
        with pytest.raises(FetchError, match="HTTP 404"):
            fetch_page(server.url + "/gone", allow_private=True)
        assert (
            fetch_page(server.url + "/plain", allow_private=True).text == "Plain facts about Emma."
        )


def test_redirects_are_followed_and_each_hop_checked() -> None:
    routes = {
        "/old": lambda r: (301, {"Location": "/emma"}, b""),
        "/emma": lambda r: html_reply(ARTICLE),
    }
    with local_server(routes) as server:
        page = fetch_page(server.url + "/old", allow_private=True)
    assert page.url.endswith("/emma") and "Jane Austen" in page.text

    # A public page that redirects to the metadata address is refused at the second hop.
    def transport(request: httpx.Request) -> httpx.Response:
        assert request.headers["host"] == "public.example", (
            "the private hop must never be requested"
        )
        assert request.url.host == "93.184.216.34"  # the address the check saw
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    resolver_calls: list[str] = []

    def resolver(host: str, port: int, **kwargs: object) -> list[tuple]:
        resolver_calls.append(host)
        return socket.getaddrinfo(host, port) if host != "public.example" else public()(host, port)

    with (
        httpx.Client(transport=httpx.MockTransport(transport)) as client,
        pytest.raises(FetchError, match="169.254.169.254"),
    ):
        fetch_page("http://public.example/", client=client, resolver=resolver)
    assert resolver_calls == ["public.example", "169.254.169.254"]


def test_fetch_pages_keeps_order_and_reports_failures() -> None:
    routes = {"/emma": lambda r: html_reply(ARTICLE)}
    with local_server(routes) as server:
        outcomes = fetch_pages(
            [server.url + "/emma", server.url + "/missing", "ftp://x/"], allow_private=True
        )
    assert "Jane Austen" in outcomes[0].text
    assert isinstance(outcomes[1], FetchError) and "404" in str(outcomes[1])
    assert isinstance(outcomes[2], FetchError)


def test_select_relevant_prefers_paragraphs_about_the_query() -> None:
    filler = "\n\n".join(f"Paragraph {i} is about gardening and weather." for i in range(200))
    text = filler + "\n\nThe novel Emma was written by Jane Austen in 1815.\n\n" + filler
    picked = select_relevant(text, "who wrote the novel Emma", max_chars=300)
    assert "written by Jane Austen" in picked
    assert len(picked) <= 300
    assert select_relevant("short", "q") == "short"


class RebindingDns:
    """The system resolver as a DNS-rebinding host runs it: each question for a name gets
    the next answer (the last one repeats), so the check and a second lookup disagree. An
    answer is an address or a tuple of them; an address literal answers itself."""

    def __init__(self, *answers: str | tuple[str, ...]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: object, port: object, *args: object, **kwargs: object) -> list:
        text = str(host).strip("[]")
        try:
            addresses: tuple[str, ...] = (str(ipaddress.ip_address(text)),)
        except ValueError:
            self.asked.append(text)
            answer = self.answers[min(len(self.asked), len(self.answers)) - 1]
            addresses = answer if isinstance(answer, tuple) else (answer,)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]


def fake_internet(
    monkeypatch: pytest.MonkeyPatch, dns: RebindingDns, hosts: dict[str, int]
) -> list[str]:
    """Make `dns` the system resolver and route the HTTP client's connections: a public
    address in `hosts` reaches that port on 127.0.0.1 (the public server it stands for),
    loopback is itself, and any other address refuses. Nothing leaves the machine. Returns
    the addresses connected to, in order."""
    real_connect = socket.create_connection
    connected: list[str] = []

    def create_connection(address: tuple, timeout: object = None, **kwargs: object):
        host, port = address[0], address[1]
        for *_, sockaddr in dns(host, port):  # as the real one resolves a name
            ip = sockaddr[0]
            connected.append(ip)
            if ip in hosts:
                return real_connect(("127.0.0.1", hosts[ip]), timeout)
            if ipaddress.ip_address(ip).is_loopback:
                return real_connect((ip, port), timeout)
        raise ConnectionRefusedError(f"nothing listens at {host} in this test")

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return connected


def test_a_rebinding_host_cannot_switch_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check sees a public address; a second lookup would say 127.0.0.1, where a
    private page waits. The request goes to the checked address (which refuses here)."""
    secret = "<html><body><p>Loopback admin page: the private secret.</p></body></html>"
    with local_server({"/": lambda r: html_reply(secret)}) as server:
        port = int(server.url.rsplit(":", 1)[1])
        dns = RebindingDns("93.184.216.34", "127.0.0.1")
        connected = fake_internet(monkeypatch, dns, hosts={})
        try:
            outcome: object = fetch_page(f"http://rebind.example:{port}/", resolver=dns)
        except FetchError as exc:
            outcome = exc
    assert server.requests == [], f"the loopback page was fetched: {outcome}"
    assert isinstance(outcome, FetchError) and "cannot fetch" in str(outcome)
    assert dns.asked == ["rebind.example"] and connected == ["93.184.216.34"]


def test_every_redirect_hop_connects_to_the_address_its_check_saw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port_box: list[int] = []
    routes = {
        "/old": lambda r: (301, {"Location": f"http://other.example:{port_box[0]}/emma"}, b""),
        "/emma": lambda r: html_reply(ARTICLE),
    }
    with local_server(routes) as server:
        port_box.append(int(server.url.rsplit(":", 1)[1]))
        port = port_box[0]
        dns = RebindingDns("93.184.216.34", "93.184.216.35", "127.0.0.1")
        connected = fake_internet(
            monkeypatch, dns, hosts={"93.184.216.34": port, "93.184.216.35": port}
        )
        page = fetch_page(f"http://public.example:{port}/old", resolver=dns)
    assert page.url.endswith("/emma") and "Jane Austen" in page.text
    assert dns.asked == ["public.example", "other.example"]  # one question per hop
    assert connected == ["93.184.216.34", "93.184.216.35"]
    hosts = [(r.path, r.headers["Host"]) for r in server.requests]
    assert hosts == [("/old", f"public.example:{port}"), ("/emma", f"other.example:{port}")]


def test_the_next_checked_address_is_tried_when_one_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host with an IPv6 address first, on a network that only reaches IPv4."""
    with local_server({"/emma": lambda r: html_reply(ARTICLE)}) as server:
        port = int(server.url.rsplit(":", 1)[1])
        dns = RebindingDns(("2606:4700::1111", "93.184.216.34"), "127.0.0.1")
        connected = fake_internet(monkeypatch, dns, hosts={"93.184.216.34": port})
        page = fetch_page(f"http://dual.example:{port}/emma", resolver=dns)
    assert "Jane Austen" in page.text
    assert connected == ["2606:4700::1111", "93.184.216.34"] and dns.asked == ["dual.example"]


@contextmanager
def tls_server(cert: trustme.LeafCert) -> Iterator[tuple[int, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 presenting `cert`; yields its port and the SNI names
    clients sent."""
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context.sni_callback = lambda sock, name, ctx: names.append(name)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = ARTICLE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server.server_address[1], names
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("cert_for", ["secure.example", "someone-else.example"])
def test_https_to_the_checked_address_still_verifies_the_name(
    monkeypatch: pytest.MonkeyPatch, cert_for: str
) -> None:
    """The URL names the address, but SNI and the certificate check use the host name:
    its certificate passes, another name's fails."""
    ca = trustme.CA()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with tls_server(ca.issue_cert(cert_for)) as (port, sni_names):
        dns = RebindingDns("93.184.216.34", "127.0.0.1")
        connected = fake_internet(monkeypatch, dns, hosts={"93.184.216.34": port})
        with httpx.Client(verify=client_context) as client:
            try:
                outcome: object = fetch_page(
                    f"https://secure.example:{port}/", client=client, resolver=dns
                )
            except FetchError as exc:
                outcome = exc
    assert connected == ["93.184.216.34"] and sni_names == ["secure.example"]
    if cert_for == "secure.example":
        assert not isinstance(outcome, FetchError), outcome
        assert "Jane Austen" in outcome.text
    else:
        assert isinstance(outcome, FetchError) and "certificate" in str(outcome).lower()


# --- hostile public pages: time, memory, and anything else that goes wrong ------------------
PUBLIC = "93.184.216.34"


def hostile_page(
    monkeypatch: pytest.MonkeyPatch, reply: Reply, url: str = "http://public.example/", **kw: Any
) -> tuple[FetchedPage | FetchError, RawServer]:
    """`fetch_page(url)` as a public page that `reply` writes; the outcome, never another
    exception (the test fails with it)."""
    dns = RebindingDns(PUBLIC)
    with raw_server(reply) as server:
        fake_internet(monkeypatch, dns, hosts={PUBLIC: server.port})
        try:
            outcome: FetchedPage | FetchError = fetch_page(url, resolver=dns, **kw)
        except FetchError as exc:
            outcome = exc
    return outcome, server


OK_HTML = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
DRIPPING = {
    "body": drips(OK_HTML + b"Content-Length: 100000\r\n\r\n"),
    "chunked": drips(OK_HTML + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n"),
    "headers": drips(b"HTTP/1.1 200 OK\r\nX-Slow: "),
    "redirects": slow_redirects(0.6),
}


@pytest.mark.parametrize("reply", DRIPPING.values(), ids=DRIPPING)
def test_a_page_sent_a_byte_at_a_time_ends_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, reply: Reply
) -> None:
    """httpx's timeout bounds each read, which a byte every 0.2 s never exceeds (nor each
    hop of a slow redirect chain): the page's time is bounded in all, its connection shut."""
    outcome, _ = hostile_page(monkeypatch, reply, timeout_s=1.0)
    assert isinstance(outcome, FetchError), outcome
    assert str(outcome) == "http://public.example/ did not answer within 1s" or (
        str(outcome).endswith("/again did not answer within 1s")
    ), outcome


def test_an_https_page_sent_a_byte_at_a_time_ends_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TLS socket is shut as well (at the descriptor: no TLS goodbye to wait for)."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("secure.example").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    dns = RebindingDns(PUBLIC)
    with raw_server(DRIPPING["body"], tls=server_context) as server:
        fake_internet(monkeypatch, dns, hosts={PUBLIC: server.port})
        with (
            httpx.Client(verify=client_context) as client,
            pytest.raises(FetchError, match="did not answer within 1s"),
        ):
            fetch_page("https://secure.example/", client=client, resolver=dns, timeout_s=1.0)
    assert server.requests and server.requests[0].startswith(b"GET / HTTP/1.1")


def gzipped(size: int, layers: int = 1) -> bytes:
    """`size` bytes of one HTML paragraph, gzipped `layers` times."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [squeeze.compress(b"<html><body><p>")]
    block = b"compost " * (1 << 17)  # 1 MiB
    parts += [squeeze.compress(block) for _ in range(size // len(block))]
    body = b"".join([*parts, squeeze.compress(b"</p></body></html>"), squeeze.flush()])
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body


def encoded(body: bytes, coding: str) -> Reply:
    return sends(html(body, f"Content-Encoding: {coding}"))


def test_a_gzip_bomb_is_read_within_the_size_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 MB of HTML in 64 KB of gzip: httpx inflated each piece whole before the cap saw
    it; inflated here, at most the cap (and a piece) is ever held."""
    bomb = gzipped(64 * 1024 * 1024)
    tracemalloc.start()
    try:
        outcome, server = hostile_page(monkeypatch, encoded(bomb, "gzip"), max_bytes=100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(outcome, FetchedPage), outcome
    assert outcome.text.startswith("compost compost") and len(outcome.text) <= 100_000
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    assert b"\r\naccept-encoding: gzip\r\n" in server.requests[0].lower()


@pytest.mark.parametrize("coding", ["gzip, gzip", "br", "deflate", "gzip, br", "zstd"])
def test_stacked_and_unasked_encodings_are_refused(
    monkeypatch: pytest.MonkeyPatch, coding: str
) -> None:
    """Only gzip is asked for; `gzip, gzip` made 4 GB of 6.8 KB, so nothing else is read."""
    outcome, _ = hostile_page(monkeypatch, encoded(gzipped(4 * 1024 * 1024, 2), coding))
    assert isinstance(outcome, FetchError), outcome
    assert f"is sent as {coding!r}; only gzip is read" in str(outcome)


def test_gzip_and_identity_pages_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    page = ARTICLE.encode()
    for reply in (encoded(gzip.compress(page), "gzip"), encoded(page, "identity")):
        outcome, _ = hostile_page(monkeypatch, reply)
        assert isinstance(outcome, FetchedPage) and "Jane Austen" in outcome.text, outcome


def test_a_body_that_is_not_gzip_is_a_fetch_error(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome, _ = hostile_page(monkeypatch, encoded(b"not gzip at all", "gzip"))
    assert isinstance(outcome, FetchError) and "not gzip" in str(outcome), outcome


UNREADABLE = {
    "location-http-colon": (redirect(b"http:x"), "http://public.example/"),
    "location-idna": (redirect(b"http://xn--a.example/"), "http://public.example/"),
    "location-too-long": (redirect(b"/" + b"a" * 70_000), "http://public.example/"),
    "location-control": (redirect(b"/a\x01b"), "http://public.example/"),
    "url-control": (sends(html(ARTICLE.encode())), f"http://{PUBLIC}/a\x01b"),
    "url-too-long": (sends(html(ARTICLE.encode())), f"http://{PUBLIC}/" + "a" * 70_000),
}


@pytest.mark.parametrize(("reply", "url"), UNREADABLE.values(), ids=UNREADABLE)
def test_whatever_goes_wrong_with_a_page_is_a_fetch_error(
    monkeypatch: pytest.MonkeyPatch, reply: Reply, url: str
) -> None:
    """httpx's InvalidURL is no HTTPError, an IDNA error no OSError: each escaped before,
    and took the whole command with it."""
    outcome, _ = hostile_page(monkeypatch, reply, url)
    assert isinstance(outcome, FetchError), outcome
    assert len(str(outcome)) < 600 and "\n" not in str(outcome)


@pytest.mark.parametrize("charset", ["rot13", "no-such-charset", "idna", "utf-7"])
def test_a_page_in_a_charset_python_cannot_read_is_read_as_utf8(
    monkeypatch: pytest.MonkeyPatch, charset: str
) -> None:
    raw = html(ARTICLE.encode()).replace(b"text/html", f"text/html; charset={charset}".encode())
    reply = sends(raw)
    outcome, _ = hostile_page(monkeypatch, reply)
    assert isinstance(outcome, FetchedPage), outcome
    assert "Jane Austen" in outcome.text or charset == "utf-7"


def test_fetch_pages_never_raises_for_a_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception of a page's fetch is that page's FetchError; the others are read."""
    dns = RebindingDns(PUBLIC)
    with raw_server(sends(html(ARTICLE.encode()))) as server:
        fake_internet(monkeypatch, dns, hosts={PUBLIC: server.port})

        def fetcher(url: str, **kw: Any) -> FetchedPage:
            if "boom" in url:
                raise LookupError("a bug in a page's reading")
            return fetch_page(url, resolver=dns, **kw)

        outcomes = fetch_pages(
            [f"http://{PUBLIC}/a\x01b", "http://boom.example/", "http://public.example/"],
            fetcher=fetcher,
        )
    assert [type(o) for o in outcomes] == [FetchError, FetchError, FetchedPage], outcomes
    assert "LookupError: a bug in a page's reading" in str(outcomes[1])


def test_the_fetch_step_is_bounded_as_a_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Twelve dripping pages, more than are read at once: each ends by the step's deadline
    (a page that waits for a worker gets what is left of it, not a time of its own)."""
    dns = RebindingDns(PUBLIC)
    with raw_server(DRIPPING["body"]) as server:
        fake_internet(monkeypatch, dns, hosts={PUBLIC: server.port})
        seen: list[float] = []

        def fetcher(url: str, **kw: Any) -> FetchedPage:
            seen.append(kw["timeout_s"])
            return fetch_page(url, resolver=dns, **kw)

        urls = [f"http://public.example/{i}" for i in range(12)]
        outcomes = fetch_pages(urls, timeout_s=1.0, fetcher=fetcher)
    assert all(isinstance(o, FetchError) for o in outcomes), outcomes
    assert all("within 1s" in str(o) or "within 0." in str(o) for o in outcomes), outcomes
    assert len(seen) <= 12 and all(t <= 1.0 for t in seen)
