"""Read the top result pages (`--fetch N`) so the prompt gets more than a snippet.

Why so careful: the URLs come from the internet, and a search result (or a
redirect from one) can point at `http://127.0.0.1:8080/admin` or a cloud metadata
address. So a page is fetched only when its scheme is http/https and every
address its host resolves to is public, re-checked on every redirect hop; bodies
are capped in size and time; only HTML and plain text are read. Loopback and
private addresses are allowed only with `allow_private_fetch` (tests, intranets), or
for exactly the `host:port` pairs of `private_fetch_hosts` (IP literals only: the offline
web of evals/recipes/offline_web.py lets its own server be read and nothing else there).
The host is resolved once per hop, and the request goes to an address that check
saw (the URL names the address; the Host header, TLS SNI and the certificate
check keep the name): a DNS-rebinding host that answers a public address for the
check and 127.0.0.1 a moment later gets no second question.

A page is read within `timeout_s` in all (every hop, its headers and its body),
however slowly its server sends; the pages of one search are read at once, the
whole step within the same time. Only gzip is asked for and read, decompressed
here in bounded steps, so a small compressed bomb costs at most `max_bytes`.
Whatever goes wrong with one page (its URL, a redirect, its encoding or markup)
is a `FetchError`: the page keeps its snippet, never the command fails.

Main text comes from trafilatura (drops menus, footers, scripts); when it finds
no main content, the page is reduced to its visible text instead.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from rag.core.errors import UsageError
from rag.packing import html_to_text
from rag.web.fetch_limits import Deadline, FetchError, decode_text, read_body, shown_url

#: Seconds a page's fetch takes at most, all hops, headers and body; also the whole step's.
DEFAULT_TIMEOUT_S = 8.0
#: ... and the seconds the step waits longer for the pages' text to be extracted.
EXTRACT_GRACE_S = 4.0
MAX_BYTES = 2_000_000
MAX_REDIRECTS = 5
#: Pages read at once: the `fetch` setting's largest value, so all of a search's start together.
MAX_PARALLEL = 10
#: How much of a page goes into one passage; packing trims further to the token budget.
MAX_PAGE_CHARS = 4000
_READABLE = ("text/html", "application/xhtml+xml", "text/plain")
_WORD = re.compile(r"\w+")

Resolver = Callable[..., list[tuple[Any, ...]]]


@dataclass(frozen=True)
class FetchedPage:
    url: str
    title: str
    text: str


PrivateHosts = frozenset[tuple[str, int]]


def parse_private_hosts(text: str, origin: str = "private_fetch_hosts") -> PrivateHosts:
    """`127.0.0.1:8123, [::1]:8123` -> {("127.0.0.1", 8123), ("::1", 8123)}. Only IP
    literals with a port: a name would be resolved again, and could then point anywhere."""
    found: set[tuple[str, int]] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            address = ipaddress.ip_address(host)
            number = int(port) if sep else -1
        except ValueError:
            number, address = -1, None
        if address is None or not 0 < number < 65536:
            raise UsageError(
                f"{origin}: {item!r} is not an IP address and port (127.0.0.1:8123, "
                "[::1]:8123); only exact addresses may be fetched from privately."
            )
        found.add((str(address), number))
    return frozenset(found)


def check_url(
    url: str,
    *,
    allow_private: bool,
    resolver: Resolver = socket.getaddrinfo,
    private_hosts: PrivateHosts = frozenset(),
) -> tuple[str, ...]:
    """Raise `FetchError` unless `url` is http(s) and its host resolves only to public
    addresses; return those addresses, for the request to go to one of them and nowhere
    else (none with `allow_private`: nothing is checked, so the client resolves). A URL
    naming one of `private_hosts` (IP literal and port) goes to that address alone."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise FetchError(f"refused {url!r}: only http and https pages are fetched")
    host = parts.hostname
    if not host:
        raise FetchError(f"refused {url!r}: no host name")
    if allow_private:
        return ()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchError(f"refused {url!r}: bad port") from None
    if private_hosts:
        try:
            literal = str(ipaddress.ip_address(host))
        except ValueError:
            literal = ""
        if (literal, port) in private_hosts:
            return (literal,)
    try:
        infos = resolver(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from None
    if not infos:
        raise FetchError(f"cannot resolve {host}")
    checked: list[str] = []
    for info in infos:
        text = str(info[4][0])
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise FetchError(
                f"refused {url!r}: {host} resolves to the non-public address {address} "
                "(loopback, private, link-local or reserved); set RAG_ALLOW_PRIVATE_FETCH=1 "
                "to allow it"
            )
        if text not in checked:
            checked.append(text)
    return tuple(checked)


def fetch_page(
    url: str,
    *,
    allow_private: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = MAX_BYTES,
    client: Any = None,
    resolver: Resolver = socket.getaddrinfo,
    private_hosts: PrivateHosts = frozenset(),
) -> FetchedPage:
    """Download one page (following checked redirects) within `timeout_s` in all, and
    extract its main text. Every failure, of whatever kind, is a `FetchError`."""
    import httpx

    deadline = Deadline(timeout_s)
    own_client = client is None
    if own_client:
        client = httpx.Client(
            timeout=timeout_s,
            follow_redirects=False,
            # Directly, not through HTTP(S)_PROXY: a proxy resolves the name again itself,
            # and would check the certificate of a tunnel against the address, not the name.
            trust_env=False,
            # No connection outlives its request: one kept for a host must not serve the
            # next hop's host at the same address, whose certificate it never checked.
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": "Mozilla/5.0 (compatible; pocketrag)", "Accept": "text/html"},
        )
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            deadline.check(current)
            addresses = check_url(
                current, allow_private=allow_private, resolver=resolver, private_hosts=private_hosts
            )
            with _open(client, current, addresses, deadline) as response:
                if response.is_redirect and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    continue
                if response.status_code >= 400:
                    raise FetchError(f"{shown_url(current)} answered HTTP {response.status_code}")
                kind = response.headers.get("content-type", "text/html").split(";")[0]
                kind = kind.strip().lower()
                if kind not in _READABLE:
                    raise FetchError(f"{shown_url(current)} is {kind[:100]}, not a web page")
                body = read_body(response, max_bytes, deadline, current)
                markup = decode_text(body, response.charset_encoding)
            if kind == "text/plain":
                return FetchedPage(current, "", markup.strip())
            title, text = extract_main_text(markup, current)
            if not text:
                raise FetchError(f"{shown_url(current)} has no readable text")
            return FetchedPage(current, title, text)
        raise FetchError(f"{shown_url(url)} redirected more than {MAX_REDIRECTS} times")
    except FetchError:
        raise
    except Exception as exc:  # one page's failure, never the command's: it keeps its snippet
        raise _failure(exc, current, deadline) from None
    finally:
        deadline.close()
        if own_client:
            client.close()


def _failure(exc: Exception, url: str, deadline: Deadline) -> FetchError:
    """What went wrong reading `url` as one line: a deadline that passed (its connection
    was shut, so the error is a lost connection), a network error, or anything else."""
    import httpx

    if deadline.passed() or isinstance(exc, httpx.TimeoutException):
        return deadline.error(url)
    reason = " ".join(str(exc).split())[:300]
    verb = "fetch" if isinstance(exc, httpx.HTTPError) else "read"
    return FetchError(f"cannot {verb} {shown_url(url)}: {type(exc).__name__}: {reason}")


@contextmanager
def _open(client: Any, url: str, addresses: Sequence[str], deadline: Deadline) -> Iterator[Any]:
    """GET `url` (streamed) from one of the checked `addresses`, in order; the next is
    tried only when one refuses the connection (an IPv6 address on an IPv4-only network).
    No addresses: the client resolves the host itself (private fetching is allowed).
    Each request waits at most what is left of `deadline`, which sees its sockets."""
    import httpx

    def send(target: Any, headers: dict[str, str], extensions: dict[str, Any]) -> Any:
        request = client.build_request(
            "GET",
            target,
            headers={"Accept-Encoding": "gzip", **headers},  # only what `read_body` reads
            timeout=max(deadline.left(), 0.001),
            extensions={"trace": deadline.trace, **extensions},
        )
        return client.send(request, stream=True)

    if not addresses:
        response = send(url, {}, {})
    else:
        target = httpx.URL(url)
        name = {"Host": target.netloc.decode("ascii")}
        sni = {"sni_hostname": target.raw_host.decode("ascii")}  # TLS: SNI, certificate check
        for n, address in enumerate(addresses, 1):
            try:
                response = send(target.copy_with(host=address), name, sni)
                break
            except httpx.ConnectError:
                if n == len(addresses) or deadline.passed():
                    raise
    try:
        yield response
    finally:
        response.close()


def extract_main_text(markup: str, url: str = "") -> tuple[str, str]:
    """(title, main text) via trafilatura; the visible text when it finds no main content."""
    import trafilatura

    text = trafilatura.extract(
        markup, url=url or None, include_comments=False, include_tables=True, favor_recall=True
    )
    metadata = trafilatura.extract_metadata(markup)
    title = (metadata.title if metadata and metadata.title else "") or ""
    if not text:
        text = html_to_text(markup)
    return title.strip(), (text or "").strip()


def select_relevant(text: str, query: str, max_chars: int = MAX_PAGE_CHARS) -> str:
    """The page's paragraphs that share most words with the query, in page order, up to
    `max_chars`: a long article's answer is rarely in its first screen."""
    if len(text) <= max_chars:
        return text
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]
    terms = {w for w in _WORD.findall(query.lower()) if len(w) > 2}

    def overlap(p: str) -> int:
        return len(terms & set(_WORD.findall(p.lower())))

    order = sorted(range(len(paragraphs)), key=lambda i: (-overlap(paragraphs[i]), i))
    chosen: set[int] = set()
    used = 0
    for i in order:
        cost = len(paragraphs[i]) + 1
        if used + cost > max_chars:
            if not chosen:  # one giant paragraph: keep its start
                return paragraphs[i][:max_chars]
            continue
        chosen.add(i)
        used += cost
    return "\n".join(paragraphs[i] for i in sorted(chosen))


