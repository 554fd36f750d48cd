"""The CLI through a running `rag serve` (`RAG_SERVER`): `rag search` and `rag ask` print
what they print in-process, carry the server's errors as their own, fall back to this
process (saying so once) when the server is not reachable, and stay light (no numpy,
faiss, onnxruntime, torch or llama_cpp for a `rag search` through the server)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeGenerator
from index_fixtures import docs, fake_embedder  # noqa: F401 - fixtures
from test_serve import fake, notes, running  # noqa: F401 - fixtures
from typer.testing import CliRunner
from web_servers import free_port

from rag.cli.app import app

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "faiss", "onnxruntime", "torch", "llama_cpp", "sentence_transformers")


def rag(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each command the server answered (a call of the client that returned)."""
    from rag.serve.client import Client

    answered: list[str] = []
    for name in ("search", "ask"):
        real = getattr(Client, name)

        def spy(self: Client, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            result = _real(self, *args, **kw)
            answered.append(_name)
            return result

        monkeypatch.setattr(Client, name, spy)
    return answered


def both_ways(
    calls: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch, **server: Any
) -> tuple[list[Any], list[Any]]:
    """Each call run in this process, then through a real `rag serve` started with `server`."""
    local = [rag(*args) for args in calls]
    with running(**server) as url:
        monkeypatch.setenv("RAG_SERVER", url)
        remote = [rag(*args) for args in calls]
    return local, remote


def same_shape(note: str) -> str:
    """A timings line with its numbers blanked: they differ from run to run."""
    return re.sub(r"\d+(\.\d+)?", "N", note)


SEARCHES = [
    ("search", "aphids ladybirds", "--index", "notes", "-k", "2"),
    ("search", "aphids ladybirds", "--index", "notes", "--index", "code", "--json"),
]
ASKS = [
    ("ask", "How often turn compost?", "--index", "notes", "--model", "fake:"),
    ("ask", "How often turn compost?", "--index", "notes", "--model", "fake:", "--json"),
    ("ask", "Who wrote Emma?", "--model", "fake:"),  # closed-book: no index sent
]


def test_search_through_the_server_prints_what_in_process_prints(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
    served: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server's defaults, which a request overrides:
    local, remote = both_ways(SEARCHES, monkeypatch, indexes=("notes", "code"), search=True)
    assert served == ["search", "search"]
    for here, there in zip(local, remote, strict=True):
        assert here.exit_code == there.exit_code == 0, (here.output, there.output)
        assert there.stdout == here.stdout and there.stderr == here.stderr
    assert "[1]" in local[0].stdout and '"results"' in local[1].stdout


def test_ask_through_the_server_prints_what_in_process_prints(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
    served: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    local, remote = both_ways(ASKS, monkeypatch, indexes=("notes",), search=False)
    assert served == ["ask"] * len(ASKS)
    for here, there in zip(local, remote, strict=True):
        assert here.exit_code == there.exit_code == 0, (here.output, there.output)
        if here.stdout.startswith("{"):
            mine, theirs = json.loads(here.stdout), json.loads(there.stdout)
            assert set(mine["timings"]) == set(theirs.pop("timings"))
            mine.pop("timings")
            assert theirs == mine
        else:
            assert there.stdout == here.stdout  # the answer, then the same sources list
            assert same_shape(there.stderr) == same_shape(here.stderr)
    assert local[0].stdout.startswith("Jane Austen wrote it [1].\n\nSources:\n[1] ")
    assert "prompt tokens" in local[0].stderr


def test_server_errors_are_the_cli_errors(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
    served: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commands = [
        ("search", "q", "--index", "nope"),
        ("ask", "q?", "--index", "nope", "--model", "fake:"),
        ("ask", "   ", "--model", "fake:", "--json"),
    ]
    local, remote = both_ways(commands, monkeypatch)
    for here, there in zip(local, remote, strict=True):
        assert here.exit_code == there.exit_code == 2
        assert there.stdout == here.stdout == ""
        assert there.stderr == here.stderr and there.stderr.startswith("Error: ")
        assert len(there.stderr.splitlines()) == 1
    assert "nope" in local[0].stderr


def test_a_closed_port_warns_once_and_answers_in_process(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
    served: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = [rag(*args) for args in (SEARCHES[0], ASKS[1])]
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("RAG_SERVER", url)
    remote = [rag(*args) for args in (SEARCHES[0], ASKS[1])]
    assert served == []
    warning = f"Warning: rag serve at {url} is not reachable; answering in this process\n"
    for here, there in zip(local, remote, strict=True):
        assert there.exit_code == here.exit_code == 0
        assert there.stdout.split('"timings"')[0] == here.stdout.split('"timings"')[0]
    assert remote[0].stderr.count("not reachable") == 1 and remote[0].stderr.startswith(warning)
    assert "not reachable" not in remote[1].stderr  # said once in a process


def test_what_the_server_cannot_do_is_done_in_process(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
    served: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running(indexes=("notes",)) as url:
        monkeypatch.setenv("RAG_SERVER", url)
        other_model = rag("ask", "Who wrote Emma?", "--model", "fake:other")
        other_index = rag("search", "fib", "--index", "code")
        by_path = rag("search", "fib", "--index", str(Path(os.environ["RAG_HOME"]) / "x"))
    assert served == []
    assert other_model.exit_code == 0 and other_model.stdout.startswith("Jane Austen")
    assert f"rag serve at {url} runs another model" in other_model.stderr
    assert other_index.exit_code == 0 and "fib" in other_index.stdout
    assert "does not serve that index" in other_index.stderr
    assert by_path.exit_code == 2 and "rag serve" not in by_path.stderr  # opened here


def test_what_is_longer_than_a_server_takes_is_answered_in_process(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
    served: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rag.serve.config import MAX_QUESTION_CHARS

    words = "aphids ladybirds compost é " * (MAX_QUESTION_CHARS // 20)
    assert len(words) > MAX_QUESTION_CHARS
    calls = [
        ("search", "aphids " + "x" * 9000, "--index", "notes", "-k", "1"),  # a long URL
        ("search", words, "--index", "notes", "-k", "1"),
        ("ask", words, "--index", "notes", "--model", "fake:"),
    ]
    local, remote = both_ways(calls, monkeypatch)
    assert served == []  # none went to the server, which would refuse them (400, 414)
    for here, there in zip(local, remote, strict=True):  # the ask is too long for the fake
        assert (there.exit_code, there.stdout, there.stderr) == (
            here.exit_code,
            here.stdout,
            here.stderr,
        )
    assert [r.exit_code for r in remote] == [0, 0, 2]


def test_launch_does_not_prefetch_a_model_when_a_server_answers(
    fake: FakeGenerator,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import rag.generators
    from rag.cli import launch

    monkeypatch.setattr(rag.generators, "prefetch", lambda model: pytest.fail("prefetched"))
    monkeypatch.setenv("RAG_SERVER", f"http://127.0.0.1:{free_port()}")  # closed: loads here
    monkeypatch.setattr(sys, "argv", ["rag", "ask", "Who wrote Emma?", "-m", "fake:"])
    assert launch.server_configured()
    with pytest.raises(SystemExit) as exited:
        launch.main()
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith("Jane Austen wrote it [1].") and "not reachable" in err
    monkeypatch.delenv("RAG_SERVER")
    assert not launch.server_configured()


CHILD = """
import atexit, sys
HEAVY = {heavy!r}
atexit.register(lambda: sys.stderr.write(
    "HEAVY:" + ",".join(m for m in HEAVY if m in sys.modules) + "\\n"))
from rag.cli.launch import main
sys.argv = ["rag", *sys.argv[1:]]
main()
"""


def test_a_search_through_the_server_imports_nothing_heavy(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
) -> None:
    args = ["search", "aphids ladybirds", "--index", "notes", "-k", "2"]
    local = rag(*args)
    with running() as url:
        env = dict(os.environ, RAG_SERVER=url, PYTHONPATH=str(REPO))
        children = [
            subprocess.run(
                [sys.executable, "-c", CHILD.format(heavy=HEAVY), *command],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            for command in (args, ["ask", "Who wrote Emma?", "-m", "fake:"])
        ]
    for child in children:
        assert child.returncode == 0, child.stderr
        assert child.stderr.splitlines()[-1] == "HEAVY:", child.stderr
    assert children[0].stdout == local.stdout
    assert children[1].stdout.startswith("Jane Austen wrote it [1].")


def test_search_warnings_come_through_the_server(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
    served: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conftest import FakeRetriever

    from rag import web
    from rag.core.errors import SearchUnavailable

    down = FakeRetriever("web", error=SearchUnavailable("The web search engine is down."))
    monkeypatch.setattr(web, "build_web_retriever", lambda settings: down)
    args = ("search", "aphids", "--index", "notes", "--web")
    local = rag(*args)
    with running(search=True) as url:  # a server without --search refuses the web (403)
        monkeypatch.setenv("RAG_SERVER", url)
        remote = rag(*args)
    assert served == ["search"]
    assert remote.exit_code == local.exit_code == 0
    assert "engine is down" in local.stderr
    assert remote.stdout == local.stdout and remote.stderr == local.stderr


def test_the_token_is_sent(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
    served: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ("search", "aphids", "--index", "notes")
    with running(token="s3cret-token") as url:
        monkeypatch.setenv("RAG_SERVER", url)
        refused = rag(*args)
        monkeypatch.setenv("RAG_SERVER_TOKEN", "s3cret-token")
        answered = rag(*args)
    assert refused.exit_code == 2 and refused.stderr.startswith("Error: This server needs")
    assert answered.exit_code == 0 and served == ["search"] and "[1]" in answered.stdout


@pytest.mark.parametrize(
    "url",
    [
        "localhost:8765",
        "http://[::1",
        "ftp://x",
        "http://127.0.0.1:99999",
        "http:// 127.0.0.1:8765",  # http.client refuses the host when it builds a connection
        "http://" + "a" * 64 + ".localhost:8765",  # a label IDNA cannot encode: at the lookup
    ],
)
def test_a_server_setting_that_is_not_a_url_is_one_usage_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_SERVER", url)
    for args in (("search", "q", "--index", "notes"), ("ask", "q?", "--model", "fake:")):
        result = rag(*args)
        assert result.exit_code == 2, result.exception
        assert result.stderr.startswith("Error: The server setting (RAG_SERVER) ")
        assert len(result.stderr.splitlines()) == 1


@contextmanager
def answering(raw: bytes) -> Iterator[str]:
    """A server on 127.0.0.1 that reads a request's head and sends `raw`, whatever it is,
    then closes; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed: the block is over
                return
            with connection:
                connection.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request and (chunk := connection.recv(65536)):
                    request += chunk
                connection.sendall(raw)
                connection.shutdown(socket.SHUT_WR)
                while connection.recv(65536):  # the rest of a body: no reset on close
                    pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def http_reply(body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
    return f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


DEEP = b"[" * 100_000 + b"]" * 100_000  # JSON nested deeper than `json` can parse


@pytest.mark.parametrize(
    ("raw", "args", "said"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", ("search", "q", "--index", "notes"), "not answer in HTTP"),
        (b"<html>not HTTP</html>", ("ask", "q?", "--model", "fake:"), "not answer in HTTP"),
        (http_reply(DEEP), ("search", "q", "--index", "notes"), "not as rag serve does"),
        (
            http_reply(b"event: answer\ndata: " + DEEP + b"\n\n", "text/event-stream"),
            ("ask", "q?", "--model", "fake:"),
            "sent an event that is not JSON",
        ),
        (http_reply(b"{}"), ("search", "q", "--index", "notes"), "answered without results"),
        (
            http_reply(
                b'{"answer": "x", "model": "m", "sources": [1], "warnings": [], "timings": {}}'
            ),
            ("ask", "q?", "--model", "fake:", "--json"),
            "sources as objects",
        ),
    ],
    ids=["ssh", "http-0.9", "deep-json", "deep-json-event", "empty-search", "bad-answer"],
)
def test_an_answer_that_is_not_rag_serve_s_is_one_error_line(
    raw: bytes, args: tuple[str, ...], said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with answering(raw) as url:
        monkeypatch.setenv("RAG_SERVER", url)
        result = rag(*args)
    assert result.exit_code == 1, result.exception
    assert result.stderr.startswith("Error: ") and said in result.stderr
    assert len(result.stderr.splitlines()) == 1 and url in result.stderr
