"""Stdout carries only pocketrag's own output: a guard that sends anything else to stderr.

`rag search --json` prints one JSON document and `rag mcp` speaks JSON-RPC on stdout, so
a plugin that prints while it is imported, or C code that writes to descriptor 1, would
corrupt either. Inside `stdout_to_stderr()` both `sys.stdout` and the process's
descriptor 1 point at stderr, which catches `print`, `os.write(1, ...)` and C alike.

Descriptor 1 is shared by every thread, so guards count: the first to enter diverts it,
the last to leave restores it, whatever the order in which threads leave. Until then the
real stdout is reachable only through the duplicate the guard yields (`rag mcp` writes
the protocol there).

A guard ends, but a thread a plugin started inside one does not: its later
`os.write(1, ...)` or `print` would land in the middle of `--json` output. `hold_stdout()`
(for a `--json` command, from the start) keeps descriptor 1 on stderr for the rest of the
process and makes `sys.stdout` write to a private duplicate of the real stdout for the
main thread alone, where the command prints its result; any other thread's writes go to
stderr. Guards keep sending `sys.stdout` to stderr while they are held. Left out: plugin
code that prints through `sys.stdout` on the main thread outside a guard (a part's
method other than an embedder's, which `rag.core.plugins.call_plugin` guards).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

__all__ = ["hold_stdout", "private_duplicate", "stdout_to_stderr"]

_LOCK = threading.Lock()
_depth = 0
_real_fd: int | None = None  # a duplicate of the real stdout, while diverted
_real_stream: TextIO | None = None  # sys.stdout as it was
_stand_in: TextIO | None = None  # what sys.stdout is meanwhile (stderr)
_held = False  # descriptor 1 is diverted for good (`hold_stdout`)


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


def hold_stdout() -> None:
    """Divert descriptor 1 to stderr for the rest of the process, `sys.stdout` becoming a
    stream on a private duplicate of the real stdout (see the module's docstring). Called
    before any guard; a no-op inside one, or when there is no descriptor 1."""
    global _held
    with _LOCK:
        if _held or _depth:
            return
        old = sys.stdout
        _flush(old)
        _divert()
        if _real_fd is None:
            return
        _held = True
        binary = os.fdopen(private_duplicate(_real_fd), "wb", buffering=0)
        real = io.TextIOWrapper(
            io.BufferedWriter(binary),
            encoding=getattr(old, "encoding", None) or "utf-8",
            errors=getattr(old, "errors", None) or "strict",
            line_buffering=bool(getattr(old, "line_buffering", False)),
        )
        sys.stdout = _MainThreadOnly(real)  # type: ignore[assignment]


class _MainThreadOnly:
    """`sys.stdout` while held: the main thread writes to `real` (the real stdout), every
    other thread to stderr; anything else (fileno, isatty, encoding) is `real`'s."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def _target(self) -> TextIO:
        return self.real if threading.current_thread() is threading.main_thread() else sys.stderr

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        _flush(self.real)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _enter() -> None:
    global _depth, _real_stream, _stand_in
    with _LOCK:
        _depth += 1
        if _depth > 1:
            return
        _flush(sys.stdout)  # what was printed before the guard still goes to stdout
        _real_stream, _stand_in = sys.stdout, sys.stderr
        sys.stdout = sys.stderr
        if not _held:  # held: descriptor 1 is on stderr already
            _divert()


def _divert() -> None:
    """Point descriptor 1 at stderr, keeping the real one as `_real_fd` (None: none)."""
    global _real_fd
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
        if _real_fd is not None and not _held:
            os.dup2(_real_fd, 1)
            os.close(_real_fd)
            _real_fd = None
        if sys.stdout is _stand_in:  # unless someone else has replaced it since
            sys.stdout = _real_stream
        _real_stream, _stand_in = None, None


def _flush(stream: TextIO | None) -> None:
    with contextlib.suppress(AttributeError, OSError, ValueError):
        stream.flush()  # type: ignore[union-attr]
