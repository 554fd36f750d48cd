"""`rag search` and `rag ask` with `RAG_SERVER` pointed at a server that is stuck, or is not
`rag serve` at all: every wait and every read is bounded, and each failure is one line on
stderr with exit code 1 (2 for a setting that cannot be sent), never a hang, a traceback,
a memory blow-up or a borrowed exit code.

The servers are real sockets on 127.0.0.1 written here; the CLI runs in a subprocess, as a
user runs it, with a timeout of 1 s (`RAG_SERVER_TIMEOUT`) so that a wait ends quickly. The
subprocess timeout only guards the test run: no assertion is about time."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeGenerator
from index_fixtures import docs, fake_embedder  # noqa: F401 - fixtures
from test_serve import fake, notes, running  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
#: A guard for the test run only: a client that hangs fails the test instead of the run.
GUARD_S = 30
MIB = 1024 * 1024

# --- the CLI, in a subprocess -------------------------------------------------------------
# The peak is read from VmHWM, which starts afresh at exec: getrusage's ru_maxrss survives
# exec, so a child of a test run that holds gigabytes would report the run's own peak.
CHILD = """
import atexit, re, sys
def peak():
    with open("/proc/self/status") as status:
        kib = re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1)
    sys.stderr.write("MAXRSS:%s\\n" % kib)
atexit.register(peak)
from rag.cli.launch import main
sys.argv = ["rag", *sys.argv[1:]]
main()
"""


@dataclass
class Run:
    code: int
    out: str
    err: list[str]  # stderr's lines, without the peak-memory line
    maxrss_mib: float  # the process's peak resident memory


def cli(url: str, *args: str, **env: str) -> Run:
    """`rag ARGS` in its own process, sending its work to `url`."""
    environment = {
        **os.environ,
        "RAG_SERVER": url,
        "RAG_SERVER_TIMEOUT": "1",
        "PYTHONPATH": str(REPO),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        env=environment,
        cwd=REPO,  # `-c` puts the working folder first on the path
        timeout=GUARD_S,
    )
    err = done.stderr.decode("utf-8", "replace").splitlines()
    rss = [line for line in err if line.startswith("MAXRSS:")]
    maxrss = int(rss[-1].partition(":")[2]) / 1024 if rss else 0.0  # Linux: kilobytes
    return Run(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        [line for line in err if not line.startswith("MAXRSS:")],
        maxrss,
    )


def one_error(run: Run, said: str, url: str | None = None, code: int = 1) -> None:
    """The run failed with one line on stderr that says `said` (and names the server)."""
    assert run.code == code, run
    assert len(run.err) == 1, run.err
    assert run.err[0].startswith("Error: ") and said in run.err[0], run.err
    assert url is None or url in run.err[0], run.err


SEARCH = ("search", "aphids", "--index", "notes")
ASK = ("ask", "How often turn compost?", "--index", "notes")  # streamed: text output
ASK_JSON = (*ASK, "--json")

# --- hostile servers ----------------------------------------------------------------------
Reply = Callable[[socket.socket, bytes], None]


@dataclass
class Hostile:
    url: str
    requests: list[bytes]  # each request's head and body, as received


@contextmanager
def hostile(reply: Reply) -> Iterator[Hostile]:
    """A server on 127.0.0.1 that reads each request (head and body) and hands the
    connection to `reply`, then closes it once the client has."""
    requests: list[bytes] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connection: socket.socket = self.request
            connection.settimeout(GUARD_S)
            request = read_request(connection)
            requests.append(request)
            try:
                reply(connection, request)
                connection.shutdown(socket.SHUT_WR)
                while connection.recv(65536):  # until the client closes: no reset
                    pass
            except OSError:  # the client gave up midway: what is being tested
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Hostile(f"http://127.0.0.1:{server.server_address[1]}", requests)
    finally:
        server.shutdown()
        server.server_close()


def read_request(connection: socket.socket) -> bytes:
    request = b""
    while b"\r\n\r\n" not in request and (chunk := connection.recv(65536)):
        request += chunk
    head, _, body = request.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length and (chunk := connection.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def silence(connection: socket.socket) -> None:
    """Sends nothing more, for as long as the client stays (the guard at most)."""
    connection.recv(1)  # returns when the client closes; times out after the guard


def sends(raw: bytes, then: Reply | None = None) -> Reply:
    def reply(connection: socket.socket, request: bytes) -> None:
        connection.sendall(raw)
        if then is not None:
            then(connection, request)

    return reply


def head(content_type: str = "application/json", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"]
    lines += [f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items()]
    return ("".join(lines) + "Connection: close\r\n\r\n").encode()


def body(payload: Any, status: str = "200 OK", content_type: str = "application/json") -> bytes:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(raw)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + raw


def events(*pairs: tuple[str, Any]) -> bytes:
    """An SSE response: each (event, data) with data as JSON unless it is bytes."""
    parts = [head("text/event-stream")]
    for event, data in pairs:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        parts.append(f"event: {event}\n".encode() + b"data: " + raw + b"\n\n")
    return b"".join(parts)


def streams(size: int, piece: bytes = b"x" * MIB) -> Reply:
    """Sends `size` bytes of `piece`s (by default a huge line: no line end), then closes."""

    def reply(connection: socket.socket, request: bytes) -> None:
        for _ in range(size // len(piece)):
            connection.sendall(piece)

    return reply


def chunks_forever(size: int) -> Reply:
    """A chunked body of 1 MiB chunks that never ends (its last chunk never comes): `size`
    bytes, then nothing."""

    def reply(connection: socket.socket, request: bytes) -> None:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n" % MIB + b" " * MIB + b"\r\n"
        for _ in range(size // MIB):
            connection.sendall(chunk)
        silence(connection)

    return reply


def waits(connection: socket.socket, request: bytes) -> None:
    silence(connection)


SOURCE = {
    "id": 1,
    "title": "Aphids",
    "location": "notes/aphids.md#0",
    "origin": "index:notes",
    "score": 0.5,
    "text": "Ladybirds eat aphids.",
    "spans": None,
    "rerank_score": None,
}
TIMINGS = {
    "prompt_tokens": 10,
    "ttft_s": 0.1,
    "completion_tokens": 3,
    "tokens_per_s": 30.0,
    "total_s": 0.2,
}
ANSWER = {
    "question": "q",
    "answer": "Ladybirds [1].",
    "model": "m",
    "sources": [SOURCE],
    "warnings": [],
    "timings": TIMINGS,
}


def replaced(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`base` with `changes`; a change to `...` (Ellipsis) leaves the field out."""
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not ...}


