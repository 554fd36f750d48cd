"""`rag serve` against peers that hold what they take: streams nobody reads, idle
connections by the thousand, queues of asks longer than any thread pool, a link on another
site, warnings that outgrow a header, and inputs that look valid but are not (a loopback
`Host` in IPv6 dress, a token no client can send, a question with nothing visible in it).

Each case goes through a real server on 127.0.0.1: in this process (`test_serve.running`)
where a fake model must be watched, or `rag serve` in a child process where the open-file
limit is the point. The deadlines here guard the test run; none is a claim about speed."""

# ruff: noqa: F811 - the fixtures imported from test_serve are the tests' parameters

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeGenerator, returning
from index_fixtures import docs, fake_embedder  # noqa: F401 - fixtures
from native import fail_if_crashed, run_rag
from test_serve import SlowGenerator, fake, notes, running  # noqa: F401 - fixtures
from test_serve_guard import JSON_TYPE, Reply, assert_refused, port_of, rag_env, send
from throwaway_plugins import GENERATOR, plugin_package
from web_servers import free_port, json_reply, local_server, searxng_results

from rag.core.types import Message, Timings
from rag.generators.base import Generation, TimedStream

REPO = Path(__file__).resolve().parents[1]
#: How long a test waits for what the server should do by itself (a guard, not a claim).
PATIENCE_S = 60


