"""The connections under the app: uvicorn's h11 protocol with deadlines and a cap, the
open-file limit, and what an accept that runs out of file descriptors says.

A peer can hold a connection without sending a request (the head deadline closes it), hold
a response by never reading it (the send deadline aborts it, and the app's disconnect
stops its generation), or open connections until the process has no file descriptor left
(the cap, under half the limit, which is raised to the hard one: past it, the connection
idle the longest is closed to make room; when descriptors run out all the same, the idle
ones are closed and one line says so, not a traceback per failed accept). uvicorn itself
times out only idle kept-alive connections, and asyncio logs every failed accept, 2048 at
a time with uvicorn's backlog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from rag.serve.config import MAX_CONNECTIONS, ServeConfig

#: Seconds an idle kept-alive connection stays open (uvicorn's default, said here).
KEEP_ALIVE_S = 5
#: Connections the kernel queues before they are accepted, and accepts asyncio tries per
#: wake-up (logging each failure: uvicorn's 2048 made 2048 tracebacks per wake-up once
#: descriptors ran out); less under a low open-file limit (`connection_limits`).
BACKLOG = 64
#: Seconds a new connection is safe from being closed to make room: it may be about to
#: send its request (a flood of them waits for this before displacing each other).
FRESH_S = 1.0
#: Fewest connections the cap goes down to when descriptors run out.
MIN_CONNECTIONS = 16
#: Seconds between two log lines about failed accepts (the count in between is said).
ACCEPT_LOG_EVERY_S = 10.0
#: Seconds without running out of descriptors after which the cap is whole again.
RECOVER_S = 60.0
#: The asyncio context message of an accept that failed for want of descriptors.
ACCEPT_FAILED = "socket.accept() out of system resource"

log = logging.getLogger("uvicorn.error")


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (a login shell's soft limit is
    often 1024 while the hard one is far higher); the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not Unix: no such limit to raise
        return MAX_CONNECTIONS * 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return MAX_CONNECTIONS * 2 if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):  # macOS caps it lower than its "unlimited" hard limit
        return soft
    return wanted


def connection_limits(config: ServeConfig, fd_limit: int) -> tuple[int, int]:
    """(connections kept open at once, the listen backlog) under `fd_limit`. A connection
    closed to make room gives its descriptor back a few loop turns after the ones accepted
    meanwhile took theirs, up to a backlog each turn; so the backlog is a sixteenth of the
    limit (at most `BACKLOG`), and the cap (`config.max_connections`, else) half of what
    four backlogs leave, at most `MAX_CONNECTIONS`: the other half is for the model, index
    files and web fetches."""
    backlog = max(8, min(BACKLOG, fd_limit // 16))
    if config.max_connections is not None:
        return max(1, config.max_connections), backlog
    cap = max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, (fd_limit - 4 * backlog) // 2))
    return cap, backlog


class Connections:
    """The open connections of one server, the idle ones oldest first. An idle connection
    is one between requests: new, kept alive, or still sending its head. Past `cap`, the
    longest idle is closed for each new one. When descriptors run out all the same (the
    process uses them for more than connections), `shortage` closes the idle ones and
    lowers the cap, until `RECOVER_S` pass without another shortage."""

    def __init__(self, cap: int) -> None:
        self.cap = self.whole_cap = cap
        self.open = 0
        self.idle: dict[Any, float] = {}  # since when, the longest idle first
        self.short_at: float | None = None

    def opened(self, connection: Any) -> None:
        if self.short_at is not None and time.monotonic() - self.short_at > RECOVER_S:
            self.cap, self.short_at = self.whole_cap, None
        self.open += 1
        self.idle[connection] = time.monotonic()
        self.make_room(keep=connection)

    def busy(self, connection: Any) -> None:
        self.idle.pop(connection, None)

    def rested(self, connection: Any) -> None:
        self.idle.pop(connection, None)
        self.idle[connection] = time.monotonic()

    def closed(self, connection: Any) -> None:
        """Once per connection: when it is let go (`drop`) or lost, whichever is first."""
        self.open -= 1
        self.idle.pop(connection, None)

    def make_room(self, keep: Any = None) -> None:
        """Close idle connections, the longest idle first, until at most `cap` are open;
        `keep` (the one just accepted) is refused instead when every other is busy or
        fresh (`FRESH_S`)."""
        while self.open > self.cap:
            oldest = next(iter(self.idle.items()), None)
            if oldest is None or oldest[0] is keep or time.monotonic() - oldest[1] < FRESH_S:
                if keep is not None:
                    keep.drop(refuse=True)
                return
            oldest[0].drop()

    def shortage(self) -> int:
        """An accept failed for want of descriptors: close every connection idle but not
        fresh (their descriptors come back before asyncio tries again, a second later),
        and lower the cap to three quarters of what was open. Once a second at most:
        asyncio reports each of the accepts it tries in a row. Returns the cap."""
        now = time.monotonic()
        if self.short_at is not None and now - self.short_at < 1.0:
            return self.cap
        self.short_at = now
        self.cap = max(MIN_CONNECTIONS, min(self.cap, self.open * 3 // 4))
        for connection, since in list(self.idle.items()):
            if now - since >= FRESH_S:
                connection.drop()
        return self.cap


class AcceptErrors:
    """The event loop's exception handler: an accept that failed for want of descriptors
    is one warning line every `ACCEPT_LOG_EVERY_S` at most (not a traceback per try), and
    makes room (`Connections.shortage`); anything else goes to asyncio's own handler."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self.failed = 0
        self.said_at: float | None = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_FAILED:
            loop.default_exception_handler(context)
            return
        self.failed += 1
        cap = self.connections.shortage()
        now = time.monotonic()
        if self.said_at is not None and now - self.said_at < ACCEPT_LOG_EVERY_S:
            return
        error = context.get("exception")
        why = getattr(error, "strerror", None) or str(error or "out of resources")
        log.warning(
            "Could not accept %d connection(s): %s; closed the idle ones, and keeping at "
            "most %d open for a while.",
            self.failed,
            why,
            cap,
        )
        self.failed, self.said_at = 0, now


