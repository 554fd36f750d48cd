"""`rag mcp`: the real server in a child process, driven by the MCP SDK's own stdio client.

The index is built with the hashing fake embedder `fake`, which a child process registers
by itself through the test plugin tests/plugins/pocketrag_fakes (an in-process
registration would not reach it); `ask` runs the bundled SmolLM2 for real.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from index_fixtures import REPO, cli, fake_embedder  # noqa: F401 - the fixture

FAKE = "fake"
TESTS = Path(__file__).resolve().parent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: Any) -> Path:  # noqa: F811
    """Index `notes` of two small docs; the web engine points at a port nobody listens on."""
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "compost.md").write_text(
        "# Compost\n\nTurn the compost heap every two weeks in summer so it stays aerobic.\n"
    )
    (docs / "roof.md").write_text(
        "# Roof\n\nWe decided to replace the slate roof in April with recycled slate.\n"
    )
    monkeypatch.setenv("RAG_EMBEDDER", FAKE)
    monkeypatch.setenv("RAG_ENGINE", "searxng")
    monkeypatch.setenv("RAG_ENGINE_SEARXNG_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("RAG_MAX_TOKENS", "24")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO), str(TESTS), str(TESTS / "plugins")])
    )
    result = cli("index", str(docs), "--name", "notes")
    assert result.exit_code == 0, result.output
    return docs


def _cli_error(*args: str) -> str:
    """The one line `rag ARGS` prints on stderr for its error, without `Error: `."""
    result = cli(*args)
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, result.output
    return lines[0].removeprefix("Error: ")


def _serve(*args: str, session: Callable[[Any], Awaitable[None]]) -> None:
    """Start `rag mcp ARGS` and run `session(client_session)` against it."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "rag.cli.launch", "mcp", *args], env=dict(os.environ)
    )

    async def main() -> None:
        with anyio.fail_after(600):  # a hung server fails the test instead of the run
            async with (
                stdio_client(params) as (read, write),
                ClientSession(read, write) as client,
            ):
                await client.initialize()
                await session(client)

    anyio.run(main)


def _text(result: Any) -> str:
    assert len(result.content) == 1 and result.content[0].type == "text"
    return result.content[0].text


def test_tools_search_ask_and_errors(notes: Path, smollm2_path: Path) -> None:
    unknown_index = _cli_error("search", "compost", "--index", "nope")
    empty_query = _cli_error("search", "   ", "--index", "notes")
    web_down = _cli_error("search", "compost", "--web")
    assert "searxng" in web_down.lower()

    async def session(client: Any) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"search_index", "search_web", "ask", "list_indexes"}
        schemas = {name: tool.input_schema for name, tool in tools.items()}
        assert schemas["search_index"]["required"] == ["query"]
        assert set(schemas["search_index"]["properties"]) == {"query", "index", "k"}
        assert set(schemas["search_web"]["properties"]) == {"query", "k"}
        assert schemas["ask"]["required"] == ["question"]
        assert set(schemas["ask"]["properties"]) == {"question", "index", "search"}
        assert schemas["list_indexes"]["properties"] == {}

        listed = await client.call_tool("list_indexes", {})
        assert not listed.is_error
        (row,) = listed.structured_content["indexes"]
        assert (row["name"], row["chunks"], row["files"], row["store"]) == ("notes", 2, 2, "local")
        assert row["embedder"] == FAKE
        assert _text(listed).startswith("notes: 2 chunks from 2 files")

        found = await client.call_tool(
            "search_index", {"query": "when to turn the compost heap", "index": "notes"}
        )
        assert not found.is_error, _text(found)
        compost = notes / "compost.md"
        assert _text(found).startswith(f"[1] Compost — {compost}#chunk0\n")
        assert "every two weeks in summer" in _text(found).split("\n\n")[0]
        first = found.structured_content["results"][0]
        assert (first["id"], first["origin"]) == (1, "index:notes")

        # Errors are tool errors carrying the CLI's one-line message; the server carries on.
        missing = await client.call_tool("search_index", {"query": "compost", "index": "nope"})
        assert missing.is_error and _text(missing) == unknown_index
        empty = await client.call_tool("search_index", {"query": "   ", "index": "notes"})
        assert empty.is_error and _text(empty) == empty_query
        web = await client.call_tool("search_web", {"query": "compost"})
        assert web.is_error and _text(web) == web_down
        bad_k = await client.call_tool("search_index", {"query": "compost", "k": 0})
        assert bad_k.is_error and "k must be" in _text(bad_k)
        empty_question = await client.call_tool("ask", {"question": " "})
        assert empty_question.is_error and "question is empty" in _text(empty_question)
        web_only = await client.call_tool(
            "ask", {"question": "compost?", "index": [], "search": True}
        )
        assert web_only.is_error and _text(web_only) == web_down

        # The server's --index is the default index: `ask` draws on it without being told.
        answered = await client.call_tool("ask", {"question": "When should I turn the compost?"})
        assert not answered.is_error, _text(answered)
        text = _text(answered)
        assert f"\n\nSources:\n[1] Compost — {compost}#chunk0" in text
        data = answered.structured_content
        assert data["model"] == "smollm2-135m" and data["answer"]
        assert text.startswith(data["answer"])
        assert data["sources"][0]["location"] == f"{compost}#chunk0"

        again = await client.call_tool("search_index", {"query": "slate roof", "k": 1})
        assert not again.is_error
        assert _text(again).startswith(f"[1] Roof — {notes / 'roof.md'}#chunk0\n")
        assert len(again.structured_content["results"]) == 1

    _serve("--index", "notes", "--model", "smollm2-135m", session=session)


