"""Where output goes: results to stdout, progress/warnings/errors to stderr.

`out` and `err` are rich consoles made on first use: importing rich costs about 40 ms,
which a piped `rag ask` (plain text on both streams) never needs to pay.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from typing import Any, TextIO

from rag.core.safe_text import escape_surrogates

_CONSOLES: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name not in ("out", "err"):
        raise AttributeError(name)
    return console(name)


def console(name: str) -> Any:
    """The rich console for `out` or `err`, made (and rich imported) on first use."""
    if name not in _CONSOLES:
        from rich.console import Console

        # emoji=False: a `:name:` in a document, title or path is shown as written.
        _CONSOLES[name] = Console(
            stderr=name == "err", highlight=False, soft_wrap=True, emoji=False
        )
    return _CONSOLES[name]


def ensure_streams() -> None:
    """A process started with stdout or stderr closed (`>&-`) has None there: point it at
    /dev/null, so what would be printed is dropped instead of crashing the command."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115


def discard_stdout() -> None:
    """After a closed pipe: further writes (and the flush at exit) go nowhere, quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def is_terminal(stream: TextIO) -> bool:
    """What rich would decide, without importing it: a TTY, or colour forced."""
    if "FORCE_COLOR" in os.environ:
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# A file name can hold any byte but `/` and NUL: bytes that are not UTF-8 come back from
# the OS as lone surrogates, which cannot be written as UTF-8, and control characters
# (newlines, terminal escapes) would break a line or drive the terminal.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # all but tab
_CONTROL_KEEP_NEWLINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` as valid UTF-8 for a terminal: `bad\\xff.txt`, `a\\nb.txt`, no raw escapes."""
    text = escape_surrogates(text)
    pattern = _CONTROL_KEEP_NEWLINE if keep_newlines else _CONTROL
    return pattern.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def print_json(payload: dict[str, Any]) -> None:
    """One JSON object on stdout, nothing else, so `--json` output can be piped."""
    text = json.dumps(payload, ensure_ascii=False, indent=2)
    # Lone surrogates only occur inside JSON strings; there `\\xff` decodes to `\xff`.
    text = escape_surrogates(text, backslash="\\\\")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def write_text(text: str) -> None:
    """Streamed answer text: straight to stdout, flushed so it appears token by token; a
    terminal escape the model copied from a document is shown, not obeyed."""
    sys.stdout.write(printable(text, keep_newlines=True))
    sys.stdout.flush()


class _Quiet:
    def stop(self) -> None:
        pass


def working(message: str) -> Any:
    """A transient spinner on stderr while something slow runs; nothing when stderr is piped."""
    if not is_terminal(sys.stderr):
        return _Quiet()
    status = console("err").status(message, spinner="dots")
    status.start()
    return status


def note(message: str, style: str = "dim") -> None:
    """A line on stderr: styled on a terminal, plain text (and no rich import) otherwise."""
    if is_terminal(sys.stderr):
        console("err").print(message, style=style, markup=False)
    else:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def warn(message: str) -> None:
    note(f"Warning: {printable(message, keep_newlines=True)}", style="yellow")


def error(message: str) -> None:
    note(f"Error: {printable(message, keep_newlines=True)}", style="bold red")