def eventually(condition: Callable[[], bool], what: str, patience: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def post_raw(
    port: int, path: str, body: dict[str, Any], rcvbuf: int | None = None
) -> socket.socket:
    """A POST sent whole on a raw socket that is then never read (a small receive
    buffer: the server's writes back up after a few KB)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    data = json.dumps(body).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def health(url: str) -> Reply:
    return send(url, "GET", "/healthz")


# --- F1: a stream nobody reads ------------------------------------------------------------


class Flood(FakeGenerator):
    """Answers `pieces` pieces of about 8 KB each (no two words alike: a repeated phrase
    is cut as a loop), one every `delay` s; counts the pieces pulled and the generations
    ended (run out or stopped)."""

    def __init__(self, pieces: int = 4000, delay: float = 0.002) -> None:
        super().__init__(context_size=8192)
        self.pieces, self.delay = pieces, delay
        self.pulled = 0
        self.ended = 0

    def generate(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Generation:
        self.calls.append(list(messages))

        def pieces() -> Iterator[tuple[str, int]]:
            try:
                for i in range(self.pieces):
                    time.sleep(self.delay)
                    self.pulled += 1
                    yield " ".join(f"p{i}w{j}" for j in range(800)) + " ", 1  # no loop to cut
            finally:
                self.ended += 1

        timings = Timings(prompt_tokens=self.count_prompt_tokens(messages))
        return Generation(TimedStream(timings).wrap(pieces()), timings)


def test_a_stream_nobody_reads_is_cut_off_and_frees_its_slot(register_part) -> None:  # noqa: ANN001
    """Two clients that send a streaming request and never read took both slots for as
    long as they kept their sockets open (/healthz 503 for minutes); now each is aborted
    once it has taken no bytes for the send deadline, and its generation stops."""
    flood = Flood()
    register_part("generator", "fake", returning(flood), argument="ANY")
    chat = {"messages": [{"role": "user", "content": "Tell a long story"}], "stream": True}
    with running(max_in_flight=2, send_timeout_s=1.0) as url:
        port = port_of(url)
        readers = [
            post_raw(port, "/v1/ask", {"question": "Tell a long story", "stream": True}, 4096),
            post_raw(port, "/v1/chat/completions", chat, 4096),
        ]
        try:
            eventually(lambda: flood.pulled > 0, "the first stream started")
            eventually(lambda: len(flood.calls) == 2, "the first let the second have the model")
            eventually(lambda: flood.ended == 2, "the second stream ended too")
            eventually(lambda: health(url).status == 200, "the slots came free")
            assert flood.pulled < 2 * flood.pieces  # both stopped, neither ran to its end
        finally:
            for sock in readers:
                sock.close()
        flood.pieces = 2
        after = httpx.post(f"{url}/v1/ask", json={"question": "then"}, timeout=60)
    assert after.status_code == 200, after.text


def test_a_model_name_too_long_to_echo_is_400(fake: FakeGenerator) -> None:
    """`model` is echoed in every chunk of a stream: 60,000 characters of it made each
    token a 60 KB write."""
    chat = {"messages": [{"role": "user", "content": "Who wrote Emma?"}]}
    with running() as url:
        replies = [
            send(url, "POST", "/v1/chat/completions", {**chat, **extra}, JSON_TYPE)
            for extra in ({"model": "m" * 60_000}, {"model": "m" * 60_000, "stream": True})
        ]
        named = send(url, "POST", "/v1/chat/completions", {**chat, "model": "m" * 256}, JSON_TYPE)
    for reply in replies:
        assert_refused(reply, 400, "UsageError")
        assert "60000 characters" in reply.error["message"]
    assert named.status == 200 and json.loads(named.body)["model"] == "m" * 256
    assert len(fake.calls) == 1


# --- F2: idle connections and the open-file limit ------------------------------------------

#: A generator plugin for a `rag serve` child that, when the model is loaded, holds
#: FDTEST_HOLD descriptors open: a process whose files take most of its limit.
FD_PLUGIN = (
    'ANSWER = "Jane Austen wrote it."\n'
    + GENERATOR
    + """
import os

HELD = []


def register(registry):
    def make(rest, settings, options):
        HELD.extend(open(os.devnull) for _ in range(int(os.environ.get("FDTEST_HOLD", "0"))))
        return FixedGenerator("fdtest:" + rest)

    registry.register(registry.Part("generator", "fdtest", make))
"""
)


@contextmanager
def rag_serve_limited(
    tmp_path: Path, soft: int, hard: int, hold: int = 0
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`rag serve -m fdtest:x` in a child whose open-file limit is (soft, hard); yields its
    URL, the child and the file its stderr goes to (a file: a flood cannot block it)."""
    folder = plugin_package(tmp_path / "plugins", "fdtest", FD_PLUGIN)
    env = rag_env(tmp_path) | {
        "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)]),
        "RAG_RERANKER": "none",
        "FDTEST_HOLD": str(hold),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.stderr"
    with log.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "rag.cli.app", "serve", "-m", "fdtest:x", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert child.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "rag serve did not start"
            try:
                health(url)
                break
            except OSError:
                time.sleep(0.1)
        yield url, child, log
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        fail_if_crashed(child.returncode, "rag serve", log.read_text(errors="replace"))


def idle_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections that never send a byte (connecting without waiting)."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        with suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        socks.append(sock)
    return socks


def health_within(url: str, seconds: float) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=seconds)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def test_idle_connections_cannot_use_up_the_file_descriptors(tmp_path: Path) -> None:
    """Under `ulimit -n 256`, 300 connections that say nothing used to take every
    descriptor: accepts failed (a traceback each, thousands a second) and /healthz waited
    in the kernel's queue until the head deadline closed them. Past the cap, the longest
    idle connection is closed for each new one."""
    with rag_serve_limited(tmp_path, 256, 256) as (url, _, log):
        flood = idle_connections(port_of(url), 300)
        try:
            time.sleep(1)  # the flood is accepted (or queued) first
            status = health_within(url, 15)
        finally:
            for sock in flood:
                sock.close()
    assert status == 200
    stderr = log.read_text(errors="replace")
    assert "Traceback" not in stderr and "Too many open files" not in stderr, stderr[-2000:]


def test_out_of_descriptors_is_one_line_and_the_server_recovers(tmp_path: Path) -> None:
    """A process whose own files hold most of its limit runs out below the cap: each
    failed accept was a traceback (asyncio tries `backlog` of them per wake-up); now a
    line says so now and then, the idle connections are closed, and /healthz answers."""
    with rag_serve_limited(tmp_path, 256, 256, hold=200) as (url, _, log):
        flood = idle_connections(port_of(url), 200)
        try:  # until the server has met the limit: on a busy machine it accepts slowly
            deadline = time.monotonic() + 30
            while "Could not accept" not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.2)
            # Connections accepted under a second ago are not closed for room: until the
            # flood's age past that, a new one may be told 503 (busy), then it answers.
            deadline = time.monotonic() + 15
            while (status := health_within(url, 15)) == 503 and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            for sock in flood:
                sock.close()
    assert status == 200
    lines = log.read_text(errors="replace").splitlines()
    assert "Traceback (most recent call last):" not in lines, lines[:20]
    said = [line for line in lines if "Could not accept" in line]
    assert 1 <= len(said) <= 2 and len(lines) < 10, lines[:20]


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc/PID/limits")
def test_rag_serve_raises_its_open_file_limit_to_the_hard_limit(tmp_path: Path) -> None:
    """A shell's `ulimit -Sn 256` (or the common default of 1024) is raised to the hard
    limit at start: idle connections then need four times as many to matter."""
    with rag_serve_limited(tmp_path, 256, 2048) as (_, child, _):
        limits = Path(f"/proc/{child.pid}/limits").read_text()
    [line] = [line for line in limits.splitlines() if line.startswith("Max open files")]
    assert line.split()[3:5] == ["2048", "2048"], line


