"""`rag mcp`'s stdio transport: JSON-RPC lines in and out, and every request answered.

It stands in for the MCP SDK's `stdio_server`, which drops what it cannot validate without
a reply: a line that is not JSON, a message that is not a valid request, a `tools/call`
whose `params` is not an object (each goes to the session as an exception, which only
logs it at debug level), and any text holding a lone surrogate (its JSON parser refuses
`"\\ud800"`). On the way out, pydantic cannot encode a lone surrogate (in a generator's
answer, say), which stops the SDK's writer: no reply goes out for good.

Here each line is read (at most `MAX_LINE` bytes) and checked before the SDK sees it, and
answered as JSON-RPC 2.0 says when it is wrong:

- not JSON: -32700 Parse error, with id null;
- not a request (not an object, a batch, no `"jsonrpc": "2.0"`, an id that is not a string
  or an integer, no method): -32600 Invalid Request, with its id when it has a usable one;
- `params` that is not an object, or text that is not Unicode (a lone surrogate, or bytes
  that are not UTF-8): -32602 Invalid params, with its id. Such text is refused rather than
  mended: a query that is not what the client meant should not be answered as if it were.

Malformed notifications and responses get no reply (JSON-RPC allows none): a line on
stderr. Blank lines are skipped. On the way out a lone surrogate is written as
`rag search --json` writes it (`\\xff` for an undecodable byte), so every message can be
encoded. When stdin ends (a client that pipes its requests in, then closes), the requests
still being answered are finished and their replies written before the server stops
(`_InFlight`): the SDK alone would cancel them unanswered. While serving, descriptor 0
reads the null device and descriptor 1 points at stderr (`rag.core.streams`), so neither a
child process nor a stray print touches the wire.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO

from rag.core.errors import RagError
from rag.core.safe_text import SURROGATE, escape_surrogates
from rag.core.streams import private_duplicate, stdout_to_stderr

__all__ = ["MAX_LINE", "encode", "parse_line", "serve_stdio"]

#: The longest line read (bytes, newline included); a longer one is refused and skipped.
MAX_LINE = 16 * 1024 * 1024
PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32602, -32603
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number"}
_JSON_TYPES[bool] = "true or false"
_TOO_LONG = b"too long"  # read_line's marker, told apart from a line by identity (`is`)


def serve_stdio(server: Any) -> None:
    """Run the MCP server `server` (an `MCPServer`) on stdin/stdout until the client closes
    stdin. The SDK's `run_stdio_async`, with this module's transport."""
    import anyio

    lowlevel = server._lowlevel_server  # what run_stdio_async runs (mcp 2.x)

    async def main() -> None:
        async with transport(wire_in, wire_out) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())

    with stdout_to_stderr() as real_stdout, _claim_stdin() as stdin_fd:
        if real_stdout is None or stdin_fd is None:
            raise RagError("rag mcp talks to its client on stdin and stdout; one is closed.")
        # closefd=False: a reading thread may outlive the transport; the process ends soon.
        wire_in = os.fdopen(stdin_fd, "rb", closefd=False)
        wire_out = os.fdopen(private_duplicate(real_stdout), "wb")
        with wire_out:
            anyio.run(main)


@contextlib.contextmanager
def _claim_stdin() -> Iterator[int | None]:
    """A private duplicate of descriptor 0 (the wire), while 0 itself reads the null
    device, so that nothing else (a child process) can consume the client's messages."""
    try:
        wire = private_duplicate(0)
    except OSError:
        yield None
        return
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        yield wire
    finally:
        os.dup2(wire, 0)


