"""`rag index --watch` and `rag serve --watch`: a real watcher in a child process, real files
written beside it, and the index read as `rag search` reads it.

The child finds the hashing embedder `fake` through the test plugin tests/plugins/
pocketrag_fakes; a throwaway plugin adds `slow` (the fake, taking SLOW_S a batch once
$SLOW_FLAG exists, $SLOW_MARKER written at its first slow batch: an update under way at a
known moment) and the generator `fixed` (for `rag serve`). Every wait is a poll with a
generous deadline that guards the run; none is a claim about speed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import rag
from conftest import returning
from index_fixtures import REPO, FakeEmbedder, cli, fake_embedder  # noqa: F401 - fixture
from test_serve_guard import send
from throwaway_plugins import GENERATOR, plugin_package
from web_servers import free_port

TESTS = Path(__file__).resolve().parent
#: How long a test waits for what the watcher should do by itself (a guard, not a claim).
PATIENCE_S = 120.0
UPDATE = re.compile(r"Updated index 'n': (\d+) added, (\d+) updated, (\d+) removed")

PLUGIN = (
    'ANSWER = "It is in the notes [1]."\n'
    + GENERATOR
    + """
import os
import time
from pathlib import Path

from index_fixtures import FakeEmbedder


class SlowEmbedder(FakeEmbedder):
    def embed(self, texts):
        flag = os.environ.get("SLOW_FLAG")
        if flag and Path(flag).exists():
            Path(os.environ["SLOW_MARKER"]).touch()
            time.sleep(float(os.environ.get("SLOW_S", "0.3")))
        return super().embed(texts)


def register(registry):
    registry.register(registry.Part(
        "generator", "fixed", lambda rest, settings, options: FixedGenerator("fixed:" + rest)))
    registry.register(registry.Part(
        "embedder", "slow", lambda *args, **kwargs: SlowEmbedder("slow")))
"""
)


def eventually(condition: Callable[[], Any], what: str, patience: float = PATIENCE_S) -> Any:
    deadline = time.monotonic() + patience
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This test's RAG_HOME and settings, with the fakes' plugins on PYTHONPATH."""
    plugins = tmp_path / "plugins"
    if not plugins.exists():
        plugin_package(plugins, "watchtest", PLUGIN)
    path = [plugins, TESTS, TESTS / "plugins", REPO]
    return {
        **os.environ, "PYTHONPATH": os.pathsep.join(map(str, path)), "PYTHONFAULTHANDLER": "1",
        **extra,
    }  # fmt: skip


class Child:
    """A long-running `rag` child: its stdout lines as they come, its stderr in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.lines: list[str] = []
        with log.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rag.cli.launch", *args], env=env,
                stdout=subprocess.PIPE, stderr=stderr, text=True, errors="replace",
            )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.stderr}"
        return True

    def wait_stderr(self, text: str) -> None:
        eventually(lambda: self.alive() and text in self.stderr, f"{text!r} on stderr")

    def updates(self) -> list[tuple[int, int, int]]:
        """(added, updated, removed) of each update line so far."""
        found = (UPDATE.match(line) for line in self.lines)
        return [tuple(map(int, m.groups())) for m in found if m]  # type: ignore[misc]

    def wait_updates(self, count: int) -> list[tuple[int, int, int]]:
        try:
            return eventually(
                lambda: self.alive() and len(self.updates()) >= count and self.updates(),
                f"{count} update lines",
            )
        except AssertionError as exc:  # where the child is: its threads' stacks on stderr
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(30)
            raise AssertionError(f"{exc}; stdout: {self.lines}; stderr: {self.stderr}") from None

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=PATIENCE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"did not stop on signal {sig}: {self.stderr[-2000:]}")
        self.reader.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "compost.md").write_text("Turn the compost heap every two weeks in summer.\n")
    (folder / "roof.md").write_text("The slate roof is replaced in April with recycled slate.\n")
    return folder


@pytest.fixture
def watcher(tmp_path: Path, docs: Path, fake_embedder: FakeEmbedder) -> Iterator[Child]:  # noqa: F811
    """`rag index DOCS --name n --watch`, built and watching."""
    child = Child(
        ["index", str(docs), "--name", "n", "--watch"],
        child_env(tmp_path, RAG_EMBEDDER="fake"),
        tmp_path / "watch.stderr",
    )
    try:
        child.wait_stderr("Watching")
        assert child.lines and child.lines[0].startswith("Built index 'n'"), child.lines
        yield child
    finally:
        child.kill()


def hits(word: str) -> list[dict[str, Any]]:
    """`rag search WORD --index n --json` in this process (the same index files)."""
    result = cli("search", word, "--index", "n", "--k", "10", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["results"]


def texts_of(path: Path, word: str) -> list[str]:
    """The texts of `path`'s chunks among the hits for `word` that hold `word`."""
    return [
        r["text"] for r in hits(word) if r["location"].startswith(str(path)) and word in r["text"]
    ]


