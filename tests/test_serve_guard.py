"""`rag serve` against hostile callers: a web page the user visits (DNS rebinding, requests
from another origin, text/plain posts), a peer that stalls or sends what no parser should
take (lone surrogates, JSON nested 30,000 deep), a port already taken, and a chat history
too long for the prompt. Every request goes to a real server on 127.0.0.1 through
http.client or a raw socket, so Host, Origin and Content-Type are exactly what a browser
or an attacker would send."""

# ruff: noqa: F811 - the fixtures imported from test_serve are the tests' parameters

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeGenerator, child_environ
from index_fixtures import docs, fake_embedder  # noqa: F401 - fixtures
from native import fail_if_crashed, run_rag
from test_serve import fake, notes, running  # noqa: F401 - fixtures
from web_servers import free_port

from rag.core.types import Message

JSON_TYPE = {"Content-Type": "application/json"}
ASK = {"question": "How often turn compost?"}
CHAT = {"messages": [{"role": "user", "content": "How often turn compost?"}]}
#: Every endpoint, the streaming ones too: (method, path, JSON body or None).
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/search?q=compost&index=notes", None),
    ("GET", "/v1/indexes", None),
    ("GET", "/healthz", None),
    ("GET", "/v1/models", None),
    ("POST", "/v1/ask", ASK),
    ("POST", "/v1/ask", {**ASK, "stream": True}),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/chat/completions", {**CHAT, "stream": True}),
]


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        return self.json["error"]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def send(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request with exactly these headers (http.client adds Host only when not given)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    connection = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=60)
    try:
        connection.request(method, path, body=data, headers=headers or {})
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, response.read(), headers)
    finally:
        connection.close()


def route_headers(body: object, **more: str) -> dict[str, str]:
    return {**(JSON_TYPE if body is not None else {}), **more}


def assert_refused(reply: Reply, status: int, kind: str) -> None:
    assert reply.status == status, reply
    error = reply.error
    assert error["type"] == kind and error["exit_code"] == 2, error
    assert "\n" not in error["message"] and b"Traceback" not in reply.body
    assert not any(name.startswith("access-control-") for name in reply.headers)  # no CORS


# --- a hostile web page: Host, Origin, Sec-Fetch-Site, Content-Type -------------------------


def test_a_page_through_a_rebound_name_is_refused_on_every_route(
    fake: FakeGenerator, notes: str, rag_home: Path
) -> None:
    """DNS rebinding: a page at evil.example points its name at 127.0.0.1 and reads."""
    with running() as url:
        port = port_of(url)
        hosts = [f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}",
                 f"127.0.0.1.evil.example:{port}", f"evil.localhost:{port}"]  # fmt: skip
        for host in hosts:
            for method, path, body in [*ROUTES, ("GET", "/", None)]:
                got = send(url, method, path, body, route_headers(body, Host=host))
                assert_refused(got, 403, "ForbiddenHost")
                assert b"compost" not in got.body.lower() and str(rag_home).encode() not in got.body
        # the browser-like request of the issue: its own name and its own origin
        for method, path, body in ROUTES:
            got = send(url, method, path, body, route_headers(
                body, Host=f"evil.example:{port}", Origin=f"http://evil.example:{port}"
            ))  # fmt: skip
            assert_refused(got, 403, "ForbiddenHost")
        assert fake.calls == []  # the model never ran
        for method, path, body in ROUTES:  # named as itself, every route answers
            got = send(url, method, path, body, route_headers(body, Host=f"127.0.0.1:{port}"))
            assert got.status == 200, (path, got)


def test_a_page_of_another_origin_is_refused_on_every_route(
    fake: FakeGenerator, notes: str
) -> None:
    with running() as url:
        port = port_of(url)
        origins = ["http://evil.example", f"http://evil.example:{port}", "null",
                   f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port + 1}",
                   f"http://localhost:{port}", "http://127.0.0.1", "file://",
                   f"http://127.0.0.1:{port}/page", "not an origin"]  # fmt: skip
        for origin in origins:
            for method, path, body in ROUTES:
                got = send(url, method, path, body, route_headers(
                    body, Host=f"127.0.0.1:{port}", Origin=origin
                ))  # fmt: skip
                assert_refused(got, 403, "ForbiddenHost")
        assert fake.calls == []


