"""State files are replaced whole or not at all, even when the disk fills mid-write."""

from __future__ import annotations

from pathlib import Path

import pytest
from small_disk import fill, small_disk

from rag.core.errors import StorageError
from rag.core.files import write_atomic


def test_write_atomic_replaces_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    target = folder / "state.json"
    write_atomic(target, '{"a": 1}\n')
    write_atomic(target, b'{"a": 2}\n')
    assert target.read_text() == '{"a": 2}\n'
    assert [p.name for p in folder.iterdir()] == ["state.json"]


def test_a_full_disk_keeps_the_old_file_and_says_why(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 64) as disk:
        target = disk / "manifest.json"
        write_atomic(target, '{"old": true}\n')
        fill(disk)
        with pytest.raises(StorageError, match="No space left on device.*Free some disk space"):
            write_atomic(target, "x" * 200_000)
        assert target.read_text() == '{"old": true}\n'
        assert sorted(p.name for p in disk.iterdir()) == [".filler", "manifest.json"]
