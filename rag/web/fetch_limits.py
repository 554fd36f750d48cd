"""How long and how much of one page `rag.web.fetch` reads, and how its bytes become text.

Why here and not httpx's: httpx's timeout bounds each read, so a server that sends a byte
every few seconds holds a request for ever; and httpx inflates each piece of a gzipped
body whole before any cap can look at it (6.8 KB sent as `gzip, gzip` became gigabytes).
So a page's fetch has one `Deadline` for all its hops, headers and body, and its body is
read raw and inflated here, in steps no bigger than what is still wanted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from rag.core.errors import RagError

#: Longest part of a URL a message names (a result's URL may be 65 KB long).
MAX_SHOWN_URL = 200
#: The content codings read: `Accept-Encoding` asks for gzip only.
_GZIP = ("gzip", "x-gzip")
#: The httpcore trace events that hand over a connection's socket (plain, then TLS).
_OPENED = ("connection.connect_tcp.complete", "connection.start_tls.complete")


class FetchError(RagError):
    """A page could not be read, or was refused; its snippet is used instead."""


def shown_url(url: str) -> str:
    """`url` as a message names it: at most `MAX_SHOWN_URL` characters."""
    return url if len(url) <= MAX_SHOWN_URL else url[: MAX_SHOWN_URL - 1] + "…"


class Deadline:
    """When a page's fetch must be over, however slowly its server sends. At that moment
    every connection the fetch opened is shut, which ends the read it is in; httpcore
    hands each socket over through the `trace` extension (`trace`) as it opens it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._expired = False
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        return self.end - time.monotonic()

    def passed(self) -> bool:
        return self._expired or self.left() <= 0

    def check(self, url: str) -> None:
        if self.passed():
            raise self.error(url)

    def error(self, url: str) -> FetchError:
        return FetchError(f"{shown_url(url)} did not answer within {round(self.seconds, 1):g}s")

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace callback: keeps each socket opened, to shut it in time."""
        if event not in _OPENED:
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if not self._expired:
                return
        _shut(sock)  # opened just as the time ran out

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    """Ends both directions of `sock` (a read blocked in it returns at once), at the level
    of its descriptor: for TLS too, without a TLS goodbye. A socket already closed has no
    descriptor any more (-1), so a number the system reused is never touched."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def read_body(response: Any, max_bytes: int, deadline: Deadline, url: str) -> bytes:
    """At most `max_bytes` of an httpx response's body, inflated here: memory stays within
    `max_bytes` and a piece, whatever the compression ratio. The deadline is checked
    between pieces too (a client without sockets, as in tests, has no trace)."""
    inflate = _inflater(response.headers.get("content-encoding", ""), url)
    body = bytearray()
    received = 0
    for chunk in response.iter_raw():
        deadline.check(url)
        received += len(chunk)
        body += inflate(chunk, max_bytes - len(body)) if inflate else chunk
        if len(body) >= max_bytes or received >= max_bytes:
            break
    return bytes(body[:max_bytes])


def _inflater(header: str, url: str) -> Callable[[bytes, int], bytes] | None:
    """A bounded gzip decompressor for `Content-Encoding: gzip`; None for none; a
    `FetchError` for any other coding, or several stacked (`gzip, gzip`)."""
    codings = [c.strip().lower() for c in header.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _GZIP:
        raise FetchError(
            f"{shown_url(url)} is sent as {header[:100]!r}; only gzip is read (and asked for)"
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def inflate(data: bytes, room: int) -> bytes:
        """At most `room` bytes out of `data` (at least 1: zlib reads 0 as no limit);
        `read_body` stops once its room is full, so the input zlib kept is not needed."""
        if inflater.eof:
            return b""
        try:
            return inflater.decompress(data, max(room, 1))
        except zlib.error as exc:
            raise FetchError(f"{shown_url(url)} sent a body that is not gzip: {exc}") from None

    return inflate


def decode_text(body: bytes, charset: str | None) -> str:
    """The body as text in its declared charset; UTF-8 when it declares none, or one that
    is no text encoding Python knows (`rot13`, a name made up)."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except (LookupError, ValueError):  # ValueError: a codec without `errors="replace"`
        return body.decode("utf-8", errors="replace")
