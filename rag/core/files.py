"""State files: written so that a crash, a kill or a full disk never leaves half of one, and
read so that one that is not what pocketrag wrote never hangs or exhausts a reader.

Every file pocketrag reads back later (manifests, results, pointers) is written whole
into a temporary file next to it, flushed to disk, then renamed over the old one:
readers see the old content or the new, never a truncated mix. A failed write becomes a
`StorageError` that names the file and the cause (disk full, read-only folder), and the
old file stays as it was. Such a small file is read back by `read_small`: only if it is a
regular file (a FIFO in its place would block the read forever, a device never end) and
only up to a size no state file reaches (a huge or sparse one is refused, not loaded).
Files are also identified here, by a streamed SHA-256.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from rag.core.errors import StorageError

#: Bytes read per step when hashing: a model file can be gigabytes, never read whole.
HASH_BLOCK = 1 << 20
#: The most `read_small` reads: far above any pointer, marker or params file pocketrag
#: writes (an index's params.json lists its roots and segments), far below memory.
SMALL_FILE_BYTES = 16 << 20


class NotAStateFile(ValueError):
    """A state file that is not a small regular file: a FIFO, a device, a folder, huge."""


def read_small(path: str | Path, limit: int = SMALL_FILE_BYTES) -> bytes:
    """The bytes of the small state file `path` (a link is followed to a regular file).

    FileNotFoundError (and other OSErrors) as `open` raises them; `NotAStateFile` for a
    FIFO, a device or a folder in its place, never opened in a way that could block
    (non-blocking, checked with fstat), or for a file larger than `limit`, never read
    past it.
    """
    path = Path(path)
    _check_kind(os.stat(path).st_mode)  # a device is not even opened
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        _check_kind(os.fstat(fd).st_mode)  # swapped since the stat
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise NotAStateFile(f"larger than {limit} bytes, not a file pocketrag wrote")
    return data


def read_small_text(path: str | Path, limit: int = SMALL_FILE_BYTES) -> str:
    """`read_small` decoded as UTF-8 (UnicodeDecodeError, a ValueError, otherwise)."""
    return read_small(path, limit).decode("utf-8")


def _check_kind(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a folder" if stat.S_ISDIR(mode)
            else "a special file"
        )  # fmt: skip
        raise NotAStateFile(f"{kind}, not a file pocketrag wrote")


def sha256_of(handle: BinaryIO) -> str:
    """The SHA-256 of what is left to read in `handle`, read a block at a time."""
    digest = hashlib.sha256()
    while block := handle.read(HASH_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def storage_error(path: str | Path, exc: OSError, doing: str = "write") -> StorageError:
    """`exc` restated for a user: which file, what went wrong, what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "Free some disk space and run the command again."
    elif exc.errno in (errno.EACCES, errno.EPERM) and doing == "read":
        hint = "Check that it may be read (its permissions and its folders')."
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "Check that the folder is writable (permissions, read-only mount)."
    else:
        hint = "Check the disk and the folder's permissions, then run the command again."
    return StorageError(f"Cannot {doing} {path}: {reason}. {hint}")


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside `folder` durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> None:
    """Replace `path` with `data` in one step; on any failure the old file is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = data.encode(encoding) if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
