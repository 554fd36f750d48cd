"""Tests stay on this machine: a test that resolves a name or opens a connection anywhere
but loopback fails, naming what it tried.

Why by hand and not pytest-socket: its host filter only wraps `socket.connect`, while the
leak this stops is a DNS query, which `getaddrinfo` sends before any connect. Each guarded
function refuses *before* the real call, so nothing leaves the machine, and raises an
`OSError` as an offline machine would; the test fails even when the code under test
swallows that error, since every refusal is recorded and reported after the test phase.

Allowed: names `localhost` (and its IPv6 aliases); any IP literal to resolve (no query is
sent for one); connections and datagrams to loopback (127.0.0.0/8, ::1, ::ffff:127.x) and
over any family but IPv4/IPv6 (Unix sockets). Covered: Python's `socket` module in this
process and all its threads (httpx, urllib, asyncio, huggingface_hub). Not covered: C
libraries that open sockets themselves (libpq) and child processes.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

LOCAL_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})
HINT = (
    "tests may only use localhost and loopback addresses; a test that needs the internet is "
    "marked `network` and runs with RAG_TEST_NETWORK=1 or -m network"
)


class ResolutionBlocked(socket.gaierror):
    """A name other than localhost was to be resolved."""


class ConnectionBlocked(OSError):
    """A connection or datagram was to go somewhere other than loopback."""


_lock = threading.Lock()
_refused: list[str] = []
_allowed = threading.Event()  # set while a test that may use the internet runs
_real: dict[str, Callable[..., Any]] = {}


def _host_text(host: object) -> str:
    if isinstance(host, (bytes, bytearray)):
        return bytes(host).decode("ascii", "replace")
    return str(host)


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_local_name(host: object) -> bool:
    """Whether resolving `host` stays on this machine: localhost, or an address literal."""
    if host is None:
        return True
    text = _host_text(host)
    return text.lower() in LOCAL_NAMES or _literal(text) is not None


def is_loopback(host: object) -> bool:
    text = _host_text(host)
    if text.lower() in LOCAL_NAMES:
        return True
    address = _literal(text)
    return address is not None and address.is_loopback


def _refuse(message: str, error: type[OSError]) -> OSError:
    with _lock:
        _refused.append(message)
    if error is ResolutionBlocked:
        return ResolutionBlocked(socket.EAI_NONAME, f"network guard: {message}")
    return ConnectionBlocked(errno.ENETUNREACH, f"network guard: {message}")


def _check_name(what: str, host: object) -> None:
    if not _allowed.is_set() and not is_local_name(host):
        raise _refuse(f"{what}({_host_text(host)!r})", ResolutionBlocked)


def _check_peer(what: str, sock: socket.socket, address: object) -> None:
    if _allowed.is_set() or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if not is_loopback(host):
        raise _refuse(f"{what} to {address!r}", ConnectionBlocked)


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    _check_name("getaddrinfo", host)
    return _real["getaddrinfo"](host, *args, **kwargs)


def _gethostbyname(host: Any) -> Any:
    _check_name("gethostbyname", host)
    return _real["gethostbyname"](host)


def _gethostbyname_ex(host: Any) -> Any:
    _check_name("gethostbyname_ex", host)
    return _real["gethostbyname_ex"](host)


def _gethostbyaddr(host: Any) -> Any:
    # A reverse lookup of anything but loopback asks a DNS server (PTR).
    if not _allowed.is_set() and not is_loopback(host):
        raise _refuse(f"gethostbyaddr({_host_text(host)!r})", ResolutionBlocked)
    return _real["gethostbyaddr"](host)


def _getnameinfo(sockaddr: Any, flags: int) -> Any:
    numeric = flags & socket.NI_NUMERICHOST
    if not _allowed.is_set() and not numeric and not is_loopback(sockaddr[0]):
        raise _refuse(f"getnameinfo({sockaddr!r})", ResolutionBlocked)
    return _real["getnameinfo"](sockaddr, flags)


def _connect(self: socket.socket, address: Any) -> Any:
    _check_peer("connect", self, address)
    return _real["connect"](self, address)


def _connect_ex(self: socket.socket, address: Any) -> Any:
    _check_peer("connect", self, address)
    return _real["connect_ex"](self, address)


def _sendto(self: socket.socket, data: Any, *args: Any) -> Any:
    _check_peer("sendto", self, args[-1])
    return _real["sendto"](self, data, *args)


def _sendmsg(self: socket.socket, buffers: Any, *args: Any) -> Any:
    if len(args) >= 3 and args[2] is not None:
        _check_peer("sendmsg", self, args[2])
    return _real["sendmsg"](self, buffers, *args)


_MODULE_FUNCTIONS = {
    "getaddrinfo": _getaddrinfo,
    "gethostbyname": _gethostbyname,
    "gethostbyname_ex": _gethostbyname_ex,
    "gethostbyaddr": _gethostbyaddr,
    "getnameinfo": _getnameinfo,
}
_SOCKET_METHODS = {
    "connect": _connect,
    "connect_ex": _connect_ex,
    "sendto": _sendto,
    "sendmsg": _sendmsg,
}


def install() -> None:
    """Guard the `socket` module from now on (once; later calls do nothing)."""
    if _real:
        return
    for name, guarded in _MODULE_FUNCTIONS.items():
        _real[name] = getattr(socket, name)
        setattr(socket, name, guarded)
    for name, guarded in _SOCKET_METHODS.items():
        _real[name] = getattr(socket.socket, name)
        setattr(socket.socket, name, guarded)


def allow(allowed: bool) -> None:
    """Lift the guard (a network test that was asked for) or put it back."""
    if allowed:
        _allowed.set()
    else:
        _allowed.clear()


def take_refused() -> list[str]:
    """What was refused since the last call, and forget it."""
    with _lock:
        refused = list(_refused)
        _refused.clear()
    return refused