# --- 5: a server that never answers -------------------------------------------------------
NOTHING = "sent nothing for 1 s"


@pytest.mark.parametrize(
    ("reply", "args", "said"),
    [
        (waits, SEARCH, NOTHING),
        (waits, ASK, NOTHING),
        (waits, ASK_JSON, NOTHING),
        # the head, then no body: a search's wait is for all of its answer
        (sends(head(Content_Length="100"), waits), SEARCH, "did not send its answer within 1 s"),
        (sends(head("text/event-stream"), waits), ASK, NOTHING),
        (sends(head(), waits), ASK_JSON, NOTHING),
    ],
    ids=["search", "ask", "ask-json", "search-head", "ask-head", "ask-json-head"],
)
def test_a_server_that_never_answers_is_one_error_line(
    reply: Reply, args: tuple[str, ...], said: str
) -> None:
    with hostile(reply) as server:
        run = cli(server.url, *args)
    one_error(run, f"rag serve at {server.url} {said}", server.url)
    assert "RAG_SERVER_TIMEOUT" in run.err[0]


def test_a_stream_that_stops_midway_keeps_what_came_and_is_one_error_line() -> None:
    with hostile(sends(events(("text", {"text": "Ladybirds"})), waits)) as server:
        run = cli(server.url, *ASK)
    assert run.out.startswith("Ladybirds")
    one_error(run, "sent nothing for 1 s", server.url)


def test_a_stream_may_take_longer_than_the_timeout_between_pieces_shorter() -> None:
    """The timeout bounds a silence, not the answer: a stream whose pieces come more often
    is read to its end, however long it takes in all."""
    pieces = 12

    def reply(connection: socket.socket, request: bytes) -> None:
        connection.sendall(head("text/event-stream"))
        for i in range(pieces):
            connection.sendall(b'event: text\ndata: {"text": "w%d "}\n\n' % i)
            threading.Event().wait(0.25)
        connection.sendall(b"event: answer\ndata: " + json.dumps(ANSWER).encode() + b"\n\n")

    with hostile(reply) as server:
        run = cli(server.url, *ASK, RAG_SERVER_TIMEOUT="2")
    assert run.code == 0, run
    assert run.out.startswith(" ".join(f"w{i}" for i in range(pieces)))
    assert "[1] Aphids" in run.out


