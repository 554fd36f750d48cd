"""Where output goes: results to stdout, progress/warnings/errors to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(payload: dict[str, Any]) -> None:
    """One JSON object on stdout, nothing else, so `--json` output can be piped."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def write_text(text: str) -> None:
    """Streamed answer text: straight to stdout, flushed so it appears token by token."""
    sys.stdout.write(text)
    sys.stdout.flush()


class _Quiet:
    def stop(self) -> None:
        pass


def working(message: str) -> Any:
    """A transient spinner on stderr while something slow runs; nothing when stderr is piped."""
    if not err.is_terminal:
        return _Quiet()
    status = err.status(message, spinner="dots")
    status.start()
    return status


def warn(message: str) -> None:
    err.print(f"Warning: {message}", style="yellow", markup=False)


def error(message: str) -> None:
    err.print(f"Error: {message}", style="bold red", markup=False)
