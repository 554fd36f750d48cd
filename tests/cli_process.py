"""`rag` as a user runs it: a real process, its exit code and its two streams.

The child registers the test embedders first, then runs `rag.cli.app.main` with the given
arguments: `fake` (tests/index_fixtures.py), `fake-wide` (the same, chunks sized as for
MiniLM's 256 tokens), `flaky` (the fake, failing on its
$FLAKY_AT-th call to `embed`, as an embedding server that drops a connection would) and
`growing` (the fake, appending $GROW_BYTES of text to $GROW_FILE when it is loaded: a
file that grows while `rag index` reads it, at a known moment). A child still running after
`timeout` seconds fails the test: a hang (a FIFO read, a device) is a failure, never a
stuck test run.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from index_fixtures import HERE, child_env, unprivileged_prefix

_CHILD = """
import os, sys
sys.path.insert(0, sys.argv[1])
from index_fixtures import FakeEmbedder, register_fake
from rag.core import plugins

register_fake("fake")
register_fake("fake-wide", max_tokens=256)  # chunks sized as for MiniLM (230 tokens)


class Flaky(FakeEmbedder):
    calls = 0

    def embed(self, texts):
        Flaky.calls += 1
        if Flaky.calls == int(os.environ.get("FLAKY_AT", "0")):
            raise RuntimeError("connection reset by the embedding server")
        return super().embed(texts)


def growing(*args, **kwargs):
    with open(os.environ["GROW_FILE"], "a", encoding="utf-8") as handle:
        line = "appendedword grew while it was read\\n"
        handle.write(line * (int(os.environ["GROW_BYTES"]) // len(line)))
    return FakeEmbedder("growing")


plugins.register(plugins.Part("embedder", "flaky", lambda *a, **k: Flaky("flaky")))
plugins.register(plugins.Part("embedder", "growing", growing))
from rag.cli.app import main

sys.argv = ["rag", *sys.argv[2:]]
main()
"""


def rag(
    *argv: str, timeout: float = 120.0, unprivileged: bool = False, cwd: str | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`rag ARGV` in a fresh process (RAG_EMBEDDER=fake unless `env` says otherwise);
    `unprivileged`: without root's power to ignore file modes (`unprivileged_prefix`)."""
    prefix = unprivileged_prefix() if unprivileged else []
    try:
        return subprocess.run(
            [*prefix, sys.executable, "-c", _CHILD, str(HERE), *argv],
            env=child_env(**{"RAG_EMBEDDER": "fake", **env}),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`rag {' '.join(argv)}` hung for {timeout}s")


_BARS = ("Reading files", "Embedding chunks", "Writing index")


def _bar(line: str) -> bool:
    return line.startswith(_BARS)


def one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The one `Error: ...` line a failed command prints (progress bars aside), checked."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and not _bar(line)]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]
