"""One writer at a time, and a writer killed with SIGKILL never breaks the live index.

Children are paused at a known point (first embedding batch, or just before the
atomic switch) by the fake embedder / a wrapped commit, then killed: no timing guesses.
"""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock
from index_fixtures import cli, docs, fake_embedder, settings, spawn_build, wait_for  # noqa: F401 - fixtures

from indexers.build import build_index
from indexers.stores.base import resolve_index_dir
from rag.core.errors import IndexBusy
from rag.sources import build_retriever


def _kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _lock_path(name: str) -> Path:
    return resolve_index_dir(name, settings()) / "write.lock"


def test_second_writer_refuses_while_first_holds_the_lock(
    docs: Path, fake_embedder, tmp_path: Path
) -> None:
    build_index([docs], "notes", settings())
    (docs / "notes.md").write_text("# Changed\n\nSomething new to embed.")
    marker = tmp_path / "marker"
    child = spawn_build("notes", docs, "--pause-at", "embed", FAKE_MARKER=str(marker))
    try:
        wait_for(marker, child)  # the child holds the lock and is embedding
        with pytest.raises(IndexBusy, match="Another `rag index` is writing"):
            build_index([docs], "notes", settings())
        result = cli("index", str(docs), "--name", "notes")
        assert result.exit_code == 1 and "Another `rag index`" in result.stderr
        # readers are not blocked by a writer
        assert build_retriever("index:notes", settings()).retrieve("compost", 1)
    finally:
        _kill(child)


def test_second_writer_waits_for_the_lock(docs: Path, fake_embedder) -> None:
    build_index([docs], "notes", settings())
    (docs / "extra.md").write_text("Waiting writers eventually write.")
    lock = FileLock(str(_lock_path("notes")), thread_local=False)  # released by the timer thread
    lock.acquire()
    releaser = threading.Timer(0.5, lock.release)
    releaser.start()
    try:
        report = build_index([docs], "notes", settings(), wait=60)
    finally:
        releaser.join()
    assert report.files_embedded == 1


def test_sigkill_while_embedding_keeps_previous_index(
    docs: Path, fake_embedder, tmp_path: Path
) -> None:
    build_index([docs], "notes", settings())
    before = [p.location for p in build_retriever("index:notes", settings()).retrieve("lake", 3)]
    (docs / "records.jsonl").write_text('{"title": "Replaced", "text": "A new lake text."}\n')
    marker = tmp_path / "marker"
    child = spawn_build("notes", docs, "--pause-at", "embed", FAKE_MARKER=str(marker))
    wait_for(marker, child)
    _kill(child)
    after = build_retriever("index:notes", settings()).retrieve("lake", 3)
    assert [p.location for p in after] == before
    assert any(p.title == "Lake Baikal" for p in after)
    report = build_index([docs], "notes", settings())  # the lock died with the child
    assert report.files_embedded == 1
    assert build_retriever("index:notes", settings()).retrieve("lake", 1)[0].title == "Replaced"


def test_sigkill_just_before_the_switch_keeps_previous_index(
    docs: Path, fake_embedder, tmp_path: Path
) -> None:
    build_index([docs], "notes", settings())
    index_dir = resolve_index_dir("notes", settings())
    (docs / "page.html").unlink()
    marker = tmp_path / "marker"
    child = spawn_build("notes", docs, "--pause-at", "commit", FAKE_MARKER=str(marker))
    wait_for(marker, child)
    tmp_gen = Path(marker.read_text())
    assert (tmp_gen / "params.json").is_file(), "the new generation was fully written"
    _kill(child)
    assert (index_dir / "CURRENT").read_text().strip() == "gen-000001"
    hits = build_retriever("index:notes", settings()).retrieve("Margaret Flett lighthouse", 1)
    assert hits[0].title == "The Lighthouse Keeper"
    report = build_index([docs], "notes", settings())
    assert report.files_removed == 1 and not tmp_gen.exists()
    assert sorted(p.name for p in index_dir.glob("gen-*")) == ["gen-000001", "gen-000002"]


def test_child_builds_normally_when_not_paused(docs: Path, fake_embedder) -> None:
    """The child entry point itself works, so the kill tests above test the kill, not a crash."""
    child = spawn_build("notes", docs)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert int(out.decode().strip()) > 0
    deadline = time.monotonic() + 5
    while not (resolve_index_dir("notes", settings()) / "CURRENT").exists():
        assert time.monotonic() < deadline
    assert build_retriever("index:notes", settings()).retrieve("heliopause", 1)
