"""Hostile web pages for the `--fetch` tests, and a fake internet to reach them by.

`raw_server(reply)` is a TCP server on 127.0.0.1 that hands each request's connection to
`reply`, which writes whatever bytes it likes (a byte every so often, a gzip bomb, a
redirect to nowhere). `install(dns, routes)` makes this process's resolver answer from
`dns` (a name to its addresses; an address literal answers itself) and routes connections:
an address in `routes` reaches that port on 127.0.0.1 (the public server it stands for),
loopback is itself, anything else refuses. No DNS question is sent, no packet leaves the
machine. `CHILD` runs the CLI in a process with that fake internet installed from
`$FAKE_INTERNET` before rag is imported, so the default loopback refusal stays on and
sees public addresses.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: A guard for the test run only: a server stops feeding a client after this long.
GUARD_S = 40
ENV = "FAKE_INTERNET"

Reply = Callable[[socket.socket, bytes], None]


@dataclass
class RawServer:
    port: int
    requests: list[bytes]  # each request's head, as received


@contextmanager
def raw_server(reply: Reply, tls: ssl.SSLContext | None = None) -> Iterator[RawServer]:
    """The server; with `tls`, HTTPS with that context."""
    requests: list[bytes] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connection: socket.socket = self.request
            connection.settimeout(GUARD_S)
            if tls is not None:
                try:
                    connection = tls.wrap_socket(connection, server_side=True)
                except OSError:
                    return
            request = b""
            while b"\r\n\r\n" not in request and (chunk := connection.recv(65536)):
                request += chunk
            requests.append(request)
            try:
                reply(connection, request)
                connection.shutdown(socket.SHUT_WR)
                while connection.recv(65536):  # until the client closes: no reset
                    pass
            except OSError:  # the client gave up midway: what is being tested
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield RawServer(server.server_address[1], requests)
    finally:
        server.shutdown()
        server.server_close()


def html(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    """A whole HTTP response with an HTML body and the extra `headers` lines."""
    head = [f"HTTP/1.1 {status}", "Content-Type: text/html", *headers]
    head += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def sends(raw: bytes) -> Reply:
    return lambda connection, request: connection.sendall(raw)


def redirect(location: bytes) -> Reply:
    return sends(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")


def drips(head: bytes, every_s: float = 0.2) -> Reply:
    """`head`, then a byte every `every_s` seconds: never silent for long, never done."""

    def reply(connection: socket.socket, request: bytes) -> None:
        connection.sendall(head)
        stop = time.monotonic() + GUARD_S
        while time.monotonic() < stop:
            connection.sendall(b"a")
            time.sleep(every_s)

    return reply


def slow_redirects(wait_s: float) -> Reply:
    """Each request waits `wait_s`, then redirects to another path of the same server."""

    def reply(connection: socket.socket, request: bytes) -> None:
        time.sleep(wait_s)
        connection.sendall(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")

    return reply


ARTICLE = (
    b"<html><head><title>Compost</title></head><body><article><p>"
    + b"Compost is turned every two weeks by the gardeners of the allotment. " * 20
    + b"</p></article></body></html>"
)


# --- the fake internet ----------------------------------------------------------------------
def install(dns: dict[str, list[str]], routes: dict[str, int]) -> list[str]:
    """Patch this process's `socket.getaddrinfo` and `socket.create_connection` (see the
    module's docstring); returns the addresses connected to, in order."""
    real_connect = socket.create_connection
    connected: list[str] = []

    def resolve(host: object, port: object, *args: object, **kwargs: object) -> list:
        text = (host.decode() if isinstance(host, bytes) else str(host)).strip("[]")
        try:
            addresses = [str(ipaddress.ip_address(text.split("%", 1)[0]))]
        except ValueError:
            if text.lower().rstrip(".") not in dns:
                raise socket.gaierror(socket.EAI_NONAME, f"fake dns: no {text}") from None
            addresses = dns[text.lower().rstrip(".")]
        family = {4: socket.AF_INET, 6: socket.AF_INET6}
        return [
            (family[ipaddress.ip_address(a).version], socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    def create_connection(address: tuple, timeout: object = None, *args: object, **kw: object):
        for *_, sockaddr in resolve(address[0], address[1]):
            ip = sockaddr[0]
            connected.append(ip)
            if ip in routes:
                return real_connect(("127.0.0.1", routes[ip]), timeout)
            if ipaddress.ip_address(ip).is_loopback:
                return real_connect((ip, address[1]), timeout)
        raise ConnectionRefusedError(f"fake internet: nothing at {address[0]}")

    socket.getaddrinfo = resolve  # type: ignore[assignment]
    socket.create_connection = create_connection  # type: ignore[assignment]
    return connected


def install_from_env() -> None:
    spec = json.loads(os.environ[ENV])
    install(spec["dns"], {ip: int(port) for ip, port in spec["routes"].items()})


def environment(dns: dict[str, list[str]], routes: dict[str, int]) -> dict[str, str]:
    """The child's environment variable for `install_from_env`."""
    return {ENV: json.dumps({"dns": dns, "routes": routes})}


#: `rag ARGS` under the fake internet; the peak memory (VmHWM, which starts afresh at exec)
#: is the last line on stderr.
CHILD = """
import atexit, re, sys
def peak():
    with open("/proc/self/status") as status:
        kib = re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1)
    sys.stderr.write("MAXRSS:%s\\n" % kib)
atexit.register(peak)
import hostile_pages
hostile_pages.install_from_env()
from rag.cli.launch import main
sys.argv = ["rag", *sys.argv[1:]]
main()
"""
