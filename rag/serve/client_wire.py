"""How the CLI's client (`rag.serve.client`) reads a server: by deadlines, and JSON as
rag serve writes it.

http.client's timeout is a silence: a server that sends a byte a second, or one
`100 Continue` after another, is never silent, and held `rag search` for as long as it
liked. Here every read of the answer ends by a `Wait`'s deadline, whatever came
meanwhile, and a few `100 Continue` are taken at most. Python's json reads `NaN` and
`Infinity`, which JSON has not; `loads` refuses them, so `--json` prints JSON.
"""

from __future__ import annotations

import http.client
import io
import json
import math
import socket
import time
from typing import Any

#: `100 Continue` responses taken before the answer: rag serve sends none.
MAX_INTERIM = 5


class Wait:
    """A deadline for what the server sends next (`what`: its answer, the head of it, the
    next event), whatever it sends meanwhile: http.client's timeout is a silence, which a
    server sending a byte a second never keeps. `start` sets it anew."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.start()

    def start(self, what: str = "") -> None:
        self.what = what or self.what
        self.end = time.monotonic() + self.seconds
        self.heard = False  # a byte came since

    def left(self) -> float:
        """Seconds left; `TimeoutError` when none are."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(self.why())
        return left

    def why(self) -> str:
        if not self.heard:
            return f"sent nothing for {self.seconds:g} s"
        return f"did not send {self.what} within {self.seconds:g} s"


class _Reader(io.RawIOBase):
    """The socket's reader that http.client made (`raw`), each read ending by the wait's
    deadline. It keeps `raw`, which holds the socket open after http.client closes the
    connection (it does, handing it to a response that will close it)."""

    def __init__(self, raw: Any, sock: socket.socket, wait: Wait) -> None:
        self.raw, self.sock, self.wait = raw, sock, wait

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.sock.settimeout(self.wait.left())
        got = self.raw.readinto(buffer)
        self.wait.heard = self.wait.heard or bool(got)
        return got or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class Interim(http.client.HTTPException):
    """More `100 Continue` responses than `MAX_INTERIM`: no answer is coming."""


class TimedResponse(http.client.HTTPResponse):
    """http.client's response, read through a `_Reader`, taking few `100 Continue`."""

    def __init__(self, sock: socket.socket, *args: Any, wait: Wait, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        raw = self.fp.detach()  # nothing is read yet, so its buffer is empty
        self.fp = io.BufferedReader(_Reader(raw, sock, wait))
        self.interim = 0

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]
        if status == http.client.CONTINUE:
            self.interim += 1
            if self.interim > MAX_INTERIM:
                raise Interim(f"it sent more than {MAX_INTERIM} `100 Continue` and no answer")
        return version, status, reason


class NotFinite(ValueError):
    """A JSON number that is not finite: `NaN`, `Infinity` or `1e999`."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotFinite(text)
    return number


def loads(raw: bytes) -> Any:
    """JSON as rag serve writes it: without `NaN` or `Infinity`, which Python's json reads
    and writes but JSON has not (`--json` would print them, and its output be no JSON)."""
    return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite)


def _refuse_constant(name: str) -> Any:
    raise NotFinite(name)
