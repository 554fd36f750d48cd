"""`rag serve`: the real server (uvicorn on a thread of this process, on a free loopback
port) spoken to over HTTP with httpx. A fake generator where exact text matters, a fake
embedder index, and SmolLM2 for one real closed-book answer."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeGenerator, returning
from index_fixtures import docs, fake_embedder  # noqa: F401 - fixtures
from web_servers import free_port

from rag.core.types import Message, Timings
from rag.generators.base import Generation, TimedStream

#: What a JSON body is sent with (the server refuses one without it: 415).
JSON_TYPE = {"Content-Type": "application/json"}


@contextlib.contextmanager
def running(**options: Any) -> Iterator[str]:
    """A real `rag serve` on a free port for the block; yields its base URL."""
    from rag.core.config import load_settings
    from rag.serve import ServeConfig
    from rag.serve.app import build_server

    options.setdefault("model", "fake:")
    config = ServeConfig(host="127.0.0.1", port=free_port(), **options)
    server = build_server(config, load_settings(model=config.model))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(15)


class SlowGenerator(FakeGenerator):
    """Answers `words` words one piece at a time, slowly; records the pieces pulled, and
    how many generations run at once (llama.cpp may never see two)."""

    def __init__(self, words: int = 400, delay: float = 0.01, **kwargs: Any) -> None:
        super().__init__(context_size=8192, **kwargs)
        self.words, self.delay = words, delay
        self.pulled = 0
        self.active = 0
        self.most_active = 0
        self.finished = threading.Event()
        self._lock = threading.Lock()

    def generate(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Generation:
        self.calls.append(list(messages))
        tag = messages[-1].content.split()[-1].strip("?")  # the question's last word

        def pieces() -> Iterator[tuple[str, int]]:
            with self._lock:
                self.active += 1
                self.most_active = max(self.most_active, self.active)
            try:
                for i in range(min(self.words, max_tokens)):
                    time.sleep(self.delay)
                    self.pulled += 1
                    yield f"{tag}{i} ", 1
            finally:
                with self._lock:
                    self.active -= 1
                self.finished.set()

        timings = Timings(prompt_tokens=self.count_prompt_tokens(messages))
        return Generation(TimedStream(timings).wrap(pieces()), timings)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, register_part) -> FakeGenerator:  # noqa: ANN001
    generator = FakeGenerator()
    register_part("generator", "fake", returning(generator), argument="ANY")
    monkeypatch.setenv("RAG_RERANKER", "none")
    return generator


@pytest.fixture
def notes(fake_embedder: Any, docs: Path) -> str:  # noqa: F811
    from indexers.build import build_index
    from rag.core.config import load_settings

    build_index([docs / "notes.md"], "notes", load_settings(embedder="fake"))
    build_index([docs / "sub" / "fib.py"], "code", load_settings(embedder="fake"))
    return "notes"


def events(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event name, data) of each server-sent event in a read response."""
    found = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
        found.append((name, "\n".join(data)))
    return found


def test_ask_is_rag_ask_json(fake: FakeGenerator, notes: str) -> None:
    from conftest import ask

    from rag.core.config import load_settings

    with running(indexes=("notes",)) as url:
        got = httpx.post(f"{url}/v1/ask", json={"question": "How often turn compost?"}, timeout=60)
    assert got.status_code == 200, got.text
    body = got.json()
    expected = ask(
        "How often turn compost?",
        settings=load_settings(model="fake:"),
        sources=["index:notes"],
        generator=fake,
    ).as_dict()
    assert set(body) == set(expected)
    assert body["answer"] == expected["answer"] == "Jane Austen wrote it [1]."
    assert body["sources"] == expected["sources"]
    assert body["sources"][0]["origin"] == "index:notes"
    assert "compost" in body["sources"][0]["text"].lower()
    assert set(body["timings"]) == set(expected["timings"])


def test_ask_stream_sends_text_then_the_answer(fake: FakeGenerator) -> None:
    with running() as url:
        got = httpx.post(
            f"{url}/v1/ask", json={"question": "Who wrote Emma?", "stream": True}, timeout=60
        )
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/event-stream")
    found = events(got)
    texts = [json.loads(d)["text"] for name, d in found if name == "text"]
    assert "".join(texts) == "Jane Austen wrote it [1]."
    assert [name for name, _ in found][-1] == "answer"
    final = json.loads(found[-1][1])
    assert final["answer"] == "Jane Austen wrote it [1]." and final["sources"] == []
    assert final["model"] == "fake"


def test_search_is_rag_search_json(fake: FakeGenerator, notes: str) -> None:
    from conftest import search

    from rag.core.config import load_settings

    with running() as url:
        got = httpx.get(f"{url}/v1/search", params={"q": "aphids ladybirds", "index": "notes",
                                                    "k": 2}, timeout=60)  # fmt: skip
        both = httpx.get(
            f"{url}/v1/search", params=[("q", "fib"), ("index", "notes"), ("index", "code")]
        )
    assert got.status_code == 200, got.text
    expected = search(
        "aphids ladybirds", settings=load_settings(k=2), sources=["index:notes"]
    ).as_dict()
    assert got.json() == expected
    assert len(expected["results"]) == 2
    assert {r["origin"] for r in both.json()["results"]} == {"index:notes", "index:code"}