def test_the_timeout_is_a_checked_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.core.config import load_settings
    from rag.core.errors import UsageError

    assert load_settings().server_timeout == 300
    for bad in ("0", "-1", "nan", "soon", "100000"):
        monkeypatch.setenv("RAG_SERVER_TIMEOUT", bad)
        with pytest.raises(UsageError, match="RAG_SERVER_TIMEOUT"):
            load_settings()


# --- 6: every read is bounded -------------------------------------------------------------
#: Peak memory a refused answer may cost the CLI in all: the interpreter and its imports
#: (about 60 MiB), and at most `MAX_ANSWER_BYTES` (64 MiB) read before refusing, with a
#: copy of it (150 MiB here at most). Reading the 200 MB whole cost several times that.
MAX_RSS_MIB = 256


@pytest.mark.parametrize(
    ("reply", "args"),
    [
        (sends(head("text/event-stream") + b"event: text\ndata: ", streams(200 * MIB)), ASK),
        (sends(head("text/event-stream"), streams(200 * MIB, b"data: " + b"x" * MIB + b"\n")), ASK),
        (sends(head("text/event-stream"), streams(200 * MIB, b": " + b"x" * MIB + b"\n")), ASK),
        (sends(head(), streams(200 * MIB)), SEARCH),
        (sends(head(), streams(200 * MIB)), ASK_JSON),
        (chunks_forever(200 * MIB), SEARCH),
        (sends(head(Content_Length=str(200 * MIB)), streams(200 * MIB)), SEARCH),
    ],
    ids=[
        "sse-line",
        "sse-event",
        "sse-comments",
        "json-body",
        "json-answer",
        "chunked",
        "content-length",
    ],
)
def test_an_answer_over_the_limit_is_one_error_line_in_bounded_memory(
    reply: Reply, args: tuple[str, ...]
) -> None:
    with hostile(reply) as server:  # the size ends these, before the deadline would
        run = cli(server.url, *args, RAG_SERVER_TIMEOUT="30")
    one_error(run, f"rag serve at {server.url} sent an answer over 64 MiB", server.url)
    assert 0 < run.maxrss_mib < MAX_RSS_MIB, run.maxrss_mib


# --- 11: a token or URL that cannot be sent -------------------------------------------
@pytest.mark.parametrize(
    "token",
    ["s3cret\ntoken", "s3cret\rtoken", "s3cret token", "s3cret\x1btoken", "s3cret\udcfftoken"],
    ids=["newline", "return", "space", "escape", "not-utf8"],
)
def test_a_token_that_cannot_be_sent_is_one_usage_error(token: str) -> None:
    with hostile(sends(body({"results": []}))) as server:
        runs = [cli(server.url, *args, RAG_SERVER_TOKEN=token) for args in (SEARCH, ASK)]
    for run in runs:
        one_error(run, "The server token (RAG_SERVER_TOKEN / server_token)", code=2)
        assert "s3cret" not in run.err[0]  # a secret is not printed
    assert server.requests == []


def test_a_token_beyond_latin1_is_sent_as_the_server_compares_it(
    fake: FakeGenerator,  # noqa: F811
    notes: str,  # noqa: F811
) -> None:
    token = "pässwört-€-tökén"  # `rag serve --token` takes it; http.client sends Latin-1
    with running(token=token) as url:
        answered = cli(url, *SEARCH, "-k", "1", RAG_SERVER_TOKEN=token)
        refused = cli(url, *SEARCH, RAG_SERVER_TOKEN="pässwört-€-other")
    assert answered.code == 0, answered
    assert answered.out.startswith("[1] ")
    one_error(refused, "This server needs `Authorization: Bearer TOKEN`", code=2)


@pytest.mark.parametrize(
    "path",
    ["/a\nb", "/a b", "/a\tb", "/a\x7fb", "/é"],
    ids=["newline", "space", "tab", "del", "non-ascii"],
)
def test_a_server_url_that_cannot_be_sent_is_one_usage_error(path: str) -> None:
    with hostile(sends(body({"results": []}))) as server:
        runs = [cli(server.url + path, *args) for args in (SEARCH, ASK)]
    for run in runs:
        one_error(run, "The server setting (RAG_SERVER) ", code=2)
    assert server.requests == []


