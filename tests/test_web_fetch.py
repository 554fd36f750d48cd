"""Page fetching: address rules, size and time limits, and main-text extraction,
against a real HTTP server on 127.0.0.1 (allowed explicitly, as loopback is refused by default)."""

from __future__ import annotations

import socket

import httpx
import pytest
from web_servers import html_reply, local_server, slow

from rag.web.fetch import FetchError, check_url, fetch_page, fetch_pages, select_relevant

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
        assert request.url.host == "public.example", "the private hop must never be requested"
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
