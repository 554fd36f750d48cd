"""Writing state files so that a crash, a kill or a full disk never leaves half of one.

Every file pocketrag reads back later (manifests, results, pointers) is written whole
into a temporary file next to it, flushed to disk, then renamed over the old one:
readers see the old content or the new, never a truncated mix. A failed write becomes a
`StorageError` that names the file and the cause (disk full, read-only folder), and the
old file stays as it was. Files are also identified here, by a streamed SHA-256.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from rag.core.errors import StorageError

#: Bytes read per step when hashing: a model file can be gigabytes, never read whole.
HASH_BLOCK = 1 << 20


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
