"""A real full disk for tests: a tiny tmpfs mounted over a folder (needs root, as in CI here).

Filling a real filesystem is the only honest way to see what ENOSPC does to a write path
(sqlite's "database or disk is full", a short write, a failed rename); a fake `write`
would only show what we assumed. Where mounting is not permitted the test is skipped
with the reason, never passed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(folder: Path, size_kb: int) -> Iterator[Path]:
    """Mount a `size_kb` tmpfs at `folder` (created) for the duration of the block."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill the disk needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave_bytes: int = 0) -> None:
    """Fill the filesystem holding `folder` until at most `leave_bytes` are free."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize - leave_bytes
    if free <= 0:
        return
    with open(folder / ".filler", "wb") as handle:
        block = b"\0" * 65536
        while free > 0:
            try:
                free -= handle.write(block[: min(len(block), free)])
            except OSError:
                break