def assert_clean_stop(child: Child, code: int) -> None:
    stderr = child.stderr
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("Stopped"), stderr


def test_a_new_file_is_found_by_rag_search(watcher: Child, docs: Path) -> None:
    new = docs / "bees.md"
    new.write_text("The beehive swarmed in May; zanzibarite honey was harvested.\n")
    assert watcher.wait_updates(1)[-1] == (1, 0, 0)
    eventually(lambda: texts_of(new, "zanzibarite"), "the new file in the index")
    done = rag("search", "zanzibarite", "--index", "n", "--json")  # a process of its own
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["location"].startswith(str(new))
    assert_clean_stop(watcher, watcher.stop())


def test_a_burst_of_saves_is_one_update(watcher: Child, docs: Path) -> None:
    target = docs / "roof.md"
    for version in range(1, 21):  # an editor saving twenty times, each within the quiet
        target.write_text(f"The slate roof, draft {version}: quarrystone version{version}.\n")
        time.sleep(0.1)
    eventually(lambda: texts_of(target, "version20"), "the last save in the index")
    (docs / "sentinel.md").write_text("A sentinel file written after the burst.\n")
    updates = watcher.wait_updates(2)  # the burst's, then the sentinel's
    assert updates == [(0, 1, 0), (1, 0, 0)], watcher.lines
    assert all("version20" in t for t in texts_of(target, "quarrystone"))
    assert_clean_stop(watcher, watcher.stop())


def test_a_file_written_slowly_is_never_read_half_written(watcher: Child, docs: Path) -> None:
    slow = docs / "slow.md"
    pieces = [f"slowpiece{i} arrives after a pause." for i in range(10)] + ["slowfinale"]
    seen: list[str] = []
    writing = threading.Event()

    def search_while_written() -> None:
        while not writing.wait(0.1):
            seen.extend(texts_of(slow, "slowpiece0"))

    searcher = threading.Thread(target=search_while_written, daemon=True)
    searcher.start()
    try:
        with slow.open("w", encoding="utf-8") as handle:
            for piece in pieces:  # each piece well within the quiet period of the last
                handle.write(piece + "\n")
                handle.flush()
                time.sleep(0.2)
    finally:
        writing.set()
        searcher.join(PATIENCE_S)
    eventually(lambda: texts_of(slow, "slowfinale"), "the whole file in the index")
    (docs / "sentinel.md").write_text("A sentinel file written after the slow one.\n")
    assert watcher.wait_updates(2) == [(1, 0, 0), (1, 0, 0)], watcher.lines
    partial = [text for text in seen if "slowfinale" not in text]
    assert not partial, partial
    assert all("slowfinale" in t for t in texts_of(slow, "slowpiece0"))
    assert_clean_stop(watcher, watcher.stop())


def test_a_deleted_file_leaves_the_index_and_sigterm_stops(watcher: Child, docs: Path) -> None:
    gone = docs / "compost.md"
    assert texts_of(gone, "compost")
    gone.unlink()
    assert watcher.wait_updates(1)[-1] == (0, 0, 1)
    assert not texts_of(gone, "compost")
    assert_clean_stop(watcher, watcher.stop(signal.SIGTERM))


def test_temporary_and_editor_files_are_ignored(watcher: Child, docs: Path) -> None:
    for name in ("~$report.docx", ".#notes.md", "notes.md.swp", "upload.tmp", ".DS_Store",
                 "notes.md~"):  # fmt: skip
        (docs / name).write_text("ephemeralword in a stand-in file\n")
    (docs / "real.md").write_text("A real note about ephemeralword.\n")
    assert watcher.wait_updates(1) == [(1, 0, 0)], watcher.lines
    locations = {r["location"].split("#")[0] for r in hits("ephemeralword")}
    assert str(docs / "real.md") in locations
    assert locations <= {str(docs / n) for n in ("real.md", "compost.md", "roof.md")}, locations
    assert_clean_stop(watcher, watcher.stop())