def test_a_cross_site_request_without_origin_is_refused(fake: FakeGenerator, notes: str) -> None:
    """An <img> or <script> tag on another site sends no Origin, but says Sec-Fetch-Site."""
    with running() as url:
        search = "/v1/search?q=compost&index=notes"
        for site in ("cross-site", "same-site"):
            for mode in ("no-cors", "cors"):
                got = send(url, "GET", search, None, {"Sec-Fetch-Site": site,
                                                      "Sec-Fetch-Mode": mode})  # fmt: skip
                assert_refused(got, 403, "ForbiddenHost")
            got = send(url, "POST", "/v1/ask", ASK, route_headers(ASK, **{"Sec-Fetch-Site": site}))
            assert_refused(got, 403, "ForbiddenHost")
        assert fake.calls == []
        # The server's own pages and an address typed in the bar work; a link on another
        # site does not (tests/test_serve_adversarial.py: it opens only the page at /).
        for site, mode in [("same-origin", "cors"), ("none", "navigate")]:
            got = send(url, "GET", search, None, {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode})
            assert got.status == 200, (site, mode, got)


def test_a_body_that_is_not_sent_as_json_is_415_and_runs_nothing(
    fake: FakeGenerator, notes: str
) -> None:
    """A page may post text/plain (or a form) anywhere without asking first; not JSON."""
    with running() as url:
        for content_type in [None, "text/plain", "text/plain;charset=UTF-8",
                             "application/x-www-form-urlencoded", "multipart/form-data; b=x",
                             "application/jsonp", "application/json-seq"]:  # fmt: skip
            headers = {"Content-Type": content_type} if content_type else {}
            for path, body in [("/v1/ask", ASK), ("/v1/chat/completions", CHAT),
                               ("/v1/ask", {**ASK, "stream": True})]:  # fmt: skip
                got = send(url, "POST", path, body, headers)
                assert_refused(got, 415, "UnsupportedMediaType")
        # ...and from another origin it is refused before the body is looked at
        got = send(url, "POST", "/v1/ask", ASK, {"Content-Type": "text/plain",
                                                 "Origin": "http://evil.example"})  # fmt: skip
        assert_refused(got, 403, "ForbiddenHost")
        assert fake.calls == []
        for content_type in ["application/json", "application/json; charset=utf-8",
                             "Application/JSON ;charset=UTF-8"]:  # fmt: skip
            got = send(url, "POST", "/v1/ask", ASK, {"Content-Type": content_type})
            assert got.status == 200, (content_type, got)


def test_programs_and_the_servers_own_pages_still_work(fake: FakeGenerator, notes: str) -> None:
    with running() as url:
        port = port_of(url)
        for host in [
            f"127.0.0.1:{port}",
            "127.0.0.1",
            f"localhost:{port}",
            "localhost",
            f"LocalHost:{port}",
            "localhost.",
            f"[::1]:{port}",
            f"127.0.0.2:{port}",
            f"localhost:{port + 7}",
        ]:  # fmt: skip  (a port forwarded: ssh -L)
            assert send(url, "GET", "/healthz", None, {"Host": host}).status == 200, host
        # same-origin pages: the page at the address it posts to
        for host, origin in [(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"),
                             (f"localhost:{port}", f"http://localhost:{port}"),
                             (f"[::1]:{port}", f"http://[::1]:{port}")]:  # fmt: skip
            for method, path, body in ROUTES:
                got = send(url, method, path, body, route_headers(body, Host=host, Origin=origin,
                           **{"Sec-Fetch-Site": "same-origin"}))  # fmt: skip
                assert got.status == 200, (host, origin, path, got)
                assert "access-control-allow-origin" not in got.headers  # same origin: no CORS
        # HTTP/1.0 without a Host at all (not a browser)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert read_until_closed(sock).startswith(b"HTTP/1.1 200")


def test_the_openai_sdk_still_talks_to_it(fake: FakeGenerator) -> None:
    openai = pytest.importorskip("openai")
    with running() as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="anything", max_retries=0)
        answer = client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "Who wrote Emma?"}]
        )
        streamed = client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "Who wrote Emma?"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert answer.choices[0].message.content == "Jane Austen wrote it [1]."
    assert text == "Jane Austen wrote it [1]."