# --- 12: an answer without the fields the commands print ----------------------------------
SEARCH_REPLIES = {
    "no-fields": ({"results": [{"id": 1}]}, "title, location, origin, score, text in results"),
    "score-text": ({"results": [replaced(SOURCE, score="high")]}, "score in results"),
    "id-text": ({"results": [replaced(SOURCE, id="1")]}, "id in results"),
    "bool-score": ({"results": [replaced(SOURCE, score=True)]}, "score in results"),
    "spans": ({"results": [replaced(SOURCE, spans=[[0]])]}, "spans in results"),
    "spans-text": ({"results": [replaced(SOURCE, spans=[["a", "b"]])]}, "spans in results"),
    "rerank": ({"results": [replaced(SOURCE, rerank_score="1")]}, "rerank_score in results"),
    "results-object": ({"results": {"id": 1}}, "without results"),
    "not-object": (["results"], "answered HTTP 200"),
}


@pytest.mark.parametrize("args", [SEARCH, (*SEARCH, "--json")], ids=["text", "json"])
@pytest.mark.parametrize(("reply", "said"), SEARCH_REPLIES.values(), ids=SEARCH_REPLIES)
def test_a_search_answer_without_the_printed_fields_is_one_error_line(
    reply: Any, said: str, args: tuple[str, ...]
) -> None:
    with hostile(sends(body(reply))) as server:
        run = cli(server.url, *args)
    one_error(run, said, server.url)
    assert run.out == ""


ASK_REPLIES = {
    "source-fields": (replaced(ANSWER, sources=[{"id": 1}]), "title, location"),
    "source-types": (replaced(ANSWER, sources=[replaced(SOURCE, title=5)]), "title in sources"),
    "no-timings": (replaced(ANSWER, timings=...), "timings"),
    "timings-fields": (
        replaced(ANSWER, timings={}),
        "prompt_tokens, ttft_s, completion_tokens, tokens_per_s, total_s in timings",
    ),
    "timings-types": (
        replaced(ANSWER, timings=replaced(TIMINGS, ttft_s="fast")),
        "ttft_s in timings",
    ),
    "warnings": (replaced(ANSWER, warnings=[5]), "warnings"),
    "model": (replaced(ANSWER, model=None), "model"),
}


@pytest.mark.parametrize(("reply", "said"), ASK_REPLIES.values(), ids=ASK_REPLIES)
def test_an_ask_answer_without_the_printed_fields_is_one_error_line(
    reply: dict[str, Any], said: str
) -> None:
    with hostile(sends(events(("text", {"text": "Ladybirds"}), ("answer", reply)))) as streamed:
        text = cli(streamed.url, *ASK)
    with hostile(sends(body(reply))) as plain:
        as_json = cli(plain.url, *ASK_JSON)
    one_error(text, said, streamed.url)
    assert text.out == "Ladybirds"  # what came before the answer
    one_error(as_json, said, plain.url)
    assert as_json.out == ""


def test_fields_a_newer_server_adds_are_left_out_and_terminal_escapes_shown() -> None:
    source = replaced(SOURCE, origin="index:\x1b[31mred", added="new")
    answer = replaced(ANSWER, sources=[source], model="m\x1b[2J", added={"x": 1})
    with hostile(sends(body({"results": [source], "added": 1}))) as server:
        searched = cli(server.url, *SEARCH)
    with hostile(sends(events(("text", {"text": "Ladybirds [1]."}), ("answer", answer)))) as server:
        asked = cli(server.url, *ASK)
    assert searched.code == 0 and asked.code == 0, (searched, asked)
    assert searched.out.startswith("[1] Aphids  (index:\\x1b[31mred, score 0.500)")
    assert "[1] Aphids — notes/aphids.md#0" in asked.out
    assert asked.err[-1].startswith("m\\x1b[2J: 10 prompt tokens")
    assert "\x1b" not in searched.out + asked.out + "".join(asked.err)


def test_the_source_shape_is_the_source_dataclass() -> None:
    from rag.core.types import Source
    from rag.serve.client_shapes import SOURCE_SHAPE

    assert list(SOURCE_SHAPE) == [f.name for f in fields(Source)]


def failure(exit_code: Any, message: Any = "The index is busy.") -> dict[str, Any]:
    return {"error": {"message": message, "type": "IndexBusy", "exit_code": exit_code}}


