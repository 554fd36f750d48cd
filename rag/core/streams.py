"""Stdout carries only pocketrag's own output: a guard that sends anything else to stderr.

`rag search --json` prints one JSON document and `rag mcp` speaks JSON-RPC on stdout, so
a plugin that prints while it is imported, or C code that writes to descriptor 1, would
corrupt either. Inside `stdout_to_stderr()` both `sys.stdout` and the process's
descriptor 1 point at stderr, which catches `print`, `os.write(1, ...)` and C alike.

Descriptor 1 is shared by every thread, so guards count: the first to enter diverts it,
the last to leave restores it, whatever the order in which threads leave. Until then the
real stdout is reachable only through the duplicate the guard yields (`rag mcp` writes
the protocol there).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = ["private_duplicate", "stdout_to_stderr"]

_LOCK = threading.Lock()
_depth = 0
_real_fd: int | None = None  # a duplicate of the real stdout, while diverted
_real_stream: TextIO | None = None  # sys.stdout as it was
_stand_in: TextIO | None = None  # what sys.stdout is meanwhile (stderr)


def private_duplicate(fd: int) -> int:
    """A close-on-exec duplicate of `fd` above 2, so it can never be taken for a standard
    stream (a child's, or ours after a later `dup2`)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return os.dup(fd)
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[int | None]:
    """Send everything written to stdout to stderr while inside. Yields a descriptor on the
    real stdout, valid until the guard exits (None when the process has no stdout)."""
    _enter()
    try:
        yield _real_fd
    finally:
        _leave()


def _enter() -> None:
    global _depth, _real_fd, _real_stream, _stand_in
    with _LOCK:
        _depth += 1
        if _depth > 1:
            return
        _flush(sys.stdout)  # what was printed before the guard still goes to stdout
        _real_stream, _stand_in = sys.stdout, sys.stderr
        sys.stdout = sys.stderr
        try:
            _real_fd = private_duplicate(1)
        except OSError:  # no descriptor 1 (`>&-`): nothing to divert
            _real_fd = None
            return
        try:
            os.dup2(2, 1)
        except OSError:  # no stderr either: what is printed is dropped
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)


def _leave() -> None:
    global _depth, _real_fd, _real_stream, _stand_in
    with _LOCK:
        _depth -= 1
        if _depth > 0:
            return
        _flush(sys.stdout)
        _flush(_real_stream)  # written into the old stream meanwhile: it goes to stderr
        if _real_fd is not None:
            os.dup2(_real_fd, 1)
            os.close(_real_fd)
        if sys.stdout is _stand_in:  # unless someone else has replaced it since
            sys.stdout = _real_stream
        _real_fd, _real_stream, _stand_in = None, None, None


def _flush(stream: TextIO | None) -> None:
    with contextlib.suppress(AttributeError, OSError, ValueError):
        stream.flush()  # type: ignore[union-attr]
