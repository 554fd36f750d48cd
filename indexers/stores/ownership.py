"""What pocketrag owns in an index folder, proven rather than guessed from names.

A folder is an index only if it carries pocketrag's marker file (or, for indexes written
before the marker, a live generation in pocketrag's own format), and inside it only the
entries of pocketrag's layout are pocketrag's. `rag indexes remove` deletes nothing else,
and `rag index` writes into a folder given as `--name` only when it holds nothing else.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from indexers.stores.local_layout import FORMAT, current_generation_dir
from rag.core.errors import IndexBusy, IndexCorrupt, IndexNotFound
from rag.core.files import storage_error, write_atomic

MARKER = "pocketrag-index.json"
#: Everything pocketrag itself puts in an index folder (the layout: stores/local_layout.py).
_LAYOUT = re.compile(
    r"CURRENT|CURRENT\..+\.tmp|write\.lock|gen-\d{6}(\.tmp)?|"
    + re.escape(MARKER)
    + r"|\."
    + re.escape(MARKER)
    + r"\.\d+\.tmp"
)


def holds_only_index_files(folder: Path) -> bool:
    """True when every entry of `folder` is one pocketrag writes (an empty folder too)."""
    return all(_LAYOUT.fullmatch(p.name) for p in folder.iterdir())


def write_marker(index_dir: Path, **extra: str) -> None:
    """Mark a folder as a pocketrag index; `rag indexes remove` deletes nothing without it.
    `extra`: what a store other than the local one records (its name, where its data is)."""
    marker = {"format": FORMAT, "created_at": time.time(), **extra}
    write_atomic(index_dir / MARKER, json.dumps(marker) + "\n")


def has_marker(index_dir: Path) -> bool:
    try:
        data = json.loads((index_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def is_index_dir(index_dir: Path) -> bool:
    """True only for a folder pocketrag wrote: its marker, or (indexes from before the
    marker) CURRENT naming a generation whose params.json is pocketrag's own format."""
    if has_marker(index_dir):
        return True
    try:
        gen_dir = current_generation_dir(index_dir)
        raw = (gen_dir / "params.json").read_text(encoding="utf-8") if gen_dir else "null"
        params = json.loads(raw)
    except (IndexCorrupt, OSError, ValueError):
        return False
    return isinstance(params, dict) and params.get("format") == FORMAT


def remove_index(index_dir: Path, label: str) -> list[str]:
    """Delete what pocketrag wrote in `index_dir`, holding its write lock; return the names
    of entries left because pocketrag did not write them (the folder then stays).

    Nothing is removed unless the folder is proven an index by `is_index_dir`, and even
    then only the entries of pocketrag's own layout are: never a user's file.
    """
    from filelock import FileLock, Timeout

    if not index_dir.is_dir():
        raise IndexNotFound(
            f"No index named {label!r} (looked in {index_dir}). See `rag indexes list`."
        )
    if not is_index_dir(index_dir):
        raise IndexNotFound(
            f"{index_dir} is not a pocketrag index (no {MARKER} and no pocketrag generation); "
            "not removing anything."
        )
    lock = FileLock(str(index_dir / "write.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise IndexBusy(
            f"`rag index` is writing {label!r} right now; remove it after that."
        ) from None
    except OSError as exc:
        raise storage_error(index_dir / "write.lock", exc, "lock") from None
    others: list[str] = []
    try:
        for entry in sorted(index_dir.iterdir()):
            if entry.name == "write.lock" or not _LAYOUT.fullmatch(entry.name):
                if entry.name != "write.lock":
                    others.append(entry.name)
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError as exc:
                raise storage_error(entry, exc, "remove") from None
    finally:
        lock.release()
    try:
        (index_dir / "write.lock").unlink(missing_ok=True)
        if not others:
            index_dir.resolve().rmdir()  # an index kept elsewhere through a link: its folder
            if index_dir.is_symlink():
                index_dir.unlink()  # and then the link
    except OSError as exc:
        raise storage_error(index_dir, exc, "remove") from None
    return others