def test_allowed_hosts_name_a_reverse_proxy(fake: FakeGenerator) -> None:
    with running(allowed_hosts=("rag.example.com",)) as url:
        for host in ["rag.example.com", "rag.example.com:443", "RAG.Example.com:8443"]:
            assert send(url, "GET", "/healthz", None, {"Host": host}).status == 200, host
        page = {"Host": "rag.example.com", "Origin": "https://rag.example.com", **JSON_TYPE}
        assert send(url, "POST", "/v1/ask", ASK, page).status == 200
        for host in ["evil.rag.example.com", "rag.example.com.evil.example", "example.com"]:
            assert_refused(send(url, "GET", "/healthz", None, {"Host": host}), 403, "ForbiddenHost")
        other_port = {**page, "Origin": "https://rag.example.com:8443"}
        assert_refused(send(url, "POST", "/v1/ask", ASK, other_port), 403, "ForbiddenHost")


def test_which_hosts_a_server_answers_to() -> None:
    """On every address (0.0.0.0, ::) the machine's addresses are not known: any IP
    literal is taken, as rebinding needs a name; names still are not."""
    from rag.core.errors import UsageError
    from rag.serve import ServeConfig

    token = "s3cret-token"
    for wildcard in ("0.0.0.0", "::"):
        config = ServeConfig(host=wildcard, token=token)
        for host in ("192.168.1.5", "10.0.0.7", "::1", "fe80::1", "127.0.0.1", "localhost"):
            assert config.accepts_host(host), (wildcard, host)
        for host in ("evil.example", "192.168.1.5.nip.io", "", "127.1"):
            assert not config.accepts_host(host), (wildcard, host)
    lan = ServeConfig(host="192.168.1.5", token=token, allowed_hosts=("rag.lan",))
    assert all(lan.accepts_host(h) for h in ("192.168.1.5", "127.0.0.1", "localhost", "rag.lan"))
    assert not any(lan.accepts_host(h) for h in ("192.168.1.6", "evil.example", "lan"))
    loopback = ServeConfig()
    assert not loopback.accepts_host("192.168.1.5") and loopback.accepts_host("::1")
    for bad in ("http://rag.example.com", "rag.example.com:8443", "a b", "", "rag/x", "a..b"):
        with pytest.raises(UsageError, match="--allowed-host"):
            ServeConfig(allowed_hosts=(bad,)).check()


def test_rag_serve_takes_allowed_hosts_from_the_flag_and_the_environment(
    tmp_path: Path, smollm2_path: Path
) -> None:
    env = rag_env(tmp_path) | {"RAG_SERVE_ALLOWED_HOSTS": "rag.example.com, proxy.example"}
    with rag_serve(["--allowed-host", "flag.example"], env) as url:
        assert send(url, "GET", "/healthz", None, {"Host": "flag.example"}).status == 200
        assert send(url, "GET", "/healthz", None, {"Host": "rag.example.com"}).status == 403
    with rag_serve([], env) as url:
        for host in ("rag.example.com", "proxy.example:8080"):
            assert send(url, "GET", "/healthz", None, {"Host": host}).status == 200
        assert_refused(send(url, "GET", "/healthz", None, {"Host": "evil.example"}), 403,
                       "ForbiddenHost")  # fmt: skip
    bad = run_rag(["serve", "-m", "smollm2-135m", "--allowed-host", "http://x/"],
                  env=rag_env(tmp_path))  # fmt: skip
    assert bad.returncode == 2 and "--allowed-host" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


# --- a hostile peer: stalled requests, bad encodings, deep nesting -------------------------


