"""Files uploaded to `rag serve` (`POST /v1/indexes/NAME/files`, multipart/form-data),
streamed to disk as they arrive: never the whole body in memory, never outside
`$RAG_HOME/uploads/NAME/`.

The body gets its own cap (`--max-upload-mb`, not the 64 KB of every other route) and its
own pace: no pause longer than the read deadline, and on average at least
`MIN_UPLOAD_RATE` after the first deadline (`bounded_receive`, which `app.Guard` gives the
upload route instead of the body it reads whole for the others). Each part is written to a
hidden temporary file in the index's upload folder (a walk skips hidden files), and only
once the whole body is in and every name is good are they given their names, by a hard
link that never replaces a file: nothing of a refused upload stays.

A file's name is its last path component (`C:\\docs\\a.txt` and `docs/a.txt` are
`a.txt`); a name with a `..` component, a hidden name (`.env`), one with a control or
invisible formatting character, or an empty one is refused (400), and the whole upload
with it. Long names are cut to `MAX_NAME_BYTES` (the suffix kept); a name already taken
gets ` (2)`, ` (3)`, ... unless that file holds the very same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from rag.core.config import Settings
from rag.core.errors import UsageError
from rag.core.files import storage_error
from rag.serve.errors import PayloadTooLarge, RequestTimeout, UnsupportedMediaType

#: Default cap on one upload's body (`rag serve --max-upload-mb`).
MAX_UPLOAD_MB = 100
#: The slowest average pace an upload may keep once its first read deadline has passed.
MIN_UPLOAD_RATE = 32 * 1024  # bytes per second
#: Most files one upload carries.
MAX_FILES = 1000
#: Longest file name kept, in UTF-8 bytes (a file system takes 255; room for " (99)").
MAX_NAME_BYTES = 200
#: Unicode categories no file name may hold: controls, invisible formatting (bidi
#: overrides that make `txt.exe` read as `exe.txt`), surrogates, line separators.
_UNNAMEABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_TEMP_PREFIX = ".upload-"


class UnsafeFileName(UsageError):
    """An uploaded file's name that cannot be a plain file name in the upload folder."""


def bounded_receive(scope: Scope, receive: Receive, limit: int, deadline_s: float) -> Receive:
    """`receive` for the upload route: the body as the client sends it, refused with
    PayloadTooLarge past `limit` bytes (at once when its Content-Length says so) and with
    RequestTimeout when the client pauses longer than `deadline_s` or falls below
    `MIN_UPLOAD_RATE` on average after the first `deadline_s`. Once the body is in, later
    calls (waiting for a disconnect) are the client's own, unbounded."""
    declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), b"")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"The upload is {int(declared)} bytes; this server takes at most {limit} "
            "(rag serve --max-upload-mb)."
        )
    started = time.monotonic()
    received = 0
    complete = False

    async def bounded() -> Any:
        nonlocal received, complete
        if complete:
            return await receive()
        allowed = started + deadline_s + received / MIN_UPLOAD_RATE - time.monotonic()
        wait = min(deadline_s, allowed)
        message = None
        if wait > 0:
            with anyio.move_on_after(wait):
                message = await receive()
        if message is None:
            raise RequestTimeout(
                f"The upload stalled: {received} bytes came in "
                f"{time.monotonic() - started:.0f} s (a pause of at most {deadline_s:g} s, "
                f"and at least {MIN_UPLOAD_RATE // 1024} KiB/s on average, are needed)."
            )
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(
                    f"The upload is over this server's limit of {limit} bytes "
                    "(rag serve --max-upload-mb)."
                )
            complete = not message.get("more_body", False)
        return message

    return bounded


def safe_name(raw: bytes) -> str:
    """The name an uploaded file is saved as, or UnsafeFileName (see the module's rules)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeFileName(f"The file name {raw[:80]!r} is not UTF-8 text.") from None
    shown = text[:80]
    bad = next((c for c in text if unicodedata.category(c) in _UNNAMEABLE), None)
    if bad is not None:
        raise UnsafeFileName(
            f"The file name {shown!r} holds the control or invisible character "
            f"U+{ord(bad):04X}; rename the file."
        )
    parts = re.split(r"[/\\]", text)
    if any(part.strip() == ".." for part in parts):
        raise UnsafeFileName(
            f"The file name {shown!r} climbs out of its folder (`..`); send a plain file name."
        )
    name = parts[-1].strip()
    if not name or name == ".":
        raise UnsafeFileName(f"The file name {shown!r} is empty; every file needs a name.")
    if name.startswith("."):
        raise UnsafeFileName(
            f"The file {name[:80]!r} has a hidden name (it starts with a dot): `rag index` "
            "skips hidden files, so it is not taken; rename it to index it."
        )
    return _capped(name)


def _capped(name: str) -> str:
    """`name` within MAX_NAME_BYTES, its suffix kept (`a-very-long…name.md`)."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, suffix = _split(name)
    if len(suffix.encode()) > 20:
        stem, suffix = name, ""
    room = MAX_NAME_BYTES - len(suffix.encode())
    return stem.encode()[:room].decode("utf-8", errors="ignore").rstrip() + suffix


def _split(name: str) -> tuple[str, str]:
    """(stem, suffix), `.gz` taken with the suffix before it (`data.jsonl.gz`)."""
    path = Path(name)
    suffixes = path.suffixes[-2:] if path.suffix.lower() == ".gz" else path.suffixes[-1:]
    suffix = "".join(suffixes)
    return name[: len(name) - len(suffix)], suffix


