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


def warn(message: str) -> None:
    err.print(f"Warning: {message}", style="yellow", markup=False)


def error(message: str) -> None:
    err.print(f"Error: {message}", style="bold red", markup=False)