# --- F3: asks queued on the model hold no thread --------------------------------------------


def test_queued_asks_leave_the_worker_threads_to_searches(
    register_part,  # noqa: ANN001
    notes: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50 plain asks queued on one model used to hold 40 worker threads (all anyio has)
    while they waited: a search, which needs no model, then waited for them, and /healthz
    said `waiting: 39`. Now the queue is on the event loop: every queued ask is counted,
    the search is answered meanwhile, and an ask whose client leaves leaves the queue."""
    monkeypatch.setenv("RAG_RERANKER", "none")
    slow = SlowGenerator(words=100_000, delay=0.01)  # the first answer runs until stopped
    register_part("generator", "fake", returning(slow), argument="ANY")
    with running() as url:
        port = port_of(url)
        asks = [post_raw(port, "/v1/ask", {"question": f"Say w{i}", "index": []})
                for i in range(50)]  # fmt: skip
        try:
            eventually(lambda: json.loads(health(url).body)["waiting"] == 49, "49 asks queued")
            found = httpx.get(f"{url}/v1/search", params={"q": "compost", "index": "notes"},
                              timeout=PATIENCE_S)  # fmt: skip
        finally:
            for sock in asks:
                sock.close()
        eventually(lambda: json.loads(health(url).body)["waiting"] == 0, "the queue emptied")
        eventually(lambda: slow.active == 0, "the generation stopped")
        slow.words = 2
        after = httpx.post(f"{url}/v1/ask", json={"question": "then y"}, timeout=PATIENCE_S)
    assert found.status_code == 200, found.text
    assert "compost" in found.text.lower()
    assert after.status_code == 200 and after.json()["answer"] == "y0 y1"
    assert slow.most_active == 1  # still one generation at a time


# --- F7: a link on another site; web search the server was not started for -----------------

NAVIGATION = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
              "Sec-Fetch-Dest": "document", "User-Agent": "Mozilla/5.0"}  # fmt: skip


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A SearxNG look-alike on 127.0.0.1, the configured engine; records its requests."""
    reply = json_reply(searxng_results(("Compost", "https://example.org/c", "Turn it weekly.")))
    with local_server({"/search": lambda request: reply}) as server:
        monkeypatch.setenv("RAG_ENGINE", "searxng")
        monkeypatch.setenv("RAG_ENGINE_SEARXNG_URL", server.url)
        yield server


def test_a_link_on_another_site_opens_no_api_route(
    fake: FakeGenerator, notes: str, engine: Any
) -> None:
    """A cross-site link to `/v1/search?q=...&web=true&fetch=10` made the server search the
    web and fetch pages for that site (200), and leave the results in the browser."""
    with running(search=True) as url:
        paths = [
            "/v1/search?q=attacker+query&web=true&fetch=10&index=",
            "/v1/indexes",
            "/healthz",
            "/v1/models",
            "/v1/search?q=compost&index=notes&web=false",
        ]
        for path in paths:
            for site in ("cross-site", "same-site"):
                got = send(url, "GET", path, None, {**NAVIGATION, "Sec-Fetch-Site": site})
                assert_refused(got, 403, "ForbiddenHost")
                assert b"compost" not in got.body.lower()
        page = send(url, "GET", "/", None, NAVIGATION)
        typed = send(url, "GET", paths[-1], None, {**NAVIGATION, "Sec-Fetch-Site": "none"})
    assert engine.requests == []
    assert page.status != 403  # the page itself may be linked to
    assert typed.status == 200  # an address the user typed is not another site's


def test_web_search_needs_a_server_started_with_search(
    fake: FakeGenerator, notes: str, engine: Any
) -> None:
    """A server started for its indexes searched the web for anyone who asked."""
    chat = {"messages": [{"role": "user", "content": "compost?"}]}
    asks = [
        ("GET", "/v1/search?q=compost&web=true&index=notes", None),
        ("GET", "/v1/search?q=compost&web=1", None),
        ("POST", "/v1/ask", {"question": "compost?", "search": True}),
        ("POST", "/v1/ask", {"question": "compost?", "search": True, "stream": True}),
        ("POST", "/v1/chat/completions", {**chat, "pocketrag": {"search": True}}),
        ("POST", "/v1/chat/completions", {**chat, "pocketrag": {"search": True}, "stream": True}),
    ]
    with running(indexes=("notes",)) as url:
        for method, path, body in asks:
            got = send(url, method, path, body, JSON_TYPE if body else {})
            assert_refused(got, 403, "SearchNotServed")
            assert "--search" in got.error["message"]
        assert engine.requests == [] and fake.calls == []
        indexes_only = send(url, "GET", "/v1/search?q=compost&web=false&index=notes")
    with running(search=True) as url:
        searched = send(url, "GET", "/v1/search?q=compost&web=true&index=")
    assert indexes_only.status == 200
    assert searched.status == 200 and len(engine.requests) == 1


# --- O1: warnings that outgrow a header -----------------------------------------------------


def test_many_long_warnings_still_fit_the_header(
    fake: FakeGenerator, notes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten results whose 7 KB URLs could not be fetched made a 70 KB warnings header (and
    ten of 3.5 KB did, when a warning named its URL twice): `rag search` through
    `RAG_SERVER` failed "got more than 65536 bytes when reading header line". Each warning
    is now cut to 500 characters, the header to 8 KB."""
    from typer.testing import CliRunner

    from rag.cli.app import app
    from rag.serve.client import WARNINGS_HEADER

    urls = [f"http://127.0.0.1:9/{i}/" + "a" * 7000 for i in range(10)]
    snippets = [" ".join(f"compost{i}x{j}" for j in range(8)) for i in range(10)]  # distinct
    results = searxng_results(*[(f"Page {i}", u, snippets[i]) for i, u in enumerate(urls)])
    with local_server({"/search": lambda request: json_reply(results)}) as engine:
        monkeypatch.setenv("RAG_ENGINE", "searxng")
        monkeypatch.setenv("RAG_ENGINE_SEARXNG_URL", engine.url)
        with running(search=True) as url:
            connection = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=60)
            connection.request("GET", "/v1/search?q=compost&web=true&fetch=10&k=10&index=")
            response = connection.getresponse()
            header, body = response.getheader(WARNINGS_HEADER), json.loads(response.read())
            connection.close()
            monkeypatch.setenv("RAG_SERVER", url)
            cli = CliRunner().invoke(app, ["search", "compost", "--web", "--fetch", "10",
                                           "-k", "10", "--json"])  # fmt: skip
    assert response.status == 200 and len(body["results"]) == 10
    assert header is not None and header.isascii() and len(header) <= 8 * 1024
    warnings = json.loads(header)
    assert len(warnings) == 10 and all(len(w) <= 500 for w in warnings)
    assert all(w.startswith("Could not read http://127.0.0.1:9/") for w in warnings)
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout) == body
    assert cli.stderr.count("Could not read http://127.0.0.1:9/") == 10


def test_the_warnings_header_says_how_many_it_left_out() -> None:
    from rag.serve.routes import warnings_header

    header = warnings_header([f"Could not read page {i}: " + "x" * 2000 for i in range(40)])
    warnings = json.loads(header)
    assert len(header) <= 8 * 1024 and header.isascii()
    assert all(len(w) <= 500 for w in warnings)
    more = int(warnings[-1].split()[2])
    assert warnings[-1] == f"… and {more} more warnings." and len(warnings) - 1 + more == 40
    assert json.loads(warnings_header(["one"])) == ["one"]


# --- O4: inputs that look valid -------------------------------------------------------------


def test_an_ipv4_mapped_loopback_host_is_this_server(fake: FakeGenerator) -> None:
    """`[::ffff:127.0.0.1]` is 127.0.0.1 (Python before 3.13 calls it not loopback)."""
    with running() as url:
        port = port_of(url)
        hosts = [f"[::ffff:127.0.0.1]:{port}", "[::ffff:7f00:1]", f"[::ffff:127.0.0.2]:{port}"]
        replies = [send(url, "GET", "/healthz", None, {"Host": host}) for host in hosts]
        page = {"Host": f"[::ffff:127.0.0.1]:{port}",
                "Origin": f"http://[::ffff:127.0.0.1]:{port}"}  # fmt: skip
        same_origin = send(url, "POST", "/v1/ask", {"question": "Who?"}, {**page, **JSON_TYPE})
        other = send(url, "GET", "/healthz", None, {"Host": "[::ffff:10.0.0.1]"})
    assert [r.status for r in replies] == [200, 200, 200]
    assert same_origin.status == 200
    assert_refused(other, 403, "ForbiddenHost")


@pytest.mark.parametrize(
    "token",
    ["abcdefgh\x01ijk", "abcdefgh\x7fijk", "abcdefgh\u200bijk", "abcdefgh\udcffijk", "abcd efgh"],
)
def test_a_token_no_client_can_send_is_refused_at_start(tmp_path: Path, token: str) -> None:
    """A token with a control, zero-width or undecodable character (a byte that is not
    UTF-8, from the shell) was taken, though no client can send it: every request would
    be 401 (or, for the byte, the server would fail on its first request). The port given
    is taken, so a server that gets past the check fails to bind instead of serving."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        by_flag = run_rag(["serve", "-m", "x", "--port", port, "--token", token],
                          env=rag_env(tmp_path), timeout=120)  # fmt: skip
        env = rag_env(tmp_path) | {"RAG_SERVE_TOKEN": token}
        by_env = run_rag(["serve", "-m", "x", "--port", port], env=env, timeout=120)
    for done in (by_flag, by_env):
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "at least 8 visible characters" in lines[0], lines


def test_a_question_with_nothing_visible_is_empty(fake: FakeGenerator, notes: str) -> None:
    """NUL and zero-width spaces passed as a question (the model was asked nothing)."""
    invisible = "\x00\u200b\u200b\ufeff\u2060 \t"
    said = {"role": "user", "content": invisible}
    with running() as url:
        replies = [
            send(url, "POST", "/v1/ask", {"question": invisible}, JSON_TYPE),
            send(url, "POST", "/v1/ask", {"question": invisible, "stream": True}, JSON_TYPE),
            send(url, "POST", "/v1/chat/completions", {"messages": [said]}, JSON_TYPE),
            send(url, "GET", "/v1/search?q=%00%E2%80%8B%E2%80%8B&index=notes"),
        ]
        visible = send(url, "POST", "/v1/ask", {"question": "\u200bWho?\x00"}, JSON_TYPE)
    for reply in replies:
        assert_refused(reply, 400, "UsageError")
        assert " is empty" in reply.error["message"]
    assert visible.status == 200 and len(fake.calls) == 1
