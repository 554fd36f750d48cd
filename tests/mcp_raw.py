"""A raw JSON-RPC client for `rag mcp` in a child process: lines in, JSON lines out.

Unlike the MCP SDK's client, it writes whatever bytes a test gives it (a buggy or hostile
client's), and it fails on any line the server writes to stdout that is not JSON. A read
that would wait for ever (a reply that never comes, a server that stopped writing) fails
after `WATCHDOG_S` instead of hanging the run.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from native import fail_if_crashed

WATCHDOG_S = 120
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": "init",
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


class RawServer:
    """`rag mcp ARGS` in a child process, spoken to in raw lines; every line it writes to
    stdout must be JSON (anything else fails the test), and is kept in `replies`."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.stderr_path = tmp_path / "mcp-stderr.txt"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rag.cli.launch", "mcp", *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        self.replies: list[dict[str, Any]] = []
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.pings = 0

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def write(self, line: bytes | dict[str, Any]) -> None:
        assert self.process.stdin
        raw = json.dumps(line).encode() if isinstance(line, dict) else line
        self.process.stdin.write(raw + b"\n")
        self.process.stdin.flush()

    def reply(self) -> dict[str, Any] | None:
        """The next message on stdout (None: stdout closed)."""
        try:
            line = self.lines.get(timeout=WATCHDOG_S)
        except queue.Empty:
            pytest.fail(f"no reply within {WATCHDOG_S} s; stderr:\n{self.stderr()[-3000:]}")
        if not line:
            return None
        message = json.loads(line)  # anything but JSON on stdout fails here
        assert message["jsonrpc"] == "2.0", message
        self.replies.append(message)
        return message

    def until(self, *ids: Any) -> dict[Any, dict[str, Any]]:
        """Read until each of `ids` is answered: {id: reply}."""
        wanted, seen = set(ids), {}
        while not wanted <= set(seen):
            message = self.reply()
            assert message is not None, f"stdout closed; stderr:\n{self.stderr()[-3000:]}"
            seen[message.get("id")] = message
        return seen

    def exchange(self, line: bytes | dict[str, Any]) -> list[dict[str, Any]]:
        """Write `line`, then a ping; the replies that came before the ping's. The server
        answers a malformed line as it reads it, so its reply is always among them."""
        self.pings += 1
        ping = f"ping-{self.pings}"
        self.write(line)
        self.write({"jsonrpc": "2.0", "id": ping, "method": "ping"})
        before = []
        while True:
            message = self.reply()
            assert message is not None, f"stdout closed; stderr:\n{self.stderr()[-3000:]}"
            if message.get("id") == ping:
                return before
            before.append(message)

    def initialize(self) -> None:
        self.write(INITIALIZE)
        assert "result" in self.until("init")["init"]
        self.write(INITIALIZED)

    def close(self) -> int:
        """Close stdin: the server answers what is pending and exits; its exit code."""
        assert self.process.stdin
        self.process.stdin.close()
        while self.reply() is not None:
            pass
        code = self.process.wait(timeout=WATCHDOG_S)
        fail_if_crashed(code, "rag mcp", self.stderr())
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def call(request_id: Any, name: str, arguments: Any) -> dict[str, Any]:
    """A `tools/call` request for tool `name`."""
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