def test_indexes_and_healthz(fake: FakeGenerator, notes: str) -> None:
    from typer.testing import CliRunner

    from rag.cli.app import app

    listed = json.loads(CliRunner().invoke(app, ["indexes", "list", "--json"]).stdout)
    with running() as url:
        rows = httpx.get(f"{url}/v1/indexes").json()
        health = httpx.get(f"{url}/healthz").json()
        models = httpx.get(f"{url}/v1/models").json()
    assert rows == listed and {r["name"] for r in rows["indexes"]} == {"notes", "code"}
    assert health == {"ok": True, "model": "fake", "indexes": [], "search": False, "waiting": 0}
    assert models["data"][0]["id"] == "fake"
    with running(indexes=("notes",)) as url:
        only = httpx.get(f"{url}/v1/indexes").json()
        assert httpx.get(f"{url}/healthz").json()["indexes"] == ["notes"]
    assert [r["name"] for r in only["indexes"]] == ["notes"]


def test_bad_requests_are_one_line_json(fake: FakeGenerator, notes: str) -> None:
    with running(indexes=("notes",)) as url:
        malformed = httpx.post(f"{url}/v1/ask", content=b"{not json", headers=JSON_TYPE, timeout=30)
        unknown = httpx.post(f"{url}/v1/ask", json={"question": "q?", "index": ["nope"]})
        path = httpx.post(f"{url}/v1/ask", json={"question": "q?", "index": ["../etc"]})
        outside = httpx.post(f"{url}/v1/ask", json={"question": "q?", "index": ["code"]})
        huge_body = httpx.post(f"{url}/v1/ask", json={"question": "x " * 40_000})
        long_question = httpx.post(f"{url}/v1/ask", json={"question": "x" * 20_000})
        bad_k = httpx.post(f"{url}/v1/ask", json={"question": "q?", "k": 0})
        bad_field = httpx.post(f"{url}/v1/ask", json={"question": "q?", "kk": 3})
        empty = httpx.post(f"{url}/v1/ask", json={"question": "  "})
        no_route = httpx.get(f"{url}/v2/nothing")
        search_path = httpx.get(f"{url}/v1/search", params={"q": "x", "index": "/etc"})
    for response, status in [(malformed, 400), (path, 400), (outside, 403), (huge_body, 413),
                             (long_question, 400), (bad_k, 400), (bad_field, 400), (empty, 400),
                             (no_route, 404), (search_path, 400)]:  # fmt: skip
        assert response.status_code == status, (status, response.text)
        error = response.json()["error"]
        assert "\n" not in error["message"] and "Traceback" not in response.text
        assert error["exit_code"] == 2
    # An unknown name is refused before opening anything when the server has --index.
    assert unknown.status_code == 403
    assert "k must be between 1 and 100" in bad_k.json()["error"]["message"]
    with running() as url:  # no --index: any plain name, so an unknown one is 404
        missing = httpx.post(f"{url}/v1/ask", json={"question": "q?", "index": "nope"})
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["type"] == "IndexNotFound"


