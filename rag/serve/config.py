"""What `rag serve` was started with, the rules for where it may listen, and the names it
answers to (the `Host` a request may carry)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from rag.core.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Largest request body read; a bigger one is refused with 413 before it is parsed.
MAX_BODY_BYTES = 64 * 1024
#: Largest upload (`POST /v1/indexes/NAME/files`), streamed to disk (`--max-upload-mb`).
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
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
#: Seconds a response may wait for its client to take bytes (its send buffers full): a
#: client that stops reading is cut off, and its generation stopped, instead of holding a
#: slot (and the model) for as long as it keeps the connection open.
SEND_DEADLINE_S = 30.0
#: Longest `model` a chat completion request may name: it is echoed in every chunk of a
#: stream, so a 60 KB name would make each token a 60 KB write.
MAX_MODEL_CHARS = 256
#: Most connections open at once, whatever the open-file limit (`connection_cap`).
MAX_CONNECTIONS = 4096
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
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_question_chars: int = MAX_QUESTION_CHARS
    max_in_flight: int = MAX_IN_FLIGHT
    #: Host names the server answers to besides its own address and loopback: the
    #: names a reverse proxy or a DNS entry gives it (`--allowed-host`).
    allowed_hosts: tuple[str, ...] = ()
    read_timeout_s: float = REQUEST_READ_S
    send_timeout_s: float = SEND_DEADLINE_S
    #: Connections open at once; None: half the process's open-file limit (at most
    #: MAX_CONNECTIONS), the rest left for the model, the indexes and web fetches.
    max_connections: int | None = None
    #: A run folder of `rag eval run`, or a folder of them, that GET /v1/runs shows
    #: (`--runs DIR`); None: those routes say how to start the server with one.
    runs_dir: Path | None = None
    #: Whether each local index served is kept in step with its folders (`--watch`).
    watch: bool = False

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
        if not 1 <= self.max_upload_bytes <= 1024**4:
            raise UsageError(
                "--max-upload-mb must be between 1 and 1048576 (1 TiB), "
                f"got {self.max_upload_bytes / 1024**2:g}."
            )
        if self.token and (len(self.token) < 8 or not all(map(_visible, self.token))):
            raise UsageError(
                "The token must be at least 8 visible characters, without spaces, control "
                "or invisible characters (no HTTP client sends those in `Authorization: "
                "Bearer TOKEN`); e.g. openssl rand -hex 16."
            )
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
        if address.is_loopback:  # ::ffff:127.0.0.1 too: it is 127.0.0.1
            return True
        own = _address(self.host)
        if own is None:  # a name off loopback: which addresses it has is not known here
            return not is_loopback(self.host)
        return own.is_unspecified or address == own


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`host` as an address; an IPv4-mapped IPv6 one (`::ffff:127.0.0.1`) as its IPv4
    address, which is what it reaches (Python < 3.13 calls it neither loopback nor private)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _plain_host(name: str) -> bool:
    """A bare host name or address: no scheme, port, path, user or space."""
    return _address(name) is not None or _HOST_NAME.fullmatch(name) is not None


_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")


def _visible(char: str) -> bool:
    """Whether a token may hold `char`: not whitespace, not a control, format (zero-width)
    or separator character (a header value cannot carry a control character, and a client
    strips or splits at whitespace), and not a lone surrogate (an undecodable byte, which
    cannot be sent as UTF-8). Other non-ASCII text is sent as UTF-8 by `rag`'s client."""
    return not char.isspace() and unicodedata.category(char) not in _INVISIBLE


_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1, ::ffff:127.0.0.1);
    any other name or address (0.0.0.0, ::, a LAN address, a host name) may be reached
    from elsewhere."""
    if host.strip().lower() == "localhost":
        return True
    address = _address(host)
    return address is not None and address.is_loopback