def stall(port: int, sent: bytes = b'{"question": ') -> socket.socket:
    """A client that sends the head of a POST and part of its body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST /v1/ask HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
        f"\r\nContent-Length: 1000\r\n\r\n".encode()
        + sent
    )
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True
    finally:
        sock.settimeout(30)


def test_clients_that_stall_mid_body_hold_no_slot(fake: FakeGenerator) -> None:
    """Four clients that stop mid-body used to take all four slots: /healthz said 503."""
    with running(max_in_flight=4) as url:
        stalled = [stall(port_of(url)) for _ in range(4)]
        try:
            statuses = []
            for _ in range(20):  # the old server refused from the first few ms on
                statuses.append(send(url, "GET", "/healthz").status)
                time.sleep(0.05)
            asked = send(url, "POST", "/v1/ask", ASK, JSON_TYPE)
        finally:
            for sock in stalled:
                sock.close()
    assert statuses == [200] * 20
    assert asked.status == 200, asked


def test_a_stalled_request_is_answered_408_and_let_go(fake: FakeGenerator) -> None:
    with running(read_timeout_s=1.0) as url:
        port = port_of(url)
        with closing(stall(port)) as mid_body:
            answer = read_until_closed(mid_body)  # the server closes it: no timeout here
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"type":"RequestTimeout"' in answer and b'"exit_code":2' in answer
        # a head that never ends, and a connection that says nothing, are closed too
        with socket.create_connection(("127.0.0.1", port), timeout=30) as mid_head:
            mid_head.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-".encode())
            assert read_until_closed(mid_head) == b""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as silent:
            assert read_until_closed(silent) == b""
        # a head sent a byte at a time, each well within the deadline, still ends there
        with socket.create_connection(("127.0.0.1", port), timeout=30) as trickle:
            head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "X-A: b\r\n" * 200
            sent = 0
            while sent < len(head) and not closed_by_server(trickle):
                try:
                    trickle.sendall(head[sent].encode())
                except OSError:  # reset or broken pipe: closed
                    break
                sent += 1
                time.sleep(0.05)
            assert sent < len(head), "a trickled head was never cut off"
        assert send(url, "GET", "/healthz").status == 200  # the server itself goes on


#: JSON bodies that decode to text with a lone surrogate somewhere: each is a 400.
SURROGATES = [
    ("/v1/ask", b'{"question": "ok \\ud800"}'),
    ("/v1/ask", b'{"question": "ok \\udfff", "stream": true}'),
    ("/v1/ask", b'{"question": "ok", "index": "notes\\ud800"}'),
    ("/v1/ask", b'{"question": "ok", "engine": "\\ud800"}'),
    ("/v1/ask", b'{"question": "ok", "k\\ud800": 1}'),
    ("/v1/ask", b'{"question": "ok", "model": "\\udbff"}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "ok \\ud800"}]}'),
    (
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "hi \\udc80"}, '
        b'{"role": "assistant", "content": "yes"}, '
        b'{"role": "user", "content": "and?"}]}',
    ),  # fmt: skip
    (
        "/v1/chat/completions",
        b'{"model": "\\ud800", "messages": [{"role": "user", "content": "ok"}], "stream": true}',
    ),  # fmt: skip
    (
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "ok"}], "pocketrag": {"index": ["\\ud800"]}}',
    ),  # fmt: skip
]


def test_lone_surrogates_anywhere_in_a_request_are_400(fake: FakeGenerator, notes: str) -> None:
    with running() as url:
        replies = [
            (path, body, send(url, "POST", path, body, JSON_TYPE)) for path, body in SURROGATES
        ]
    for path, body, reply in replies:
        assert reply.status == 400, (path, body, reply)
        assert_refused(reply, 400, "UsageError")
    assert fake.calls == []


def test_json_nested_too_deep_is_400(fake: FakeGenerator) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000
    with running() as url:
        replies = [
            send(url, "POST", "/v1/ask", b'{"question": ' + deep + b"}", JSON_TYPE),
            send(url, "POST", "/v1/ask", deep, JSON_TYPE),
            send(url, "POST", "/v1/chat/completions", b'{"messages": ' + deep + b"}", JSON_TYPE),
        ]
        after = send(url, "POST", "/v1/ask", ASK, JSON_TYPE)
    for reply in replies:
        assert_refused(reply, 400, "UsageError")
        assert "nested too deeply" in reply.error["message"]
    assert after.status == 200


def test_eval_run_on_a_lone_surrogate_question_is_one_line_exit_2(
    tmp_path: Path, smollm2_path: Path
) -> None:
    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"question": "ok \\ud800", "answers": ["x"]}\n', encoding="utf-8")
    done = run_rag(
        [
            "eval",
            "run",
            "-b",
            str(bench),
            "-m",
            "smollm2-135m",
            "-c",
            "closed",
            "--max-tokens",
            "4",
            "--out",
            str(tmp_path / "run"),
        ],  # fmt: skip
        env=rag_env(tmp_path),
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert "lone surrogate, U+D800" in error


# --- the port is taken -------------------------------------------------------------------


def test_a_port_in_use_is_one_line_exit_1_and_never_says_serving(
    tmp_path: Path, smollm2_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_rag(["serve", "-m", "smollm2-135m", "--port", str(port)], env=rag_env(tmp_path),
                       timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Error: port {port} on 127.0.0.1 is in use: ")
    assert "Serving on" not in done.stderr and "Traceback" not in done.stderr


# --- chat history too long for the prompt ---------------------------------------------------


def history_of(prompt: list[Message]) -> list[Message]:
    """The earlier turns in an answer's prompt: between the system message and this turn."""
    return [m for m in prompt[:-1] if m.role != "system"]


