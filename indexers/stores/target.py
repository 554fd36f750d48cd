"""Where `rag index` may write, and how a failed run leaves the disk as it found it.

A `--name` that is a folder path must not be, lie inside, or contain a path being
indexed, and must be new, empty, or proven a pocketrag index
(`ownership.refuse_foreign`): never someone's folder of files, nor one holding a folder
merely named like a generation. A run that fails or is interrupted (Ctrl-C included)
removes only what it created itself: its unfinished generation and, while the index was
never completed, its lock file and the folders it made. A folder that existed before the
run is never removed.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Sequence
from pathlib import Path

from indexers.discovery import is_utf8, shown
from indexers.stores import local_layout, ownership
from rag.core.errors import UsageError
from rag.core.files import storage_error

_STORAGE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)
_ELSEWHERE = "Give a new or empty folder, or a plain name like `--name notes` (kept in RAG_HOME)."


def check_target(index_dir: Path, name: str, roots: Sequence[Path]) -> None:
    """Refuse a folder-path `--name` that overlaps the indexed paths or holds other files."""
    outside = "Give a folder outside the indexed paths, or a plain name like `--name notes`."
    for root in roots:
        if index_dir == root:
            raise UsageError(
                f"--name {name} is {root}, the very path being indexed: an index cannot "
                f"be written into the files it indexes. {outside}"
            )
        if index_dir.is_relative_to(root):
            raise UsageError(
                f"--name {name} lies inside {root}, which is being indexed: an index "
                f"cannot live inside the files it indexes. {outside}"
            )
        if root.is_relative_to(index_dir):
            raise UsageError(
                f"--name {name} contains {root}, which is being indexed: an index folder "
                f"holds only the index. {outside}"
            )
    try:
        if index_dir.exists() and not index_dir.is_dir():
            raise UsageError(f"--name {name} is a file, not a folder. {_ELSEWHERE}")
        ownership.refuse_foreign(index_dir, name)  # proven an index, or new or empty
    except OSError as exc:
        raise UsageError(f"Cannot use {index_dir} as an index folder: {exc}.") from None


def make_index_dir(index_dir: Path) -> list[Path]:
    """Create `index_dir` and missing parents; return the folders created, deepest first."""
    if not is_utf8(str(index_dir)):  # its paths could not be written to SQLite or FAISS
        raise UsageError(
            f"Index folder {shown(index_dir)} has a name that is not valid UTF-8. "
            "Give a --name folder path (or RAG_HOME) whose name is valid UTF-8."
        )
    made: list[Path] = []
    folder = index_dir
    try:
        while not folder.exists() and folder != folder.parent:
            made.append(folder)
            folder = folder.parent
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in _STORAGE_ERRNOS:  # read-only, no permission, disk full: exit 1
            raise storage_error(index_dir, exc, "create the index folder") from None
        raise UsageError(
            f"Cannot create index folder {index_dir}: {exc.strerror or exc}."
        ) from None
    return made


def undo_failed_run(
    index_dir: Path, made: Sequence[Path], lock_is_ours: bool, marker_is_ours: bool = False
) -> None:
    """After a failure, still holding the lock: remove what this run created.

    Every `gen-*.tmp` is this run's (the lock holder cleared stale ones when it
    started). Once CURRENT exists the index is live and everything else stays.
    """
    local_layout.clean_stale(index_dir)
    if (index_dir / "CURRENT").exists():
        return
    if made and made[0] == index_dir:
        shutil.rmtree(index_dir, ignore_errors=True)  # the folder is this run's own
    else:
        if lock_is_ours:
            (index_dir / "write.lock").unlink(missing_ok=True)
        if marker_is_ours:
            (index_dir / ownership.MARKER).unlink(missing_ok=True)
    for folder in made[1:]:  # parents this run made, while they are empty
        try:
            folder.rmdir()
        except OSError:
            break
