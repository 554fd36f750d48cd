"""What pocketrag owns in an index folder, proven rather than guessed from names.

A folder is an index only if it carries pocketrag's marker file (or, for indexes written
before the marker, a live generation in pocketrag's own format), and inside it only the
entries of pocketrag's layout are pocketrag's, a `gen-*` folder only if it is a generation
(`local_layout.is_generation_dir`): a user's folder named `gen-000001/` is not. `rag
indexes remove` deletes nothing else, and `rag index` writes into a folder given as
`--name` only when it is new, empty, or proven an index holding no such look-alike.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from indexers.stores.local_layout import (
    FORMAT,
    current_generation_dir,
    foreign_generations,
    is_generation_dir,
)
from rag.core.errors import IndexBusy, IndexNotFound, RagError, UsageError
from rag.core.files import read_small_text, storage_error, write_atomic

MARKER = "pocketrag-index.json"
#: A marker is a few fields: anything larger is not one pocketrag wrote.
MARKER_BYTES = 64 * 1024
#: The files pocketrag itself puts in an index folder (the layout: stores/local_layout.py);
#: its `gen-*` folders are proven one by one.
_FILES = re.compile(
    r"CURRENT|CURRENT\..+\.tmp|write\.lock|"
    + re.escape(MARKER)
    + r"|\."
    + re.escape(MARKER)
    + r"\.\d+\.tmp"
)
_GENERATION = re.compile(r"gen-\d{6}(\.tmp)?")
#: What a killed first run may leave without its marker (its lock, a pointer or marker
#: being written; an unfinished generation, proven one): a folder holding only these is
#: still free to use.
_LEFTOVERS = re.compile(r"write\.lock|CURRENT\..+\.tmp|\." + re.escape(MARKER) + r"\.\d+\.tmp")
_UNFINISHED = re.compile(r"gen-\d{6}\.tmp")


def _is_leftover(entry: Path) -> bool:
    if _UNFINISHED.fullmatch(entry.name):
        return is_generation_dir(entry)
    return bool(_LEFTOVERS.fullmatch(entry.name)) and entry.is_file() and not entry.is_symlink()


def is_ours(entry: Path) -> bool:
    """Whether an entry of an index folder is one pocketrag wrote: a file of its layout
    (removed by unlinking: a link or a FIFO there too, never a folder named like one),
    or a generation folder that is one."""
    if _GENERATION.fullmatch(entry.name):
        return is_generation_dir(entry)
    return bool(_FILES.fullmatch(entry.name)) and (entry.is_symlink() or not entry.is_dir())


def refuse_foreign(folder: Path, label: str) -> None:
    """UsageError unless `folder` may take a new generation: new or empty, holding only
    what a killed first run leaves, or proven an index (`is_index_dir`); and holding no
    folder named like a generation that is not one (it would be pruned as an old one)."""
    if not folder.is_dir():
        return
    entries = list(folder.iterdir())
    if not all(_is_leftover(p) for p in entries) and not is_index_dir(folder):
        raise UsageError(
            f"--name {label}: {folder} already holds files that are not a pocketrag "
            "index; not writing an index into it. Give a new or empty folder, or a "
            "plain name like `--name notes`."
        )
    foreign = foreign_generations(folder)
    if foreign:
        raise UsageError(
            f"Index folder {folder} holds {', '.join(f + '/' for f in foreign[:3])}, named "
            "like a generation but not a pocketrag generation: not writing there, where it "
            "would be pruned as an old one. Move it out, or give another folder."
        )


def write_marker(index_dir: Path, **extra: str) -> None:
    """Mark a folder as a pocketrag index; `rag indexes remove` deletes nothing without it.
    `extra`: what a store other than the local one records (its name, where its data is)."""
    marker = {"format": FORMAT, "created_at": time.time(), **extra}
    write_atomic(index_dir / MARKER, json.dumps(marker) + "\n")


def has_marker(index_dir: Path) -> bool:
    try:
        data = json.loads(read_small_text(index_dir / MARKER, MARKER_BYTES))
    except (OSError, ValueError, RecursionError):  # a FIFO, a device, garbage: no marker
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def is_index_dir(index_dir: Path) -> bool:
    """True only for a folder pocketrag wrote: its marker, or (indexes from before the
    marker) CURRENT naming a generation whose params.json is pocketrag's own format."""
    if has_marker(index_dir):
        return True
    try:
        gen_dir = current_generation_dir(index_dir)
        params = json.loads(read_small_text(gen_dir / "params.json")) if gen_dir else None
    except (RagError, OSError, ValueError, RecursionError):
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
            if entry.name == "write.lock" or not is_ours(entry):
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
