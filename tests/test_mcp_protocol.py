"""`rag mcp` over raw stdio: whatever a client writes, each request gets exactly one reply.

The server runs in a child process and is written raw lines, as a buggy or hostile
client might send them (tests/mcp_raw.py); replies are read back one JSON line at a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from index_fixtures import REPO, cli, fake_embedder  # noqa: F401 - the fixture
from mcp_raw import WATCHDOG_S, RawServer, call
from throwaway_plugins import GENERATOR, plugin_package

TESTS = Path(__file__).resolve().parent
MAX_LINE = 16 * 1024 * 1024  # the longest line `rag mcp` reads (rag.mcp_stdio.MAX_LINE)


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: Any) -> Path:  # noqa: F811
    """Index `notes` of one small doc, with the fake embedder a child registers (tests/plugins)."""
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "compost.md").write_text("# Compost\n\nTurn the compost heap every two weeks.\n")
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO), str(TESTS), str(TESTS / "plugins")])
    )
    assert cli("index", str(docs), "--name", "notes").exit_code == 0
    return docs


SEARCH = b'"method": "tools/call", "params": {"name": "search_index", "arguments": '
#: (what the client writes, the id of the error reply, its JSON-RPC code)
MALFORMED = [
    (b"this is not json", None, -32700),
    (b'{"jsonrpc": "2.0", "id": "cut", "method": "tools/list"', None, -32700),
    (b'{"jsonrpc": "2.0", "id": "array", "method": "tools/call", "params": [1]}', "array", -32602),
    (b'{"jsonrpc": "2.0", "id": "text", "method": "tools/call", "params": "q"}', "text", -32602),
    (b'{"jsonrpc": "2.0", "id": "lone", ' + SEARCH + b'{"query": "caf\\ud800"}}}', "lone", -32602),
    (b'{"jsonrpc": "2.0", "id": "bytes", ' + SEARCH + b'{"query": "caf\xe9"}}}', "bytes", -32602),
    # a lone surrogate in a key: inside params, the params are invalid; outside, the request
    (b'{"jsonrpc": "2.0", "id": "key", ' + SEARCH + b'{"qu\\ud800ery": "x"}}}', "key", -32602),
    (b'{"jsonrpc": "2.0", "id": "topkey", "method": "ping", "x\\ud800": 1}', "topkey", -32600),
    (b'{"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}', None, -32600),
    (b'{"jsonrpc": "2.0", "id": null, "method": "tools/list"}', None, -32600),
    (b'{"jsonrpc": "1.0", "id": "old", "method": "tools/list"}', "old", -32600),
    (b'{"jsonrpc": "2.0", "id": "nomethod"}', "nomethod", -32600),
    (b'[{"jsonrpc": "2.0", "id": "batch", "method": "tools/list"}]', None, -32600),
    (b'"just a string"', None, -32600),
    (b'{"jsonrpc": "2.0", "id": "huge", "method": "ping", "params": {"pad": "'
     + b"x" * MAX_LINE + b'"}}', None, -32600),
]  # fmt: skip


def test_every_malformed_request_gets_one_json_rpc_error_and_the_server_goes_on(
    notes: Path, tmp_path: Path
) -> None:
    server = RawServer(tmp_path, "--index", "notes")
    try:
        server.initialize()
        for line, request_id, code in MALFORMED:
            replies = server.exchange(line)
            assert [(r.get("id"), r.get("error", {}).get("code")) for r in replies] == [
                (request_id, code)
            ], line[:120]
            assert "Traceback" not in replies[0]["error"]["message"]
        # a malformed notification gets no reply (JSON-RPC allows none), only a line on stderr
        bad_note = {"jsonrpc": "2.0", "method": "notifications/initialized", "params": [1]}
        assert server.exchange(json.dumps(bad_note).encode()) == []

        # what the SDK itself rejects is answered too, and a good call still works
        server.write({"jsonrpc": "2.0", "id": "null", "method": "tools/call", "params": None})
        server.write(call("args", "search_index", "compost"))
        server.write(call("good", "search_index", {"query": "when to turn the compost"}))
        seen = server.until("null", "args", "good")
        assert seen["null"]["error"]["code"] == -32602
        assert seen["args"]["error"]["code"] == -32602
        text = seen["good"]["result"]["content"][0]["text"]
        assert text.startswith(f"[1] Compost — {notes / 'compost.md'}#chunk0\n")
        assert server.close() == 0
    finally:
        server.kill()
    answered = Counter(r.get("id") for r in server.replies)
    ids = [request_id for _, request_id, _ in MALFORMED if request_id is not None]
    assert all(answered[i] == 1 for i in [*ids, "init", "null", "args", "good"]), answered
    assert answered[None] == sum(1 for _, request_id, _ in MALFORMED if request_id is None)
    assert "Warning: ignored a malformed notification 'notifications/initialized'" in (
        server.stderr()
    )


def test_text_that_utf8_cannot_encode_still_goes_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generator's answer with lone surrogates: the reply carries them escaped as
    `rag ask --json` prints them, instead of the server's writer dying on them."""
    folder = plugin_package(
        tmp_path / "plugins",
        "surro",
        'ANSWER = "The caf\\udce9 opens at nine \\ud83d."\n'
        + GENERATOR
        + """
def register(registry):
    make = lambda rest, settings, options: FixedGenerator("surro:" + rest)
    registry.register(registry.Part("generator", "surro", make))
""",
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(REPO)]))
    ask = [sys.executable, "-m", "rag.cli.launch", "ask", "When?", "-m", "surro:x", "--json"]
    as_cli = subprocess.run(ask, capture_output=True, timeout=WATCHDOG_S)
    assert as_cli.returncode == 0, as_cli.stderr
    cli_answer = json.loads(as_cli.stdout)["answer"]
    assert cli_answer == "The caf\\xe9 opens at nine \\ud83d."

    server = RawServer(tmp_path, "-m", "surro:x")
    try:
        server.initialize()
        server.write(call("ask", "ask", {"question": "When?", "index": [], "search": False}))
        server.write({"jsonrpc": "2.0", "id": "after", "method": "ping"})
        seen = server.until("ask", "after")
        result = seen["ask"]["result"]
        assert result["isError"] is False
        assert result["content"][0]["text"] == cli_answer
        assert result["structuredContent"]["answer"] == cli_answer
        assert server.close() == 0
    finally:
        server.kill()