def error(exit_code: Any, message: Any = "The index is busy.") -> bytes:
    return body(failure(exit_code, message), "409 Conflict")


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [(77, 1), (0, 1), (-1, 1), (256, 1), ("2", 1), (True, 1), (None, 1), (1, 1), (2, 2)],
)
def test_a_server_s_exit_code_is_1_or_2(exit_code: Any, expected: int) -> None:
    for args in (SEARCH, ASK, ASK_JSON):
        with hostile(sends(error(exit_code))) as server:
            run = cli(server.url, *args)
        assert run.code == expected, (args, run)
        assert run.err == ["Error: The index is busy."], run.err


def test_a_server_s_error_is_one_line_however_it_is_written() -> None:
    message = "first line\nsecond line\r\n\x1b[31mthird " + "x" * 10_000
    with hostile(sends(events(("error", failure(2, message))))) as server:
        streamed = cli(server.url, *ASK)
    with hostile(sends(error(2, message))) as server:
        plain = cli(server.url, *SEARCH)
    for run in (streamed, plain):
        assert run.code == 2, run
        assert len(run.err) == 1 and run.err[0].startswith("Error: first line second line")
        assert len(run.err[0]) < 2100 and "\x1b" not in run.err[0]


# --- other answers that are not rag serve's -------------------------------------------------
OTHERS = {
    "text-not-text": (events(("text", {"text": 5})), ASK, "without text in a text event"),
    "event-a-list": (events(("answer", [1])), ASK, "sent an event that is not a JSON object"),
    "event-a-number": (events(("text", 5)), ASK, "sent an event that is not a JSON object"),
    "event-not-utf8": (events(("answer", b'{"a": "\xff"}')), ASK, "not JSON"),
    "body-not-utf8": (body(b'{"results": "\xff"}'), SEARCH, "not as rag serve does"),
    "redirect": (
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
        SEARCH,
        "answered HTTP 302",
    ),
    "short-body": (
        head(Content_Length="1000") + json.dumps({"results": []}).encode(),
        SEARCH,
        "ended the answer before it was complete",
    ),
    "no-answer-event": (events(("text", {"text": "a"})), ASK, "ended the answer before"),
    "bad-chunk": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        SEARCH,
        "ended the answer before it was complete",
    ),
    "endless-headers": (
        b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 1000 + b"\r\n",
        SEARCH,
        "got more than 100 headers",
    ),
    "huge-header": (
        b"HTTP/1.1 200 OK\r\nX-A: " + b"b" * 100_000 + b"\r\n\r\n",
        ASK_JSON,
        "header line",
    ),
}


@pytest.mark.parametrize(("raw", "args", "said"), OTHERS.values(), ids=OTHERS)
def test_other_answers_that_are_not_rag_serve_s_are_one_error_line(
    raw: bytes, args: tuple[str, ...], said: str
) -> None:
    with hostile(sends(raw)) as server:
        run = cli(server.url, *args)
    one_error(run, said, server.url)


def test_the_requests_name_this_host_and_their_type() -> None:
    """What `rag serve` checks before it answers: the Host it listens on (a foreign one
    is a DNS-rebinding page's) and a JSON body's Content-Type."""
    with hostile(sends(body({"results": []}))) as server:
        cli(server.url, *SEARCH)
        cli(server.url, *ASK_JSON, RAG_SERVER_TOKEN="s3cret-token")
    port = server.url.rsplit(":", 1)[1]
    search, ask = (request.split(b"\r\n\r\n")[0].split(b"\r\n") for request in server.requests)
    assert search[0].startswith(b"GET /v1/search?") and f"Host: 127.0.0.1:{port}".encode() in search
    assert ask[0] == b"POST /v1/ask HTTP/1.1" and b"Content-Type: application/json" in ask
    assert (
        f"Host: 127.0.0.1:{port}".encode() in ask and b"Authorization: Bearer s3cret-token" in ask
    )