def test_a_huge_earlier_turn_over_http_is_cut_to_a_quarter_of_the_context(
    fake: FakeGenerator,
) -> None:
    """One earlier pair of 15,000 words each used to make the prompt 30,058 tokens: 400."""
    body = {"messages": [{"role": "user", "content": "w " * 15_000},
                         {"role": "assistant", "content": "a " * 15_000},
                         {"role": "user", "content": "And tomatoes need?"}]}  # fmt: skip
    with running() as url:
        plain = send(url, "POST", "/v1/chat/completions", body, JSON_TYPE)
        assert plain.status == 200, plain
        kept = history_of(fake.calls[-1])
        streamed = send(url, "POST", "/v1/chat/completions", {**body, "stream": True}, JSON_TYPE)
    assert json.loads(plain.body)["choices"][0]["message"]["content"] == "Jane Austen wrote it [1]."
    assert [m.role for m in kept] == ["user", "assistant"]
    assert fake.count_prompt_tokens(kept) <= fake.context_size // 4
    assert kept[0].content.startswith("w w w") and kept[1].content.startswith("a a a")
    assert streamed.status == 200 and streamed.body.rstrip().endswith(b"data: [DONE]")


@pytest.mark.slow
def test_rag_chat_keeps_a_long_turn_within_a_quarter_of_the_context(
    tmp_path: Path, smollm2_path: Path
) -> None:
    """The REPL on stdin, with the bundled model: the turn after a long one carries at most
    a quarter of the context (4,096 tokens) more than the same question after /reset."""
    long_question = "Summarise: " + "the cat sat on the mat and looked at the dog. " * 120
    follow_up = "What did the cat do?"
    stdin = f"{long_question}\n{follow_up}\n/reset\n{follow_up}\n"
    env = rag_env(tmp_path) | {"RAG_MAX_TOKENS": "8"}
    done = run_rag(["chat", "-m", "smollm2-135m", "--json"], env=env, input=stdin, timeout=600)
    assert done.returncode == 0, done.stderr
    turns = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(turns) == 3, done.stdout
    first, after_long, fresh = (t["timings"]["prompt_tokens"] for t in turns)
    assert first > 1300  # the long turn really was long: more than a quarter and then some
    assert after_long - fresh <= 4096 // 4, (first, after_long, fresh)


# --- helpers for `rag serve` in a subprocess --------------------------------------------------


def rag_env(tmp_path: Path) -> dict[str, str]:
    env = child_environ()
    env["RAG_HOME"] = str(tmp_path / "home")
    return env


@contextmanager
def rag_serve(args: list[str], env: dict[str, str]) -> Iterator[str]:
    """`rag serve -m smollm2-135m` on a free port in a child process, until it answers."""
    port = free_port()
    command = [sys.executable, "-m", "rag.cli.app", "serve", "-m", "smollm2-135m",
               "--port", str(port), *args]  # fmt: skip
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert child.poll() is None, child.communicate()[1].decode()
            assert time.monotonic() < deadline, "rag serve did not start"
            try:
                send(url, "GET", "/healthz")
                break
            except OSError:  # not listening yet
                time.sleep(0.1)
        yield url
    finally:
        child.send_signal(signal.SIGINT)
        try:
            _, err = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
        fail_if_crashed(child.returncode, "rag serve", err.decode())