def upload_folder(settings: Settings, index: str) -> Path:
    """`$RAG_HOME/uploads/INDEX`, made when missing (mode 0700); a StorageError when it
    cannot be, or when it (or `uploads`) is not a real folder (a symlink is never
    followed out of RAG_HOME)."""
    root = settings.uploads_dir
    folder = root / index
    for path in (root, folder):
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(path, exc, "create the upload folder") from None
        if path.is_symlink() or not path.is_dir():
            raise UsageError(f"{path} is not a folder pocketrag made (a link or a file).")
    return folder


@dataclass
class Saved:
    """One uploaded file: its name in the folder, size and SHA-256; `temp` until placed."""

    name: str
    temp: Path
    size: int = 0
    sha256: str = ""
    placed: Path | None = None


class _Writer:
    """python-multipart's callbacks: each part of the field `files` into a hidden
    temporary file in `folder`, hashed as it is written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved: list[Saved] = []
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._file: BinaryIO | None = None
        self._hash: Any = None
        self.ended = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._grow("_header_name", d[s:e]),
            "on_header_value": lambda d, s, e: self._grow("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _grow(self, attribute: str, data: bytes) -> None:
        setattr(self, attribute, getattr(self, attribute) + data)

    def _part_begin(self) -> None:
        self._disposition = b""

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        field = options.get(b"name", b"").decode("latin-1")
        if field != "files":
            raise UsageError(
                f"An upload takes files in the form field `files` only, not {field[:40]!r}."
            )
        if b"filename" not in options:
            raise UsageError("Every part of the `files` field must be a file (with a filename).")
        if len(self.saved) >= MAX_FILES:
            raise UsageError(f"An upload takes at most {MAX_FILES} files; send the rest apart.")
        name = safe_name(options[b"filename"])
        temp = self.folder / f"{_TEMP_PREFIX}{secrets.token_hex(8)}.part"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise storage_error(temp, exc) from None
        self.saved.append(Saved(name, temp))
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()

    def _data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        assert self._file is not None
        try:
            self._file.write(piece)
        except OSError as exc:
            raise storage_error(self.saved[-1].temp, exc) from None
        self._hash.update(piece)
        self.saved[-1].size += len(piece)

    def _part_end(self) -> None:
        if self._file is not None:
            self._close()

    def _end(self) -> None:
        self.ended = True

    def _close(self) -> None:
        assert self._file is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise storage_error(self.saved[-1].temp, exc) from None
        finally:
            self._file.close()
            self._file = None
        self.saved[-1].sha256 = self._hash.hexdigest()

    def discard(self) -> None:
        """Remove every temporary file (and any file placed), as if nothing came."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        remove_saved(self.saved)


def remove_saved(saved: list[Saved]) -> None:
    for item in saved:
        for path in (item.temp, item.placed):
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()


def boundary_of(request: Request) -> bytes:
    """The multipart boundary; 415 for any other body type (a JSON or a text body)."""
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        shown = kind.decode("latin-1")[:60] or "none"
        raise UnsupportedMediaType(
            f"Files are uploaded as `multipart/form-data` (a form's field `files`), got {shown!r}."
        )
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise UsageError("The multipart body has no boundary in its Content-Type.")
    return boundary


async def receive_files(request: Request, folder: Path) -> list[Saved]:
    """Stream the request's files into `folder` and give them their names; every file
    written so far removed when anything is wrong (a bad name, a body too large or too
    slow, the client leaving)."""
    from python_multipart.multipart import MultipartParseError, MultipartParser

    boundary = boundary_of(request)
    writer = _Writer(folder)
    try:
        parser = MultipartParser(boundary, writer.callbacks())
        async for chunk in request.stream():
            if chunk:
                try:
                    await anyio.to_thread.run_sync(parser.write, chunk)
                except MultipartParseError as exc:
                    raise UsageError(f"The multipart body is malformed: {exc}.") from None
        if not writer.ended:
            raise UsageError("The multipart body ended before its closing boundary.")
        if not writer.saved:
            raise UsageError("The upload holds no file: send one or more in the field `files`.")
        await anyio.to_thread.run_sync(lambda: place(writer.saved, folder))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer.discard)
        raise
    return writer.saved


def place(saved: list[Saved], folder: Path) -> None:
    """Give each temporary file its name: a hard link that never replaces a file (a taken
    name gets ` (2)`, ...; a file of the same name and bytes is kept instead)."""
    for item in saved:
        stem, suffix = _split(item.name)
        for n in range(1, 10_000):
            name = item.name if n == 1 else f"{stem} ({n}){suffix}"
            target = folder / name
            if _same_file(target, item):
                item.name = name
                item.temp.unlink()
                break
            try:
                os.link(item.temp, target)
            except FileExistsError:
                continue
            except OSError as exc:
                raise storage_error(target, exc) from None
            item.name, item.placed = name, target
            item.temp.unlink()
            break
        else:
            raise UsageError(f"Too many files named like {item.name!r} in {folder}.")


def _same_file(target: Path, item: Saved) -> bool:
    """Whether `target` is a regular file holding exactly `item`'s bytes."""
    try:
        if not target.is_file() or target.is_symlink() or target.stat().st_size != item.size:
            return False
        digest = hashlib.sha256()
        with target.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest() == item.sha256
    except OSError:
        return False


__all__ = ["ClientDisconnect", "Saved", "bounded_receive", "receive_files", "upload_folder"]