def test_sigint_during_an_update_exits_0_and_the_index_answers(
    tmp_path: Path, docs: Path, register_part: Callable[..., None], monkeypatch: Any
) -> None:
    register_part("embedder", "slow", returning(FakeEmbedder("slow")))
    monkeypatch.setenv("RAG_EMBEDDER", "slow")
    flag, marker = tmp_path / "slow.flag", tmp_path / "slow.marker"
    env = child_env(tmp_path, RAG_EMBEDDER="slow", SLOW_FLAG=str(flag),
                    SLOW_MARKER=str(marker), SLOW_S="0.3")  # fmt: skip
    child = Child(["index", str(docs), "--name", "n", "--watch"], env, tmp_path / "w.stderr")
    try:
        child.wait_stderr("Watching")
        flag.touch()  # from now on each batch takes 0.3 s: an update lasts seconds
        big = docs / "big.md"
        big.write_text(
            "\n\n".join(f"Paragraph {i} of the big file: bigword{i} stays." for i in range(4000))
        )
        eventually(lambda: child.alive() and marker.exists(), "the update embedding")
        code = child.stop(signal.SIGINT)
    finally:
        child.kill()
    assert_clean_stop(child, code)
    index_dir = Path(os.environ["RAG_HOME"]) / "indexes" / "n"
    assert not list(index_dir.glob("gen-*.tmp")), "the abandoned generation is cleaned up"
    flag.unlink()
    info = cli("indexes", "info", "n", "--json")
    assert info.exit_code == 0, info.output
    chunks = json.loads(info.stdout)["chunks"]
    if "abandoned" in child.stderr:  # stopped before its commit: the previous generation
        assert chunks == 2, chunks
    else:  # the commit had begun: the new one
        assert chunks > 100, chunks
    assert texts_of(docs / "roof.md", "slate")


@pytest.fixture
def served(tmp_path: Path, docs: Path, fake_embedder: FakeEmbedder) -> Iterator[tuple[str, Child]]:  # noqa: F811
    """`rag serve --index n --watch` over DOCS, indexed with `-x '*.log'`."""
    assert cli("index", str(docs), "--name", "n", "-x", "*.log").exit_code == 0
    port = free_port()
    env = child_env(tmp_path, RAG_EMBEDDER="fake", RAG_RERANKER="none")
    args = ["serve", "-m", "fixed:x", "--index", "n", "--watch", "--port", str(port)]
    child = Child(args, env, tmp_path / "serve.stderr")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        child.alive()
        try:
            return send(url, "GET", "/healthz").status == 200
        except OSError:
            return False

    try:
        eventually(up, "rag serve answering")
        yield url, child
    finally:
        child.kill()


def get(url: str, path: str) -> Any:
    reply = send(url, "GET", path)
    assert reply.status == 200, reply
    return json.loads(reply.body)


def test_serve_watch_finds_a_new_file_without_a_restart(
    served: tuple[str, Child], docs: Path
) -> None:
    url, child = served
    before = get(url, "/healthz")["watching"]["n"]
    generation = get(url, "/v1/indexes")["indexes"][0]["generation"]
    new = docs / "bees.md"
    # Excluded when the index was built: the watch skips it too (before: indexed).
    (docs / "debug.log").write_text("zanzibarite noise from a debug log, not a document.\n")
    new.write_text("The beehive swarmed in May; zanzibarite honey was harvested.\n")
    query = "/v1/search?" + urllib.parse.urlencode({"q": "zanzibarite", "index": "n"})

    def found() -> bool:
        child.alive()
        results = get(url, query)["results"]
        return any(r["location"].startswith(str(new)) for r in results)

    eventually(found, "/v1/search finding the new file")
    row = get(url, "/v1/indexes")["indexes"][0]
    assert row["generation"] > generation and row["files"] == 3
    assert not any("debug.log" in r["location"] for r in get(url, query)["results"])

    def health_updated() -> dict[str, Any] | None:
        watched = get(url, "/healthz")["watching"]["n"]
        return watched if watched["updated_at"] > before["updated_at"] else None

    after = eventually(health_updated, "/healthz showing the update")
    assert after["error"] is None and after["generation"] == row["generation"]
    code = child.stop(signal.SIGINT)
    assert code == 0, child.stderr
    assert "Traceback" not in child.stderr, child.stderr
    assert "Updated index 'n': 1 added" in child.stderr
    assert child.stderr.strip().splitlines()[-1] == "Stopped serving and watching."
