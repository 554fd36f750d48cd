"""What `rag serve` was started with, the rules for where it may listen, and the names it
answers to (the `Host` a request may carry)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from rag.core.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Largest request body read; a bigger one is refused with 413 before it is parsed.
MAX_BODY_BYTES = 64 * 1024
#: Longest question (or last chat message) taken, in characters: about 4,000 tokens, the
#: default context; a longer one could not fit the prompt anyway.
MAX_QUESTION_CHARS = 16_000
#: Requests handled at once (queued on the model or retrieving); more get 503. Enough for
#: a team's clients to queue on the one model rather than be refused (`--max-in-flight`).
MAX_IN_FLIGHT = 64
#: Seconds a request's head has to arrive (from its first byte; a connection that sends
#: nothing counts from its start), and again its body (from the end of the head): a client
#: that stops midway is let go (the body's: with a 408) instead of holding a connection
#: forever. A 64 KB body takes well under a second on any link.
REQUEST_READ_S = 20.0
#: What the server answers to without being told: the loopback name (any loopback address
#: is taken too, as any IP literal is when listening on every address).
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ServeConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: The indexes requests draw on by default; when given, the only ones they may name.
    indexes: tuple[str, ...] = ()
    #: Whether requests search the web unless they say otherwise.
    search: bool = False
    model: str | None = None
    #: When set, every request needs `Authorization: Bearer TOKEN`.
    token: str = ""
    max_body_bytes: int = MAX_BODY_BYTES
    max_question_chars: int = MAX_QUESTION_CHARS
    max_in_flight: int = MAX_IN_FLIGHT
    #: Host names the server answers to besides its own address and loopback: the
    #: names a reverse proxy or a DNS entry gives it (`--allowed-host`).
    allowed_hosts: tuple[str, ...] = ()
    read_timeout_s: float = REQUEST_READ_S

    def check(self) -> None:
        """Refuse a configuration that would expose the server: a UsageError (exit 2)."""
        if not 1 <= self.port <= 65535:
            raise UsageError(f"--port must be between 1 and 65535, got {self.port}.")
        if not is_loopback(self.host) and not self.token:
            raise UsageError(
                f"Listening on {self.host} lets other machines use this server: give a "
                "token (--token or RAG_SERVE_TOKEN) that every request must send as "
                "`Authorization: Bearer TOKEN`, or keep the default --host 127.0.0.1."
            )
        if not 1 <= self.max_in_flight <= 1024:
            raise UsageError(
                f"--max-in-flight must be between 1 and 1024, got {self.max_in_flight}."
            )
        if self.token and (len(self.token) < 8 or any(c.isspace() for c in self.token)):
            raise UsageError("The token must be at least 8 characters, without spaces.")
        for name in self.allowed_hosts:
            if not _plain_host(name):
                raise UsageError(
                    f"--allowed-host {name!r}: give a host name or address as a request's "
                    "Host names it (e.g. rag.example.com), without a scheme, port or path."
                )
        from rag.core.names import is_path_name

        for name in self.indexes:
            if is_path_name(name):
                raise UsageError(
                    f"--index {name!r}: `rag serve` takes index names (see `rag indexes`), "
                    "not folder paths."
                )

    def accepts_host(self, host: str) -> bool:
        """Whether `host` (a request's `Host` without its port and brackets) names this
        server: its own address, loopback, or an `allowed_hosts` name. Listening on every
        address (0.0.0.0, ::), any IP literal is taken, as the machine's addresses are not
        known here; a name never is unless allowed. DNS rebinding, a hostile page's own
        name pointed at this machine, arrives with that name, so it is refused. The port is
        not compared: `ssh -L 9000:127.0.0.1:8765` or a container's port mapping change it."""
        host = host.strip().lower()
        names = {*LOOPBACK_NAMES, *(n.lower() for n in self.allowed_hosts), self.host.lower()}
        if host in names or (host.endswith(".") and host[:-1] in names):
            return True
        address = _address(host)
        if address is None:
            return False
        if address.is_loopback:
            return True
        own = _address(self.host)
        if own is None:  # a name off loopback: which addresses it has is not known here
            return not is_loopback(self.host)
        return own.is_unspecified or address == own


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _plain_host(name: str) -> bool:
    """A bare host name or address: no scheme, port, path, user or space."""
    return _address(name) is not None or _HOST_NAME.fullmatch(name) is not None


_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1); any other name or
    address (0.0.0.0, ::, a LAN address, a host name) may be reached from elsewhere."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