@contextlib.asynccontextmanager
async def transport(wire_in: BinaryIO, wire_out: BinaryIO) -> AsyncIterator[tuple[Any, Any]]:
    """The (read, write) streams of session messages that the SDK's server runs on."""
    import anyio
    from mcp.shared.message import SessionMessage

    read_send, read_receive = anyio.create_memory_object_stream[Any](0)
    write_send, write_receive = anyio.create_memory_object_stream[Any](0)
    wire = _Wire(wire_out)
    in_flight = _InFlight()

    async def read_loop() -> None:
        async with read_send:
            while True:
                line = await anyio.to_thread.run_sync(read_line, wire_in, abandon_on_cancel=True)
                if line is None:
                    await in_flight.drained(wire)  # then closing the stream ends the session
                    return
                message, reply = parse_line(line)
                if reply is not None:
                    await wire.send(reply)
                if message is not None:
                    in_flight.received(message)
                    await read_send.send(SessionMessage(message))

    async def write_loop() -> None:
        async with write_receive:
            async for session_message in write_receive:
                await wire.send(session_message.message)
                in_flight.answered(session_message.message)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(read_loop)
        tasks.start_soon(write_loop)
        try:
            yield read_receive, write_send
        finally:
            write_send.close()  # the writer ends once what was sent is out


class _InFlight:
    """The client's requests passed to the SDK and not answered yet, by id; a request the
    client cancels (`notifications/cancelled`) is never answered, so it is let go."""

    def __init__(self) -> None:
        self.ids: Counter[Any] = Counter()
        self.changed: Any = None  # an anyio.Event, made in the event loop

    def received(self, message: Any) -> None:
        method = getattr(message, "method", None)
        if method is None:  # a response to a request of ours
            return
        if getattr(message, "id", None) is not None:  # a request
            self.ids[message.id] += 1
        elif method == "notifications/cancelled":
            self._done((getattr(message, "params", None) or {}).get("requestId"))

    def answered(self, message: Any) -> None:
        if getattr(message, "method", None) is None:  # a result or an error
            self._done(getattr(message, "id", None))

    def _done(self, request_id: Any) -> None:
        if isinstance(request_id, (str, int)) and self.ids[request_id] > 0:
            self.ids[request_id] -= 1
            self.ids += Counter()  # drops ids at zero
            if self.changed is not None:
                self.changed.set()

    async def drained(self, wire: _Wire) -> None:
        """Wait until every request in flight is answered (or the client stopped reading)."""
        import anyio

        while self.ids and not wire.broken:
            self.changed = anyio.Event()
            await self.changed.wait()


def read_line(stream: BinaryIO) -> bytes | None:
    """The next line, at most MAX_LINE bytes (`_TOO_LONG` for a longer one, whose rest is
    skipped); None at the end of input."""
    line = stream.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) <= MAX_LINE:
        return line
    while line and not line.endswith(b"\n"):
        line = stream.readline(MAX_LINE)
    return _TOO_LONG


