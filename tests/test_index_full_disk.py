"""`rag index` on a disk that fills up: one clear line, and the live index stays as it was."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

from pathlib import Path

import pytest
from index_fixtures import cli, docs, fake_embedder  # noqa: F401 - fixtures
from small_disk import fill, small_disk


def test_a_full_disk_during_indexing_keeps_the_previous_index(
    tmp_path: Path, docs: Path, fake_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with small_disk(tmp_path / "disk", 4096) as disk:
        monkeypatch.setenv("RAG_HOME", str(disk / "home"))
        assert cli("index", str(docs), "--name", "notes").exit_code == 0
        before = cli("search", "deepest lake", "--index", "notes", "--json").stdout
        big = tmp_path / "more"
        big.mkdir()
        for i in range(20):  # enough new text that the new generation cannot fit
            (big / f"part{i}.txt").write_text(f"Chapter {i}. " + "words about lakes " * 1000)
        fill(disk, leave_bytes=64 * 1024)
        result = cli("index", str(docs), str(big), "--name", "notes")
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("Error: Cannot write") and "Free some disk space" in lines[-1]
        assert "Traceback" not in result.output
        index_dir = disk / "home" / "indexes" / "notes"
        assert not list(index_dir.glob("*.tmp")), "the unfinished generation is cleaned up"
        after = cli("search", "deepest lake", "--index", "notes", "--json")
        assert after.exit_code == 0 and after.stdout == before
        (disk / ".filler").unlink()
        assert cli("index", str(docs), str(big), "--name", "notes").exit_code == 0


def test_a_full_disk_names_the_file_being_written_not_the_live_index(
    tmp_path: Path, docs: Path, fake_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: "Cannot write .../gen-000001/chunks.sqlite": the live generation's file,
    which is only read (the source of the copy the new generation starts from)."""
    with small_disk(tmp_path / "disk", 4096) as disk:
        monkeypatch.setenv("RAG_HOME", str(disk / "home"))
        assert cli("index", str(docs), "--name", "notes").exit_code == 0
        (docs / "more.md").write_text("# More\n\nAnother page about lakes.")
        for leave in (0, 4096):
            fill(disk, leave_bytes=leave)
            result = cli("index", str(docs), "--name", "notes")
            assert result.exit_code == 1, result.output
            line = result.stderr.strip().splitlines()[-1]
            assert line.startswith("Error: Cannot write") and "Free some disk space" in line
            assert "gen-000001" not in line, line
            (disk / ".filler").unlink()
        assert cli("index", str(docs), "--name", "notes").exit_code == 0
