"""The JSON Lines files a run appends to (predictions.jsonl, retrieval snapshots).

Why it is built this way:
- reading never changes the file: a report must not rewrite its inputs, and a damaged
  line is shown to the user with its line number instead of vanishing;
- every line is appended whole or not at all: a failed append (a full disk) is cut back
  off, so the file ends with a newline as before and the next append cannot glue onto
  half a line;
- the writer ends every line with a newline, so a last line without one is the only
  trace an interrupted write (a kill, a power cut) can leave. Only that line may be
  dropped, and only by a run about to append; any other bad line is damage;
- a run's files are opened only if they are regular files (`open_regular`): one replaced
  by a FIFO or a device would block the read or the append for ever, or never end; a
  symlink is not followed (`rag serve --runs` must not read a file outside its folder
  through a link someone left in a run folder);
- a file is read whole only up to `MAX_READ_BYTES`: a 3 GB predictions.jsonl took a
  server serving the run to 9.7 GB of memory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.core.errors import UsageError
from rag.core.files import storage_error


@dataclass
class JsonlFile:
    """The values of a JSONL file with their line numbers, and a cut-short last line."""

    path: Path
    rows: list[tuple[int, Any]] = field(default_factory=list)
    #: line number of a last line cut short by an interrupted write (not in `rows`)
    cut_short: int | None = None


_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}
_FLAGS = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
#: The most `read_regular` reads: 256 MiB, some 50,000 questions with their evidence.
MAX_READ_BYTES = 256 * 1024 * 1024


def open_regular(path: Path, flags: int, fix: str) -> int:
    """`os.open(path, flags)`, only for a regular file: anything else is a UsageError
    ending with `fix`. Opened non-blocking and checked with fstat (as
    `indexers.discovery.open_regular` does), so a FIFO can neither hold up the open nor
    the reads after it; a missing file raises FileNotFoundError as `os.open` would."""
    try:
        fd = os.open(path, flags | _FLAGS, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            message = f"{path} is a symlink, which pocketrag does not follow here. {fix}"
            raise UsageError(message) from None
        if exc.errno not in (errno.ENXIO, errno.EISDIR):  # ENXIO: a FIFO nobody reads
            raise
        mode = os.stat(path).st_mode
    else:
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISREG(mode):
                os.set_blocking(fd, True)  # a regular file: plain reads from here on
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    raise UsageError(f"{path} is {kind}, not a file pocketrag reads or writes. {fix}")


def read_regular(path: Path, fix: str, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of `path`, a regular file (`open_regular`) of at most `limit` bytes."""
    with os.fdopen(open_regular(path, os.O_RDONLY, fix), "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(limit + 1)
        if max(size, len(data)) > limit:
            raise UsageError(
                f"{path} is {max(size, len(data)) / 2**20:,.0f} MiB, more than the"
                f" {limit / 2**20:,.0f} MiB pocketrag reads from one file. {fix}"
            )
        return data


def bad_line(path: Path, number: int, reason: str, fix: str) -> UsageError:
    """The error for a damaged line: which file, which line, what is wrong, what to do."""
    return UsageError(f"{path} line {number} {reason}. {fix}")


class _Unreadable(ValueError):
    pass


def _parse(raw: bytes, number: int) -> Any:
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"is not UTF-8 text (byte {exc.start + 1} of the line)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Unreadable(f"is not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _Unreadable("is not JSON this reader accepts (nested too deeply)") from None


def read_jsonl(path: Path, fix: str) -> JsonlFile:
    """Parse `path` without changing it; a missing file has no rows.

    A bad line raises a UsageError naming the file and line and ending with `fix`; only a
    last line without its newline that does not parse is set apart as `cut_short`.
    """
    try:
        data = read_regular(path, fix)
    except FileNotFoundError:
        return JsonlFile(path)
    except OSError as exc:
        raise storage_error(path, exc, "read") from None
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: empty when the file ends with one
    found = JsonlFile(path)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            found.rows.append((number, _parse(raw, number)))
        except _Unreadable as exc:
            raise bad_line(path, number, str(exc), fix) from None
    if tail.strip():
        number = len(lines) + 1
        try:
            found.rows.append((number, _parse(tail, number)))  # whole, only its newline missing
        except _Unreadable:
            found.cut_short = number
    return found


_APPEND_FIX = "Move it away, or give the run other paths (--out, --snapshot)."


def repair_tail(path: Path) -> int | None:
    """Before appending: make `path` end with a newline, losing no complete line.

    A last line without its newline is either whole (it gets its newline) or cut short by
    an interrupted write (it is cut off: it holds no complete record). Returns the line
    number of a line cut off, else None.
    """
    try:
        with os.fdopen(open_regular(path, os.O_RDWR, _APPEND_FIX), "r+b") as fh:
            data = fh.read()
            start = data.rfind(b"\n") + 1
            tail = data[start:]
            if not tail.strip():
                if tail:
                    fh.truncate(start)
                return None
            number = data.count(b"\n") + 1
            try:
                _parse(tail, number)
            except _Unreadable:
                fh.truncate(start)
                return number
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
            return None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage_error(path, exc) from None


def append_line(path: Path, value: Any) -> None:
    """Append `value` as one JSON line, whole or not at all (see the module docstring)."""
    data = (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _APPEND_FIX)
    except OSError as exc:
        raise storage_error(path, exc) from None
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException as exc:  # Ctrl-C mid-line too: the line is not left half written
            with contextlib.suppress(OSError):  # shrinking needs no space
                os.ftruncate(fd, start)
            if isinstance(exc, OSError):
                raise storage_error(path, exc) from None
            raise
    finally:
        os.close(fd)
