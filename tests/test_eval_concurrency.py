"""`rag eval run --concurrency N` against an OpenAI-compatible server on 127.0.0.1.

The server is a small look-alike of the chat-completions API (tests/web_servers.py) that
answers by rule after a delay and records how many requests it had in flight at once. What
is checked is what a user relies on: the server really gets several questions at once, the
predictions file reads exactly as a one-at-a-time run writes it (so a resume works), a
failing answer stops the run with the usual one-line error, and a model in this process
keeps answering one question at a time and says so.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeGenerator, FakeRetriever
from typer.testing import CliRunner
from web_servers import Reply, Request, json_reply, local_server

from evals.conditions import parse_conditions
from evals.runner import EvalConfig, in_order, read_predictions, run_eval
from rag.cli.app import app
from rag.core.config import load_settings
from rag.core.errors import GenerationError
from rag.core.types import Passage
from rag.generators.base import serves_concurrently

NQ = str(Path(__file__).resolve().parent / "fixtures" / "eval" / "nq_open.jsonl")
FACTS = {
    "emma": "Emma is a novel by Jane Austen.",
    "australia": "Canberra is the capital of Australia.",
    "berlin": "The Berlin Wall fell in 1989.",
    "mona lisa": "Leonardo da Vinci painted the Mona Lisa.",
}
GUESSES = {"emma": "Jane Austen", "australia": "Sydney", "berlin": "1990", "mona lisa": "Leonardo"}


class Facts(FakeRetriever):
    def retrieve(self, query: str, k: int) -> list[Passage]:
        self.queries.append(query)
        found = [
            Passage(text, title=key, location=f"facts#{key}", origin="index:facts", score=1.0)
            for key, text in FACTS.items()
            if key in query
        ]
        return found[:k]


class ChatServer:
    """Answers each question by rule, after `delay` seconds (the first question takes
    `slow`, so the answers after it finish first), streaming like llama.cpp's server.
    `fail_on`: a word whose questions get HTTP 500. `hold`: when set, requests wait for it."""

    def __init__(self) -> None:
        self.url = ""
        self.delay = 0.1
        self.slow = 0.4
        self.fail_on: str | None = None
        self.cut_short = False  # end answers without a finish reason, as an interrupted one
        self.hold: threading.Event | None = None
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0

    def chat(self, request: Request) -> Reply:
        body = json.loads(request.body)
        user = body["messages"][-1]["content"].lower()
        with self._lock:
            self.in_flight += 1
            self.requests += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold is not None:
                self.hold.wait(60)
            time.sleep(self.slow if "emma" in user else self.delay)
            if self.fail_on and self.fail_on in user:
                return json_reply({"error": {"message": "the model crashed"}}, 500)
            finish = None if self.cut_short else "stop"
            return 200, {"Content-Type": "text/event-stream"}, _stream(_answer(user), finish)
        finally:
            with self._lock:
                self.in_flight -= 1


def _answer(user: str) -> str:
    """From the source when there is one, else a guess: the two conditions differ."""
    if "<source" in user:
        for key, text in FACTS.items():
            if key in user:
                return f"{text} [1]"
    return next((guess for key, guess in GUESSES.items() if key in user), "I am not sure.")


def _stream(text: str, finish: str | None = "stop") -> bytes:
    words = text.split(" ")
    events = [{"choices": [{"delta": {"content": w if i == 0 else " " + w}}]}
              for i, w in enumerate(words)]  # fmt: skip
    events[-1]["choices"][0]["finish_reason"] = finish
    events.append({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": len(words)}})
    lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


@pytest.fixture
def server() -> Iterator[ChatServer]:
    chat = ChatServer()
    with local_server({"/v1/chat/completions": chat.chat}) as http:
        chat.url = http.url + "/v1"
        try:
            yield chat
        finally:
            if chat.hold is not None:
                chat.hold.set()


def _settings(server: ChatServer, concurrency: int):  # noqa: ANN202 - rag.core.config.Settings
    # bm25: evidence selection without loading an embedder
    return load_settings(
        model=f"openai:{server.url}#fake", concurrency=concurrency, reranker="bm25"
    )


def _config(out: Path, **kw) -> EvalConfig:  # noqa: ANN003
    return EvalConfig(
        benchmark=NQ, conditions=parse_conditions("closed,index:facts"), out_dir=out, **kw
    )


def _run(server: ChatServer, out: Path, concurrency: int, **kw):  # noqa: ANN003, ANN202
    return run_eval(
        _config(out, **kw),
        _settings(server, concurrency),
        retriever_factory=lambda spec: Facts(spec),
    )


def _rows(out: Path) -> list[tuple[str, str, str, list[str]]]:
    return [
        (r["qid"], r["condition"], r["prediction"], [s["text"] for s in r["sources"]])
        for r in read_predictions(out)
    ]


def test_concurrency_overlaps_requests_and_writes_in_one_at_a_time_order(server, tmp_path):
    one = _run(server, tmp_path / "one", 1, snapshot=tmp_path / "one.jsonl")
    assert server.max_in_flight == 1 and one.answered == 10
    server.max_in_flight = 0

    four = _run(server, tmp_path / "four", 4, snapshot=tmp_path / "four.jsonl")

    assert server.max_in_flight > 1  # the server really had several questions at once
    assert four.answered == 10 and four.questions == 5 and four.warnings == []
    assert _rows(tmp_path / "four") == _rows(tmp_path / "one")  # same lines, same order
    for name, metrics in one.results["conditions"].items():
        for key in ("n", "accuracy", "em", "f1", "hit_at_k"):
            assert four.results["conditions"][name][key] == metrics[key]
    # the snapshot is recorded in the order the answers are written, too
    snapshots = [
        [(r["condition"], r["question"]) for r in map(json.loads, path.read_text().splitlines())]
        for path in (tmp_path / "one.jsonl", tmp_path / "four.jsonl")
    ]
    assert snapshots[0] == snapshots[1] and len(snapshots[0]) == 5
    # every answer carries its own timings
    for row in read_predictions(tmp_path / "four"):
        assert row["ttft_s"] > 0 and row["latency_s"] >= row["ttft_s"]
        assert row["completion_tokens"] >= 1


def test_a_failing_answer_stops_the_run_after_the_answers_before_it_then_it_resumes(
    server, tmp_path
):
    _run(server, tmp_path / "one", 1)
    expected = _rows(tmp_path / "one")

    server.fail_on = "berlin"  # the third question: items 5 and 6 of 10
    with pytest.raises(GenerationError, match="HTTP 500"):
        _run(server, tmp_path / "four", 4)
    assert _rows(tmp_path / "four") == expected[:4]  # only what came before it, in order

    server.fail_on = None
    resumed = _run(server, tmp_path / "four", 4)
    assert resumed.resumed == 4 and resumed.answered == 6
    assert _rows(tmp_path / "four") == expected


def test_resume_after_a_kill_mid_write_gives_the_one_at_a_time_file(server, tmp_path):
    _run(server, tmp_path / "one", 1)
    expected = _rows(tmp_path / "one")
    _run(server, tmp_path / "four", 4)
    path = tmp_path / "four" / "predictions.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][:40])  # killed while writing line 4

    resumed = _run(server, tmp_path / "four", 4)

    assert resumed.resumed == 3 and resumed.answered == 7
    assert any("cut short" in w for w in resumed.warnings)
    assert _rows(tmp_path / "four") == expected


def cli(*args: str):  # noqa: ANN201 - click Result
    return CliRunner().invoke(app, list(args))


def test_cli_concurrency_against_a_server(server, tmp_path) -> None:
    out = tmp_path / "run"
    model = f"openai:{server.url}#fake"
    result = cli("eval", "run", "-b", NQ, "-m", model, "--concurrency", "4", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "5 answers, 5 questions answered" in result.stderr
    assert server.max_in_flight > 1
    assert [r["qid"] for r in read_predictions(out)] == [f"q{i}" for i in range(5)]


def test_cli_errors_from_a_worker_are_one_line_with_the_usual_exit_code(server, tmp_path):
    server.fail_on = "australia"
    args = ["eval", "run", "-b", NQ, "--concurrency", "4", "--out", str(tmp_path / "a")]
    result = cli(*args, "-m", f"openai:{server.url}#fake")
    assert result.exit_code == 1
    assert "answered HTTP 500" in result.output and "Traceback" not in result.output
    assert "again to resume" in result.output

    with local_server({}) as gone:  # a port nothing listens on once this block ends
        down = f"openai:{gone.url}/v1#fake"
    args = ["eval", "run", "-b", NQ, "--concurrency", "4", "--out", str(tmp_path / "b")]
    result = cli(*args, "-m", down)
    assert result.exit_code == 1
    assert "Cannot reach the model server" in result.output and "Traceback" not in result.output


def test_an_answer_cut_short_by_the_server_is_an_error_not_a_short_answer(server, tmp_path):
    """llama-cpp-python's server ends a streaming answer early, as if done, when another
    request arrives (unless started with --interrupt_requests False)."""
    server.cut_short = True
    args = ["eval", "run", "-b", NQ, "--concurrency", "4", "--out", str(tmp_path / "run")]
    result = cli(*args, "-m", f"openai:{server.url}#fake")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cut short" in result.output and "--interrupt_requests False" in result.output
    assert read_predictions(tmp_path / "run") == []


class Solo(FakeGenerator):
    """An in-process model: records whether two answers were ever generated at once."""

    def __init__(self) -> None:
        super().__init__(reply=lambda messages: "Jane Austen")
        self.active = 0
        self.most = 0

    def generate(self, messages, *, max_tokens, temperature=0.0):  # noqa: ANN001, ANN201
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            time.sleep(0.02)
            return super().generate(messages, max_tokens=max_tokens, temperature=temperature)
        finally:
            self.active -= 1


def test_a_local_model_keeps_one_question_at_a_time_and_says_so(tmp_path, register_part) -> None:
    from conftest import returning

    from rag.generators.llama import LlamaGenerator
    from rag.generators.openai_http import OpenAIGenerator

    assert not serves_concurrently(LlamaGenerator) and serves_concurrently(OpenAIGenerator)
    solo = Solo()
    register_part("generator", "fake", returning(solo), argument="ANY")
    out = tmp_path / "run"
    result = cli("eval", "run", "-b", NQ, "-m", "fake:", "--concurrency", "4", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("--concurrency 4 applies to model servers") == 1
    assert "so this run uses 1" in result.stderr
    assert solo.most == 1 and len(solo.calls) == 5
    assert [r["qid"] for r in read_predictions(out)] == [f"q{i}" for i in range(5)]


@pytest.mark.parametrize("value", ["0", "65"])
def test_concurrency_out_of_range_is_a_usage_error(value, tmp_path, monkeypatch) -> None:
    out = str(tmp_path / "run")
    result = cli("eval", "run", "-b", NQ, "-m", "fake:", "--concurrency", value, "--out", out)
    assert result.exit_code == 2 and "concurrency must be between 1 and 64" in result.output
    monkeypatch.setenv("RAG_CONCURRENCY", value)
    result = cli("eval", "run", "-b", NQ, "-m", "fake:", "--out", out)
    assert result.exit_code == 2 and "RAG_CONCURRENCY" in result.output


def test_in_order_raises_a_failure_without_waiting_for_a_stuck_item() -> None:
    stuck = threading.Event()

    def work(item: int) -> int:
        if item == 1:
            raise GenerationError("the model server went away")
        if item == 2:
            stuck.wait(60)  # a server that never answers
        return item * 10

    abandoned = threading.Event()
    got = []
    try:
        with pytest.raises(GenerationError, match="went away"):
            for item, result in in_order(list(range(6)), work, 3, abandoned):
                got.append((item, result))
        assert got == [(0, 0)]  # what came before the failure, and nothing after it
        assert abandoned.is_set()  # the stuck item is told to stop; nobody waits for it
    finally:
        stuck.set()


def test_ctrl_c_stops_a_concurrent_run_at_once(server, tmp_path) -> None:
    server.hold = threading.Event()  # no answer ever comes back
    out = tmp_path / "run"
    model = f"openai:{server.url}#fake"
    args = ["eval", "run", "-b", NQ, "-m", model, "--concurrency", "4", "--out", str(out)]
    # Ctrl-C's own handler, whatever was inherited: a shell starts a background job with
    # SIGINT ignored, and then Python never raises KeyboardInterrupt (the run went on).
    launch = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = ['rag', *sys.argv[1:]]; runpy.run_module('rag.cli.app', run_name='__main__')"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", launch, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while server.in_flight < 4 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.in_flight == 4, process.stderr.read() if process.poll() is not None else ""
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)  # a hang fails here
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Interrupted" in stderr and "Traceback" not in stderr
    assert read_predictions(out) == []