def protocol_class(config: ServeConfig, connections: Connections) -> type[Any]:
    """uvicorn's h11 protocol with, per connection: a deadline on each request's head (a
    connection that sends nothing, or its headers a byte at a time, is closed after
    `read_timeout_s`; the body's deadline is the Guard's); a deadline on sending (a
    client that takes no bytes for `send_timeout_s` while the response waits on it is
    aborted); and a place among `connections`, within their cap."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    head_s, send_s = config.read_timeout_s, config.send_timeout_s
    body = (
        b'{"error": {"message": "The server has too many connections open; try again '
        b'shortly.", "type": "ServerBusy", "exit_code": 1}}'
    )
    refusal = (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )

    class Protocol(H11Protocol):
        _head_timer: Any = None
        _send_timer: Any = None
        _gone = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head()
            connections.opened(self)

        def data_received(self, data: bytes) -> None:
            if self._between_requests():
                self._arm_head()  # the first bytes of a request: its head must follow in time
            super().data_received(data)
            if not self._between_requests():
                self._disarm_head()  # the head is in: the app has the request
                connections.busy(self)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self._gone:
                connections.rested(self)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head()
            self._disarm_send()
            self._let_go()
            super().connection_lost(exc)

        def pause_writing(self) -> None:  # the transport's buffer is full
            super().pause_writing()
            if self._send_timer is None:
                self._send_timer = self.loop.call_later(send_s, self._not_reading)

        def resume_writing(self) -> None:  # the client took bytes
            super().resume_writing()
            self._disarm_send()

        def timeout_keep_alive_handler(self) -> None:
            super().timeout_keep_alive_handler()
            self._linger()

        def drop(self, refuse: bool = False) -> None:
            """Close now, whatever is unsent (an idle connection has nothing unsent);
            `refuse`: a new connection past the cap, told why first."""
            self._let_go()
            if refuse:
                self.transport.write(refusal)
                self.transport.close()
                self._linger()
            else:
                self.transport.abort()

        def _let_go(self) -> None:
            if not self._gone:
                self._gone = True
                connections.closed(self)

        def _between_requests(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is None or cycle.response_complete

        def _arm_head(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(head_s, self._too_slow)

        def _disarm_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _disarm_send(self) -> None:
            if self._send_timer is not None:
                self._send_timer.cancel()
                self._send_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self._between_requests() and not self.transport.is_closing():
                self.transport.close()

        def _not_reading(self) -> None:
            """The client took no bytes for `send_s`: abort, which the app hears as a
            disconnect (`http.disconnect`), so a stream's generation stops and its slot
            is freed."""
            self._send_timer = None
            self.transport.abort()

        def _linger(self) -> None:
            """A close waits for unsent bytes; a client that never reads them would keep
            the descriptor forever, so the close becomes an abort after `send_s`."""
            if self._send_timer is None:
                self._send_timer = self.loop.call_later(send_s, self._not_reading)

    return Protocol