# --- a server that is never silent and never done ---------------------------------------
def drips(raw: bytes, piece: bytes = b" ", every_s: float = 0.2) -> Reply:
    """Sends `raw`, then `piece` every `every_s` seconds (the guard at most): never silent
    for the 1 s timeout, never done."""

    def reply(connection: socket.socket, request: bytes) -> None:
        connection.sendall(raw)
        for _ in range(int(GUARD_S / every_s)):
            connection.sendall(piece)
            threading.Event().wait(every_s)

    return reply


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
DRIPS = {
    "search-body": (drips(head(Content_Length="1000000")), SEARCH, "its answer"),
    "search-chunked": (
        drips(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1\r\n \r\n"),
        SEARCH,
        "its answer",
    ),
    "search-head": (drips(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a"), SEARCH, "its answer"),
    "ask-head": (drips(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a"), ASK, "the head of its answer"),
    "ask-json-head": (
        drips(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a"),
        ASK_JSON,
        "the head of its answer",
    ),
    "ask-json-body": (drips(head(Content_Length="1000000")), ASK_JSON, "its answer"),
    "ask-stream-comments": (
        drips(head("text/event-stream"), b": keepalive\n\n"),
        ASK,
        "the next part of its answer",
    ),
    "ask-stream-one-event": (
        drips(head("text/event-stream") + b"event: text\ndata: ", b" "),
        ASK,
        "the next part of its answer",
    ),
}


@pytest.mark.parametrize(("reply", "args", "what"), DRIPS.values(), ids=DRIPS)
def test_a_server_sending_a_byte_at_a_time_is_one_error_line(
    reply: Reply, args: tuple[str, ...], what: str
) -> None:
    """The timeout is a deadline for the answer (a search's in all; an ask's head, then its
    body or each event), not a silence, which a byte every 0.2 s never is."""
    with hostile(reply) as server:
        run = cli(server.url, *args)
    one_error(run, f"rag serve at {server.url} did not send {what} within 1 s", server.url)
    assert "RAG_SERVER_TIMEOUT" in run.err[0]


@pytest.mark.parametrize("args", [SEARCH, ASK, ASK_JSON], ids=["search", "ask", "ask-json"])
def test_endless_100_continue_is_one_error_line(args: tuple[str, ...]) -> None:
    with hostile(drips(CONTINUE, CONTINUE)) as server:
        run = cli(server.url, *args, RAG_SERVER_TIMEOUT="30")  # not the deadline: the count
    one_error(run, "sent more than 5 `100 Continue` and no answer", server.url)


def test_a_few_100_continue_are_taken() -> None:
    with hostile(sends(CONTINUE * 3 + body({"results": [SOURCE]}))) as server:
        run = cli(server.url, *SEARCH)
    assert run.code == 0, run
    assert run.out.startswith("[1] Aphids")


# --- numbers JSON has not -----------------------------------------------------------------
NOT_FINITE = {
    "ask-nan": (
        body(json.dumps(ANSWER).replace('"ttft_s": 0.1', '"ttft_s": NaN').encode()),
        ASK_JSON,
    ),
    "ask-minus-infinity": (
        body(json.dumps(ANSWER).replace('"total_s": 0.2', '"total_s": -Infinity').encode()),
        ASK_JSON,
    ),
    "search-infinity": (
        body(json.dumps({"results": [SOURCE]}).replace("0.5", "Infinity").encode()),
        (*SEARCH, "--json"),
    ),
    "search-overflow": (
        body(json.dumps({"results": [SOURCE]}).replace("0.5", "1e999").encode()),
        (*SEARCH, "--json"),
    ),
    "stream-answer-nan": (
        events(("answer", json.dumps(ANSWER).replace("30.0", "NaN").encode())),
        ASK,
    ),
}


@pytest.mark.parametrize(("raw", "args"), NOT_FINITE.values(), ids=NOT_FINITE)
def test_nan_and_infinity_are_refused_so_json_output_stays_json(
    raw: bytes, args: tuple[str, ...]
) -> None:
    with hostile(sends(raw)) as server:
        run = cli(server.url, *args)
    one_error(run, "sent a number that is not finite (NaN or Infinity)", server.url)
    assert run.out == ""


# --- a decline after part of the answer -----------------------------------------------------
def declined(kind: str = "Forbidden") -> dict[str, Any]:
    return {"error": {"message": "no", "type": kind, "exit_code": 2}}


@pytest.mark.parametrize("kind", ["Forbidden", "ModelMismatch"])
def test_a_decline_after_streamed_text_is_an_error_not_a_local_answer(kind: str) -> None:
    """The server's part of an answer is on stdout already: a local answer after it would
    be two answers in one."""
    raw = events(("text", {"text": "PARTIAL-FROM-SERVER "}), ("error", declined(kind)))
    with hostile(sends(raw)) as server:
        run = cli(server.url, *ASK)
    one_error(run, "declined the question after it had begun to answer it", server.url)
    assert run.out == "PARTIAL-FROM-SERVER "


def test_a_decline_before_any_text_still_answers_in_this_process() -> None:
    with hostile(sends(events(("error", declined())))) as server:
        run = cli(server.url, *ASK)
    assert run.err[0] == (
        f"Warning: rag serve at {server.url} does not serve that index; answering in this process"
    ), run.err
