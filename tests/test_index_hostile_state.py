"""An index's own files and folders when they are not what pocketrag wrote, and `rag index`
when what it reads or calls misbehaves: every command answers in one line, never hangs,
never deletes a user's file, and a failed run leaves the live index as it was.

Each test runs `rag` in a real process (tests/cli_process.py), as a user meets it."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from cli_process import one_error_line, rag
from index_fixtures import docs, fake_embedder, modes, settings  # noqa: F401 - fixtures

from indexers.stores import local_layout

# --- state files that are FIFOs, devices or huge (F19) -----------------------------------


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _huge(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(50 << 30)  # 50 GB, sparse: read whole it is a MemoryError


DAMAGE = {"fifo": _fifo, "/dev/zero": _dev_zero, "50 GB": _huge}
STATE_FILES = {
    "CURRENT": lambda d: d / "CURRENT",
    "params.json": lambda d: local_layout.current_generation_dir(d) / "params.json",
    "pocketrag-index.json": lambda d: d / "pocketrag-index.json",
}


@pytest.fixture
def built(docs: Path, fake_embedder) -> Path:  # noqa: ANN001
    done = rag("index", str(docs), "--name", "base")
    assert done.returncode == 0, done.stderr
    return settings().indexes_dir / "base"


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("state_file", list(STATE_FILES))
def test_a_state_file_that_is_a_fifo_a_device_or_huge_never_hangs_a_reader(
    built: Path, docs: Path, state_file: str, damage: str
) -> None:
    """Before: a FIFO or a /dev/zero link at CURRENT, params.json or the marker hung
    `rag search`, `rag indexes info` and `rag indexes list` (one bad index hung the whole
    listing); a 50 GB sparse file was a MemoryError traceback."""
    index_dir = built.with_name("bad")
    shutil.copytree(built, index_dir, symlinks=True)
    DAMAGE[damage](STATE_FILES[state_file](index_dir))
    marker_only = state_file == "pocketrag-index.json"  # not needed to read an index
    for argv in (("search", "Baikal", "--index", "bad"), ("indexes", "info", "bad")):
        done = rag(*argv, timeout=60)
        if marker_only:
            assert done.returncode == 0, done.stderr
        else:
            line = one_error_line(done, 1)
            assert "Index 'bad' is damaged" in line and state_file in line, line
    listed = rag("indexes", "list", timeout=60)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].startswith("bad  ") and rows[1].startswith("base  "), listed.stdout
    assert marker_only or "damaged" in rows[0]
    fixed = rag("index", str(docs), "--name", "bad", "--rebuild", timeout=60)
    assert fixed.returncode == 0, fixed.stderr  # a rebuild replaces what it cannot read
    assert rag("search", "Baikal", "--index", "bad").returncode == 0


# --- reading an index says reading (F4, F6) -----------------------------------------------


def test_an_index_that_cannot_be_read_says_so_not_cannot_write(docs: Path, built: Path) -> None:
    """Before: `rag search` said "Cannot write the output: Permission denied (...)" (the
    CLI's catch-all for an OSError) and `rag index` "Cannot write .../chunks.sqlite"."""
    sqlite = local_layout.current_generation_dir(built) / "chunks.sqlite"
    sqlite.chmod(0)
    try:
        for argv in (("search", "Baikal", "--index", "base"), ("index", str(docs), "-n", "base")):
            line = one_error_line(rag(*argv, unprivileged=True), 1)
            assert line.startswith(f"Error: Cannot read {sqlite}: Permission denied"), line
            assert "write" not in line, line
    finally:
        sqlite.chmod(0o644)
    with modes(built.parent, 0):
        line = one_error_line(rag("search", "Baikal", "--index", "base", unprivileged=True), 1)
        assert line.startswith("Error: Cannot read") and "write" not in line, line
    assert rag("search", "Baikal", "--index", "base").returncode == 0


# --- a folder named like a generation is not one (F20) -----------------------------------


def test_a_user_folder_named_like_a_generation_is_never_taken_for_one(
    tmp_path: Path, docs: Path
) -> None:
    """Before: a --name folder holding only `gen-000001/` (a user's folder) passed for an
    index (names alone were checked): the first run wrote beside it and the next pruned
    it as an old generation, with the thesis inside."""
    target = tmp_path / "target"
    (target / "gen-000001").mkdir(parents=True)
    thesis = target / "gen-000001" / "thesis.txt"
    thesis.write_text("my precious thesis\n")
    for _ in range(3):
        line = one_error_line(rag("index", str(docs), "--name", str(target), "--rebuild"), 2)
        assert "not a pocketrag index" in line, line
    line = one_error_line(rag("indexes", "remove", str(target)), 2)
    assert "not a pocketrag index" in line
    assert thesis.read_text() == "my precious thesis\n"
    assert sorted(p.name for p in target.iterdir()) == ["gen-000001"]


def test_a_user_folder_named_like_a_generation_inside_an_index_is_kept(
    tmp_path: Path, docs: Path
) -> None:
    """Inside a real index a folder named like a generation that is not one is refused
    before anything is written or pruned, and `rag indexes remove` keeps it."""
    index_dir = tmp_path / "idx"
    assert rag("index", str(docs), "--name", str(index_dir)).returncode == 0
    (index_dir / "gen-000050").mkdir()
    thesis = index_dir / "gen-000050" / "thesis.txt"
    thesis.write_text("my precious thesis\n")
    for _ in range(3):
        line = one_error_line(rag("index", str(docs), "--name", str(index_dir), "--rebuild"), 2)
        assert "gen-000050" in line and "not a pocketrag generation" in line, line
    assert rag("search", "Baikal", "--index", str(index_dir)).returncode == 0
    removed = rag("indexes", "remove", str(index_dir))
    assert removed.returncode == 0 and "Kept" in removed.stderr, removed.stderr
    assert thesis.read_text() == "my precious thesis\n"
    assert sorted(p.name for p in index_dir.iterdir()) == ["gen-000050"]


# --- an embedder that fails is the run's failure, not a file's (F10) ---------------------


@pytest.mark.parametrize("failing_call", [1, 9])
def test_an_embedder_failure_fails_the_run_and_keeps_the_index(
    tmp_path: Path, failing_call: int
) -> None:
    """Before: the file whose chunk filled the batch was "failed to read: RuntimeError:
    ...", left the new generation, and the run reported success (exit 0); a failure in the
    last batch was a traceback. 600 one-chunk files: 8 calls of 64 while reading (the
    window fills at 512), then 2 for the rest."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(600):
        (folder / f"f{i:04d}.txt").write_text(f"document {i} original\n")
    assert rag("index", str(folder), "--name", "f", RAG_EMBEDDER="flaky").returncode == 0
    for i in range(600):
        (folder / f"f{i:04d}.txt").write_text(f"document {i} edited version\n")
    failed = rag(
        "index", str(folder), "--name", "f", RAG_EMBEDDER="flaky", FLAKY_AT=str(failing_call)
    )
    line = one_error_line(failed, 1)
    assert "embedder" in line and "connection reset by the embedding server" in line, line
    index_dir = settings().indexes_dir / "f"
    assert (index_dir / "CURRENT").read_text().strip() == "gen-000001"
    assert not list(index_dir.glob("gen-*.tmp"))
    info = json.loads(rag("indexes", "info", "f", "--json", RAG_EMBEDDER="flaky").stdout)
    assert info["files"] == 600 and info["generation"] == 1
    again = rag("index", str(folder), "--name", "f", "--json", RAG_EMBEDDER="flaky")
    assert json.loads(again.stdout)["files_embedded"] == 600, again.stderr


# --- a file that grows while it is read (F2) ----------------------------------------------


def test_a_file_that_grows_while_read_is_read_as_it_was_and_warned(tmp_path: Path) -> None:
    """Before: the size cap was checked at discovery only, and a file was read to its end
    however far it grew meanwhile (an active log: without end, past the 200 MiB cap). The
    `growing` embedder appends 4 MiB to the file when it loads, after the first part of
    the file was read and before the rest is."""
    folder = tmp_path / "logs"
    folder.mkdir()
    log = folder / "log.txt"
    log.write_text("".join(f"original line {i} of the log\n" for i in range(60_000)))
    size = log.stat().st_size
    assert size > 1 << 20  # more than one read block, so the read goes on after the load
    grow = {"RAG_EMBEDDER": "growing", "GROW_FILE": str(log), "GROW_BYTES": str(4 << 20)}
    still = dict(grow, GROW_BYTES="0")
    done = rag("index", str(folder), "--name", "g", "--json", **grow)
    assert done.returncode == 0, done.stderr
    assert log.stat().st_size > size + (3 << 20)
    report = json.loads(done.stdout)
    assert any("changed while" in w for w in report["warnings"]), report["warnings"]
    found = rag("search", "appendedword grew", "--index", "g", "--json", "-k", "20", **still)
    texts = [r["text"] for r in json.loads(found.stdout)["results"]]
    assert texts and not any("appendedword" in t for t in texts)
    again = rag("index", str(folder), "--name", "g", "--json", **still)  # now read whole
    assert json.loads(again.stdout)["files_embedded"] == 1, again.stderr
    found = rag("search", "appendedword grew", "--index", "g", "--json", "-k", "20", **still)
    assert any("appendedword" in r["text"] for r in json.loads(found.stdout)["results"])