#: A web engine `slow` whose search takes a second: a call still in flight when stdin ends.
SLOW_ENGINE = """
import time


class Engine:
    name = "slow"

    def search(self, query, max_results):
        from rag.web.base import WebResult

        time.sleep(1.0)
        return [WebResult(title="A slow result", url="https://slow.example/", snippet="Hi.")]

    def cache_identity(self):
        return {}


def register(registry):
    registry.register(registry.Part("engine", "slow", lambda argument, settings, options: Engine()))
"""


def test_requests_in_flight_when_stdin_closes_are_answered_before_the_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that pipes its requests in and closes stdin (`printf ... | rag mcp`): before,
    the SDK cancelled the calls still running at EOF and exited 0 without answering them.
    A request the client cancelled stays unanswered, and does not hold the exit."""
    folder = plugin_package(tmp_path / "plugins", "slow", SLOW_ENGINE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(REPO)]))
    monkeypatch.setenv("RAG_ENGINE", "slow")
    server = RawServer(tmp_path, "--search")
    try:
        server.initialize()
        server.write({"jsonrpc": "2.0", "id": "p1", "method": "ping"})
        server.write(call("web", "search_web", {"query": "hello"}))
        server.write(call("gone", "search_web", {"query": "never mind"}))
        cancel = {"requestId": "gone", "reason": "the user moved on"}
        server.write({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel})
        server.write(call("list", "list_indexes", {}))
        assert server.close() == 0
    finally:
        server.kill()
    answered = Counter(r.get("id") for r in server.replies)
    assert answered == Counter({"init": 1, "p1": 1, "web": 1, "list": 1}), answered
    [web] = [r for r in server.replies if r.get("id") == "web"]
    assert web["result"]["content"][0]["text"].startswith("[1] A slow result — https://slow")


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"query": "compost", "k": "five"}, "k: Input should be a valid integer"),
        ({"query": "compost", "k": 5.5}, "k: Input should be a valid integer"),
        ({"query": ["compost"]}, "query: Input should be a valid string (got an array)"),
        ({"k": 3}, "query: Field required"),
    ],
)
def test_arguments_of_the_wrong_type_are_one_line(
    notes: Path, tmp_path: Path, arguments: dict, problem: str
) -> None:
    """Before: the SDK's pydantic text, several lines ending with a documentation URL."""
    server = RawServer(tmp_path, "--index", "notes")
    try:
        server.initialize()
        server.write(call("bad", "search_index", arguments))
        result = server.until("bad")["bad"]["result"]
        assert server.close() == 0
    finally:
        server.kill()
    assert result["isError"] is True
    [text] = [c["text"] for c in result["content"]]
    assert "\n" not in text and "https://" not in text, text
    assert text.startswith("Invalid arguments for search_index: ") and problem in text, text