def test_runtime_errors_map_to_5xx(fake: FakeGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.core.errors import GenerationError

    def broken(*args: Any, **kwargs: Any) -> Generation:
        raise GenerationError("The model failed while generating: boom.")

    monkeypatch.setattr(fake, "generate", broken)
    with running() as url:
        got = httpx.post(f"{url}/v1/ask", json={"question": "Who?"})
        streamed = httpx.post(f"{url}/v1/ask", json={"question": "Who?", "stream": True})
    assert got.status_code == 502
    assert got.json()["error"] == {"message": "The model failed while generating: boom.",
                                   "type": "GenerationError", "exit_code": 1}  # fmt: skip
    assert events(streamed)[-1][0] == "error"


def test_token_is_required_off_loopback_and_checked(fake: FakeGenerator) -> None:
    from rag.core.errors import UsageError
    from rag.serve import ServeConfig

    with pytest.raises(UsageError, match="token"):
        ServeConfig(host="0.0.0.0").check()
    ServeConfig(host="0.0.0.0", token="s3cret-token").check()
    with running(token="s3cret-token") as url:
        none = httpx.get(f"{url}/healthz")
        wrong = httpx.get(f"{url}/healthz", headers={"Authorization": "Bearer nope-nope"})
        right = httpx.get(f"{url}/healthz", headers={"Authorization": "Bearer s3cret-token"})
    assert none.status_code == wrong.status_code == 401
    assert none.json()["error"]["type"] == "Unauthorized"
    assert right.status_code == 200


def test_concurrent_asks_queue_on_the_model(register_part) -> None:  # noqa: ANN001
    slow = SlowGenerator(words=15, delay=0.005)
    register_part("generator", "fake", returning(slow), argument="ANY")

    def ask(tag: str) -> dict[str, Any]:
        body = {"question": f"Say {tag}", "stream": tag.endswith("s")}
        response = httpx.post(f"{url}/v1/ask", json=body, timeout=120)
        assert response.status_code == 200, response.text
        if body["stream"]:
            return json.loads(events(response)[-1][1])
        return response.json()

    tags = ["a", "b", "c", "ds", "es", "f"]
    with running() as url, ThreadPoolExecutor(len(tags)) as pool:
        answers = list(pool.map(ask, tags))
    for tag, answer in zip(tags, answers, strict=True):
        assert answer["answer"] == " ".join(f"{tag}{i}" for i in range(15))
    assert slow.most_active == 1


def test_too_many_in_flight_is_503(register_part) -> None:  # noqa: ANN001
    slow = SlowGenerator(words=200, delay=0.01)
    register_part("generator", "fake", returning(slow), argument="ANY")
    with running(max_in_flight=1) as url:
        with httpx.stream("POST", f"{url}/v1/ask", json={"question": "q a", "stream": True},
                          timeout=60) as first:  # fmt: skip
            lines = first.iter_lines()  # kept: a dropped iterator closes the response
            next(lines)
            busy = httpx.get(f"{url}/healthz")
            assert slow.pulled < 200  # the first request is still answering
        assert busy.status_code == 503 and busy.json()["error"]["type"] == "ServerBusy"


def test_a_client_that_leaves_stops_the_generation(register_part) -> None:  # noqa: ANN001
    slow = SlowGenerator(words=2000, delay=0.01)
    register_part("generator", "fake", returning(slow), argument="ANY")
    with running() as url:
        with httpx.stream("POST", f"{url}/v1/ask", json={"question": "q z", "stream": True},
                          timeout=60) as response:  # fmt: skip
            for line in response.iter_lines():
                if line.startswith("data:") and slow.pulled >= 3:
                    break
        # leaving the block closed the connection mid-answer
        assert slow.finished.wait(30), "the generation never stopped"
        assert slow.pulled < 2000
        slow.words = 2
        after = httpx.post(f"{url}/v1/ask", json={"question": "then y"}, timeout=60)
    assert after.status_code == 200 and after.json()["answer"] == "y0 y1"


def test_chat_completions(fake: FakeGenerator, notes: str) -> None:
    body = {
        "model": "anything",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What do ladybirds eat?"},
            {"role": "assistant", "content": "They eat aphids [1]."},
            {"role": "user", "content": [{"type": "text", "text": "And tomatoes need?"}]},
        ],
        "pocketrag": {"index": ["notes"]},
    }
    with running() as url:
        got = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        answered = fake.calls[-1]  # the answer's prompt (a rewrite's came before it)
        streamed = httpx.post(
            f"{url}/v1/chat/completions",
            json={**body, "stream": True, "stream_options": {"include_usage": True}},
            timeout=60,
        )
        closed = httpx.post(
            f"{url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Who wrote Emma?"}]},
        )
    assert got.status_code == 200, got.text
    data = got.json()
    assert data["object"] == "chat.completion" and data["model"] == "anything"
    assert data["choices"][0]["message"] == {"role": "assistant",
                                             "content": "Jane Austen wrote it [1]."}  # fmt: skip
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["pocketrag"]["sources"][0]["origin"] == "index:notes"
    assert data["usage"]["completion_tokens"] == 5
    # the earlier turns are the history, without their citations; no system message
    assert any(m.role == "assistant" and m.content == "They eat aphids." for m in answered)
    assert "Be brief." not in " ".join(m.content for m in answered)
    assert "And tomatoes need?" in answered[-1].content

    found = events(streamed)
    assert found[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in found[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Jane Austen wrote it [1]."
    final = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(final) == 1 and final[0]["pocketrag"]["sources"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert closed.json()["pocketrag"]["sources"] == []


def test_pocketrags_openai_generator_gets_an_answer_from_rag_serve(fake: FakeGenerator) -> None:
    """What Open WebUI (or any OpenAI client) does: pocketrag itself as the client."""
    from rag.core.config import load_settings
    from rag.generators import load_generator

    with running() as url:
        client = load_generator(load_settings(model=f"openai:{url}/v1#pocketrag"))
        generation = client.generate([Message("user", "Who wrote Emma?")], max_tokens=64)
        assert generation.text == "Jane Austen wrote it [1]."
        assert generation.timings.completion_tokens == 5


@pytest.mark.slow
def test_real_model_closed_book(smollm2_path: Path) -> None:
    with running(model="smollm2-135m") as url:
        got = httpx.post(
            f"{url}/v1/ask",
            json={"question": "What is the capital of France?", "max_tokens": 16},
            timeout=300,
        )
        health = httpx.get(f"{url}/healthz").json()
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["model"] == "smollm2-135m" and body["sources"] == []
    assert body["answer"].strip() and 0 < body["timings"]["completion_tokens"] <= 16
    assert health["model"] == "smollm2-135m"
