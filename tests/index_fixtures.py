"""Shared pieces for the index tests: a fast fake embedder, fixture docs, a CLI runner,
and a child-process entry point for the lock and SIGKILL tests.

The fake embedder hashes words into a small vector (so lexical overlap gives real,
deterministic similarity) and counts whitespace words as tokens. Run as a script,
this module builds an index in a separate process with the fake registered:

    python tests/index_fixtures.py build NAME PATH [--pause-at embed|commit]

`--pause-at` writes $FAKE_MARKER and sleeps at that point so a test can kill it there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import returning

HERE = Path(__file__).resolve().parent
FIXTURE_DOCS = HERE / "fixtures" / "index" / "docs"
REPO = HERE.parent
_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Hashed bag of words; `texts` records every text embedded (to check what was re-embedded)."""

    def __init__(self, name: str = "fake", dim: int = 64, max_tokens: int = 80) -> None:
        self.id = f"test/{name}"
        self.dim = dim
        self.max_tokens = max_tokens
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
            if not norm:
                out[row, 0] = 1.0
        marker = os.environ.get("FAKE_MARKER")
        if marker and os.environ.get("FAKE_PAUSE_AT") == "embed":
            Path(marker).write_text("embedding")
            time.sleep(600)
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


class RandomEmbedder(FakeEmbedder):
    """Vectors from a hash of the whole text: no semantic signal at all, so only BM25 can
    find a passage by its words."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[row] = v / np.linalg.norm(v)
        return out


def register_fake(name: str = "fake", **kwargs: int) -> FakeEmbedder:
    """The fake as embedder part `name` for the rest of this process: for the scripts tests
    run in a child. A test itself uses `fake_embedder` or `register_part`."""
    from rag.core import plugins

    embedder = FakeEmbedder(name, **kwargs)
    plugins.register(plugins.Part("embedder", name, returning(embedder)))
    return embedder


@pytest.fixture
def fake_embedder(monkeypatch: pytest.MonkeyPatch, register_part) -> FakeEmbedder:  # noqa: ANN001
    """Registers `fake` and makes it the configured embedder (RAG_EMBEDDER=fake)."""
    embedder = FakeEmbedder("fake")
    register_part("embedder", "fake", returning(embedder))
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    return embedder


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A private copy of the fixture docs, safe to edit."""
    target = tmp_path / "docs"
    shutil.copytree(FIXTURE_DOCS, target)
    return target


def settings():  # noqa: ANN201 - rag.core.config.Settings, imported lazily
    from rag.core.config import load_settings

    return load_settings()


def cli(*args: str):  # noqa: ANN201 - click Result
    from typer.testing import CliRunner

    from rag.cli.app import app

    return CliRunner().invoke(app, list(args))


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def spawn_build(name: str, path: Path, *extra: str, **env: str) -> subprocess.Popen[bytes]:
    """A child process building index `name` with the fake embedder."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "build", name, str(path), *extra],
        env=child_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("child never reached the pause point")
        time.sleep(0.05)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """Make `folder` really unwritable for the block: a read-only bind mount as root (root
    ignores file modes), mode 0o555 otherwise. Skips with the reason when neither works."""
    if os.geteuid() != 0:
        with modes(folder, 0o555, files=0o444):
            yield folder
        return
    for args in (["--bind", str(folder), str(folder)], ["-o", "remount,ro,bind", str(folder)]):
        done = subprocess.run(["mount", *args], capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", str(folder)], capture_output=True)
            pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@contextlib.contextmanager
def modes(folder: Path, mode: int, *, files: int | None = None) -> Iterator[Path]:
    """`folder` (and, with `files`, the files directly in it) at `mode` for the block."""
    paths = [folder, *(p for p in folder.iterdir() if p.is_file())] if files else [folder]
    saved = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(mode if p == folder else files)  # type: ignore[arg-type]
    try:
        yield folder
    finally:
        for p, old in saved.items():
            p.chmod(old)


def unprivileged_prefix() -> list[str]:
    """A command prefix that runs a child without root's power to ignore file modes.

    Tests run as root (here and in CI), and root reads and writes anything. `setpriv`
    drops every capability but keeps uid 0, so the child still reads the interpreter and
    site-packages under /root while a folder at mode 0 or 0o555 refuses it, as it would a
    user. Not root: file modes already apply, no prefix.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("dropping root's capabilities needs setpriv (util-linux)")
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]


def run_child(code: str, *, unprivileged: bool = False, timeout: float = 120.0, **env: str) -> Any:
    """Run `code` in a fresh interpreter and return the JSON it prints on stdout.

    `unprivileged`: see `unprivileged_prefix`. A child still running after `timeout`
    seconds (a hang: a FIFO or a device being read) fails the test instead of hanging it.
    """
    prefix = unprivileged_prefix() if unprivileged else []
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", "import json, sys\n" + code],
            env=child_env(**env),
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child hung for {timeout}s (something blocked on a special file)")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


def discover_in_child(paths: Sequence[str | Path], *, unprivileged: bool = False) -> Any:
    """`discover(paths)` in a child (see `run_child`): {"files": [...], "skipped": {path: reason}}.

    A UsageError comes back as {"error": message}."""
    code = f"""
from indexers.discovery import discover
from rag.core.errors import UsageError
try:
    found = discover({[str(p) for p in paths]!r})
except UsageError as exc:
    print(json.dumps({{"error": str(exc)}}))
else:
    print(json.dumps({{"files": [str(p) for p in found.files],
                      "skipped": {{s.path: s.reason for s in found.skipped}}}}))
"""
    return run_child(code, unprivileged=unprivileged)


def cli_in_child(*args: str, unprivileged: bool = False) -> Any:
    """`rag ARGS` in a child, fake embedder registered: {exit_code, stdout, stderr, exception}."""
    code = f"""
sys.path.insert(0, {str(HERE)!r})
from index_fixtures import cli, register_fake
register_fake("fake")
result = cli(*{list(args)!r})
print(json.dumps({{"exit_code": result.exit_code, "stdout": result.stdout,
                  "stderr": result.stderr, "exception": repr(result.exception)}}))
"""
    return run_child(code, unprivileged=unprivileged, RAG_EMBEDDER="fake")


def _child_main(argv: list[str]) -> int:
    """Entry point of the child process (see module docstring)."""
    from indexers.build import build_index
    from indexers.stores import local_layout
    from rag.core.config import load_settings
    from rag.core.errors import RagError

    register_fake("fake")
    name, path = argv[1], argv[2]
    pause_at = argv[argv.index("--pause-at") + 1] if "--pause-at" in argv else ""
    marker = os.environ.get("FAKE_MARKER", "")
    os.environ["FAKE_PAUSE_AT"] = pause_at
    if pause_at == "commit":
        real_commit = local_layout.commit_generation

        def paused_commit(index_dir: Path, tmp_dir: Path) -> Path:
            Path(marker).write_text(str(tmp_dir))
            time.sleep(600)
            return real_commit(index_dir, tmp_dir)

        local_layout.commit_generation = paused_commit
    try:
        report = build_index([path], name, load_settings(embedder="fake"))
    except RagError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    print(report.chunks_total)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