def test_stdout_carries_only_the_protocol(notes: Path, smollm2_path: Path) -> None:
    """Raw JSON-RPC: every line the server writes to stdout is a protocol message, even
    while llama.cpp loads the model and generates."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "ask", "arguments": {"question": "What about the roof?"}},
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "search_index", "arguments": {"query": "roof", "index": "nope"}},
        },
    ]
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli.launch", "mcp", "-i", "notes", "-m", "smollm2-135m"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        replies: dict[int, Any] = {}
        lines = []
        assert server.stdin and server.stdout
        server.stdin.write(json.dumps(messages[0]) + "\n")
        server.stdin.flush()
        while 1 not in replies:
            line = server.stdout.readline()
            assert line, server.stderr.read() if server.stderr else ""
            lines.append(line)
            reply = json.loads(line)
            replies[reply.get("id")] = reply
        for message in messages[1:]:
            server.stdin.write(json.dumps(message) + "\n")
        server.stdin.flush()
        while not {2, 3} <= set(replies):
            line = server.stdout.readline()
            assert line, server.stderr.read() if server.stderr else ""
            lines.append(line)
            reply = json.loads(line)  # anything but JSON on stdout fails here
            replies[reply.get("id")] = reply
        server.stdin.close()
        assert server.wait(timeout=60) == 0
        assert server.stdout.read() == ""
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in lines)
    assert replies[2]["result"]["isError"] is False
    assert "Sources:\n[1] Roof" in replies[2]["result"]["content"][0]["text"]
    assert replies[3]["result"]["isError"] is True
    assert "Traceback" not in replies[3]["result"]["content"][0]["text"]


def test_an_unknown_default_index_stops_the_server_at_once() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli.launch", "mcp", "--index", "nope"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: No index named 'nope'")
    assert "Traceback" not in result.stderr


def test_a_cached_index_is_reopened_after_rag_index(notes: Path) -> None:
    """The server keeps an index open between calls, and sees a later `rag index` run."""
    from rag.core.config import load_settings
    from rag.mcp_server import Assistant

    assistant = Assistant(load_settings(), indexes=["notes"])
    first = assistant.retriever("index:notes")
    assert assistant.retriever("index:notes") is first
    text, _ = assistant.search("gooseberries", assistant.index_specs(None), 5)
    assert "Gooseberries" not in text

    (notes / "fruit.md").write_text("# Gooseberries\n\nPrune the gooseberries in winter.\n")
    assert cli("index", "--name", "notes").exit_code == 0
    text, data = assistant.search("gooseberries", assistant.index_specs(None), 5)
    assert assistant.retriever("index:notes") is not first
    assert text.startswith("[1] Gooseberries — ")
    assert data["results"][0]["location"] == f"{notes / 'fruit.md'}#chunk0"