def fetch_pages(
    urls: Sequence[str],
    *,
    allow_private: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    fetcher: Callable[..., FetchedPage] | None = None,
    private_hosts: PrivateHosts = frozenset(),
    parallel: int = MAX_PARALLEL,
) -> list[FetchedPage | FetchError]:
    """Fetch the pages at once (`parallel` at a time), all within `timeout_s` (and
    `EXTRACT_GRACE_S` for their text); each slot holds the page or why it could not be
    read. Never raises for a page."""
    fetch = fetcher or fetch_page
    extra = {"private_hosts": private_hosts} if private_hosts else {}
    if not urls:
        return []
    end = time.monotonic() + timeout_s

    def one(url: str) -> FetchedPage | FetchError:
        left = end - time.monotonic()
        if left <= 0:
            return _late(url, timeout_s)
        try:
            return fetch(url, allow_private=allow_private, timeout_s=left, **extra)
        except FetchError as exc:
            return exc
        except Exception as exc:  # a fetcher other than `fetch_page`: the same rule
            return FetchError(f"cannot read {shown_url(url)}: {type(exc).__name__}: {exc}")

    pool = ThreadPoolExecutor(max_workers=max(1, min(len(urls), parallel, MAX_PARALLEL)))
    futures = [pool.submit(one, url) for url in urls]
    wait(futures, timeout=timeout_s + EXTRACT_GRACE_S)
    pool.shutdown(wait=False, cancel_futures=True)  # a page still at work is given up
    return [
        future.result() if future.done() and not future.cancelled() else _late(url, timeout_s)
        for url, future in zip(urls, futures, strict=True)
    ]


def _late(url: str, timeout_s: float) -> FetchError:
    return FetchError(f"{shown_url(url)} was not read within {round(timeout_s, 1):g}s")
