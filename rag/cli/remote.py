"""A command's work sent to the configured `rag serve` (`rag.serve.client`), or None when
this process should answer: no server, not reachable, or it cannot serve this."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rag.cli import output

_WARNED: set[str] = set()


def answer_remotely(work: Callable[[], Any]) -> Any | None:
    """`work()` (a call on a `Client`), or None after `Fallback`: the command then answers in
    its own process. Why is said on stderr, once per process and reason."""
    from rag.serve.client import Fallback

    try:
        return work()
    except Fallback as why:
        message = str(why)
        if message and message not in _WARNED:
            _WARNED.add(message)
            output.warn(message)
        return None