class _Wire:
    """Whole lines to the client, one writer at a time; a client that went away ends the
    writing, not the server (which stops when stdin closes)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.broken = False

    async def send(self, message: Any) -> None:
        import anyio

        await anyio.to_thread.run_sync(self._write, encode(message))

    def _write(self, payload: bytes) -> None:
        with self.lock:
            if self.broken:
                return
            try:
                self.stream.write(payload)
                self.stream.flush()
            except (OSError, ValueError):
                self.broken = True


# --- checking what comes in ---------------------------------------------------------------


def parse_line(line: bytes) -> tuple[Any | None, Any | None]:
    """(the message to pass on to the SDK, the error reply to send): either may be None."""
    from mcp_types import jsonrpc_message_adapter

    if line is _TOO_LONG:
        return None, _error(None, INVALID_REQUEST, f"a message is longer than {MAX_LINE} bytes")
    text = line.decode("utf-8", "surrogateescape")  # bytes not UTF-8: lone surrogates
    if not text.strip():
        return None, None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, _error(None, PARSE_ERROR, f"the line is not JSON ({exc})", "Parse error")
    if isinstance(data, list):
        return None, _error(None, INVALID_REQUEST, "batches are not supported; one per line")
    if not isinstance(data, dict):
        return None, _error(None, INVALID_REQUEST, "a message must be a JSON object")
    if "method" in data and "id" not in data:
        return _notification(data), None
    if "method" not in data and "id" in data and ("result" in data or "error" in data):
        return _response(data), None
    request_id = data.get("id")
    if not _usable_id(request_id):
        return None, _error(None, INVALID_REQUEST, "the id must be a string or an integer")
    problem = _request_problem(data)
    if problem is not None:
        code, message = problem
        return None, _error(request_id, code, message)
    try:
        return jsonrpc_message_adapter.validate_python(data, by_name=False), None
    except ValueError as exc:  # what the SDK's models refuse beyond the checks above
        detail = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, _error(request_id, INVALID_REQUEST, detail)


def _usable_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and not SURROGATE.search(value)


def _request_problem(data: dict[str, Any]) -> tuple[int, str] | None:
    """Why a request with a usable id cannot be served: (code, message); None if it can."""
    if data.get("jsonrpc") != "2.0":
        return INVALID_REQUEST, 'a message must say "jsonrpc": "2.0"'
    if not isinstance(data.get("method"), str):
        return INVALID_REQUEST, "a request needs a method, as a string"
    params = data.get("params")
    if params is not None and not isinstance(params, dict):
        return INVALID_PARAMS, f"params must be an object, got {_JSON_TYPES[type(params)]}"
    where = _bad_text(data)
    if where is not None:  # in params (a value or a key there): the params are invalid
        inside = where.removeprefix(_KEY_IN)
        code = INVALID_PARAMS if inside.split(".")[0].split("[")[0] == "params" else INVALID_REQUEST
        return code, (
            f"{where} is not valid Unicode text (a lone surrogate, or bytes that are not UTF-8)"
        )
    return None


def _notification(data: dict[str, Any]) -> Any | None:
    """A notification the SDK can take, or None (logged: a notification gets no reply)."""
    from mcp_types import JSONRPCNotification

    where = _bad_text(data)
    try:
        if where is not None:
            raise ValueError(f"{where} is not valid Unicode text")
        return JSONRPCNotification.model_validate(data, by_name=False)
    except ValueError as exc:
        _warn(f"ignored a malformed notification {data.get('method')!r}: {_first_line(exc)}")
        return None


def _response(data: dict[str, Any]) -> Any | None:
    """A response to one of the server's requests, or None (logged: it gets no reply)."""
    from mcp_types import jsonrpc_message_adapter

    where = _bad_text(data)
    try:
        if where is not None:
            raise ValueError(f"{where} is not valid Unicode text")
        return jsonrpc_message_adapter.validate_python(data, by_name=False)
    except ValueError as exc:
        _warn(f"ignored a malformed response: {_first_line(exc)}")
        return None


_KEY_IN = "a key in "


def _bad_text(value: Any) -> str | None:
    """Where the first string (or key) holding a lone surrogate is: `params.arguments.query`,
    or `a key in params.arguments`."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                return path or "the message"
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                here = f"{path}.{key}" if path else str(key)
                if SURROGATE.search(key):
                    return f"{_KEY_IN}{path or 'the message'}"
                stack.append((here, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


def _warn(message: str) -> None:
    """One plain line on stderr (the SDK's log handler would wrap it in a table)."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"Warning: {message.encode('ascii', 'backslashreplace').decode()}\n")
        sys.stderr.flush()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _error(request_id: Any, code: int, detail: str, kind: str = "") -> Any:
    from mcp_types import ErrorData, JSONRPCError

    kind = kind or {INVALID_REQUEST: "Invalid Request", INVALID_PARAMS: "Invalid params"}[code]
    return JSONRPCError(
        jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=f"{kind}: {detail}.")
    )


# --- encoding what goes out ---------------------------------------------------------------


def encode(message: Any) -> bytes:
    """One JSON-RPC message as a line of UTF-8, whatever its text holds. A reply that still
    cannot be written becomes an Internal error for its request (details on stderr), so
    the request is answered all the same."""
    try:
        return _encode(message)
    except Exception:  # noqa: BLE001 - a bug: the client must still get its one reply
        traceback.print_exc(file=sys.stderr)
        request_id = getattr(message, "id", None)
        if request_id is None or getattr(message, "method", None) is not None:
            return b""  # a notification or a request of ours: nothing waits for it
        detail = "the reply could not be encoded; the details are on the server's stderr"
        return _encode(_error(request_id, INTERNAL_ERROR, detail, "Internal error"))


def _encode(message: Any) -> bytes:
    data = message.model_dump(mode="json", by_alias=True, exclude_unset=True)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # Lone surrogates occur only inside JSON strings; there `\\xff` decodes to `\xff`.
    return (escape_surrogates(text, backslash="\\\\") + "\n").encode("utf-8")
