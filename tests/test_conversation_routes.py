"""The research desk's conversations over HTTP (`/v1/conversations`), through a real
`rag serve` on 127.0.0.1 with the fake model: turns asked through the chat path and
stored, list and search, rename, delete, export, and what hostile requests get."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeGenerator, returning
from index_fixtures import docs, fake_embedder  # noqa: F401 - fixtures
from test_serve import JSON_TYPE, SlowGenerator, events, running

from rag.core.types import Message


def scripted(messages: list[Message]) -> str:
    """Rewrites the follow-up (shown the conversation); answers each question its way."""
    last = messages[-1].content
    if "Standalone search query:" in last:
        assert "User: Who wrote Emma?" in last, "the rewriter must see the stored turn"
        return "When did Jane Austen die?"
    if "When did she die" in last:
        return "She died in 1817 [1]."
    return "Jane Austen wrote it [1]."


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, register_part: Any) -> FakeGenerator:
    generator = FakeGenerator(reply=scripted)
    register_part("generator", "fake", returning(generator), argument="ANY")
    monkeypatch.setenv("RAG_RERANKER", "none")
    return generator


@pytest.fixture
def notes(fake_embedder: Any, docs: Path) -> str:  # noqa: F811
    from indexers.build import build_index
    from rag.core.config import load_settings

    build_index([docs / "notes.md"], "notes", load_settings(embedder="fake"))
    return "notes"


def create(url: str, **body: Any) -> dict[str, Any]:
    made = httpx.post(f"{url}/v1/conversations", json=body)
    assert made.status_code == 201, made.text
    return made.json()


def test_a_conversation_asked_plain_and_streamed(fake: FakeGenerator, notes: str) -> None:
    with running(indexes=("notes",)) as url:
        made = create(url)
        assert made["title"] == "New conversation" and made["turns"] == 0
        ident = made["id"]
        plain = httpx.post(
            f"{url}/v1/conversations/{ident}/ask", json={"question": "Who wrote Emma?"}, timeout=60
        )
        assert plain.status_code == 200, plain.text
        first = plain.json()
        assert first["answer"] == "Jane Austen wrote it [1]."
        assert first["search_query"] == "Who wrote Emma?" and isinstance(first["turn_id"], int)
        assert first["sources"][0]["origin"] == "index:notes"

        streamed = httpx.post(
            f"{url}/v1/conversations/{ident}/ask",
            json={"question": "When did she die?", "stream": True},
            timeout=60,
        )
        answered = fake.calls[-1]  # the answer's prompt
        stored = httpx.get(f"{url}/v1/conversations/{ident}").json()
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith(
        "text/event-stream"
    )
    found = events(streamed)
    names = [name for name, _ in found]
    assert names[0] == "query" and names[-1] == "answer" and set(names[1:-1]) == {"text"}
    assert json.loads(found[0][1]) == {"search_query": "When did Jane Austen die?"}
    assert "".join(json.loads(d)["text"] for n, d in found if n == "text") == (
        "She died in 1817 [1]."
    )
    second = json.loads(found[-1][1])
    assert second["search_query"] == "When did Jane Austen die?"
    # The follow-up was answered with the stored turn as history.
    assert Message("user", "Who wrote Emma?") in answered
    assert Message("assistant", "Jane Austen wrote it.") in answered
    assert "Question: When did she die?" in answered[-1].content
    # Both turns are stored whole: the question, the query, the ask object.
    assert stored["title"] == "Who wrote Emma?" and stored["created"].endswith("Z")
    turns = stored["turns"]
    assert [t["id"] for t in turns] == [first["turn_id"], second["turn_id"]]
    assert [t["question"] for t in turns] == ["Who wrote Emma?", "When did she die?"]
    assert turns[1]["search_query"] == "When did Jane Austen die?"
    for turn, reply in zip(turns, (first, second), strict=True):
        expected = {k: v for k, v in reply.items() if k not in ("search_query", "turn_id")}
        assert turn["answer"] == expected
        assert set(expected) >= {"answer", "sources", "dropped", "timings", "warnings"}


def test_list_search_rename_delete_export(fake: FakeGenerator, notes: str) -> None:
    with running(indexes=("notes",)) as url:
        emma = create(url)["id"]
        httpx.post(f"{url}/v1/conversations/{emma}/ask", json={"question": "Who wrote Emma?"})
        garden = create(url, title="Garden notes")["id"]
        httpx.post(
            f"{url}/v1/conversations/{garden}/ask", json={"question": "How often turn compost?"}
        )
        listed = httpx.get(f"{url}/v1/conversations").json()["conversations"]
        by_text = httpx.get(f"{url}/v1/conversations", params={"q": "emma"}).json()
        by_title = httpx.get(f"{url}/v1/conversations", params={"q": "GARD"}).json()
        limited = httpx.get(f"{url}/v1/conversations", params={"limit": "1"}).json()
        renamed = httpx.patch(f"{url}/v1/conversations/{emma}", json={"title": "Austen"})
        exported = httpx.get(f"{url}/v1/conversations/{emma}/export")
        gone = httpx.delete(f"{url}/v1/conversations/{garden}")
        after = httpx.get(f"{url}/v1/conversations/{garden}")
        left = httpx.get(f"{url}/v1/conversations").json()["conversations"]
    assert [(c["id"], c["title"], c["turns"]) for c in listed] == [
        (garden, "Garden notes", 1),
        (emma, "Who wrote Emma?", 1),
    ]
    assert set(listed[0]) == {"id", "title", "created", "updated", "turns"}
    assert [c["id"] for c in by_text["conversations"]] == [emma]  # in a question
    assert [c["id"] for c in by_title["conversations"]] == [garden]
    assert [c["id"] for c in limited["conversations"]] == [garden]
    assert renamed.status_code == 200 and renamed.json()["title"] == "Austen"
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/markdown")
    assert exported.headers["content-disposition"] == (
        f'attachment; filename="conversation-{emma}.md"'
    )
    text = exported.text
    assert text.startswith("# Austen\n") and "## 1. Who wrote Emma?" in text
    assert "Jane Austen wrote it [1]." in text and "[1] " in text and " — " in text
    assert "> " in text  # the text the model read, quoted
    assert gone.status_code == 204 and after.status_code == 404
    assert [c["id"] for c in left] == [emma]


def test_hostile_requests(fake: FakeGenerator) -> None:
    with running() as url:
        ident = create(url)["id"]
        base = f"{url}/v1/conversations"
        cases = [
            (httpx.post(base, json={"title": "x" * 201}), 400, "at most 200"),
            (httpx.post(base, json={"title": 7}), 400, "must be text"),
            (httpx.post(base, json={"title": "  "}), 400, "empty"),
            (httpx.post(base, json={"owner": "me"}), 400, "Unknown field"),
            (httpx.post(base, content=b'{"title": "\\ud800"}', headers=JSON_TYPE), 400,
             "not valid Unicode"),
            (httpx.post(base, content=b"{}"), 415, "Content-Type"),
            (httpx.post(base, json={"title": "x" * 100_000}), 413, "limit"),
            (httpx.patch(f"{base}/{ident}", json={}), 400, "new title"),
            (httpx.patch(f"{base}/{ident}", content=b'{"title": "a\\udcffb"}', headers=JSON_TYPE),
             400, "not valid Unicode"),
            (httpx.get(f"{base}/abc"), 400, "whole number"),
            (httpx.get(f"{base}/-1"), 400, "whole number"),
            (httpx.get(f"{base}/1.5"), 400, "whole number"),
            (httpx.get(f"{base}/%2e%2e"), 400, "whole number"),
            (httpx.get(f"{base}/0"), 404, "No conversation 0"),
            (httpx.get(f"{base}/99999999999999999999999"), 404, "No conversation"),
            (httpx.get(f"{base}/{ident + 1}"), 404, "No conversation"),
            (httpx.patch(f"{base}/{ident + 1}", json={"title": "t"}), 404, "No conversation"),
            (httpx.delete(f"{base}/{ident + 1}"), 404, "No conversation"),
            (httpx.get(f"{base}/{ident + 1}/export"), 404, "No conversation"),
            (httpx.post(f"{base}/{ident + 1}/ask", json={"question": "q?"}), 404,
             "No conversation"),
            (httpx.post(f"{base}/{ident}/ask", json={"question": " "}), 400, "empty"),
            (httpx.post(f"{base}/{ident}/ask", json={"question": "q?", "kk": 1}), 400,
             "Unknown field"),
            (httpx.post(f"{base}/{ident}/ask", json={"question": "q?", "model": "other"}), 400,
             "this server runs"),
            (httpx.get(base, params={"limit": "0"}), 400, "limit"),
            (httpx.get(base, params={"limit": "ten"}), 400, "limit"),
            (httpx.get(base, params={"limit": "9" * 50}), 400, "limit"),
            (httpx.get(base, params={"q": "x" * 2000}), 400, "at most 1000"),
            (httpx.get(base, params=[("q", "a"), ("q", "b")]), 400, "more than once"),
            (httpx.get(base, params={"owner": "me"}), 400, "Unknown field"),
            (httpx.put(f"{base}/{ident}", json={}), 405, "not allowed"),
        ]  # fmt: skip
        fts = [httpx.get(base, params={"q": q}) for q in ['"', "NEAR(", "a AND", "*", "\x00"]]
        still = httpx.get(f"{base}/{ident}").json()
    for response, status, message in cases:
        assert response.status_code == status, (status, response.request.url, response.text)
        error = response.json()["error"]
        assert message in error["message"], (message, error)
        assert "\n" not in error["message"] and "Traceback" not in response.text
    assert all(r.status_code == 200 and r.json() == {"conversations": []} for r in fts)
    assert still == {**still, "title": "New conversation", "turns": []}
    assert fake.calls == []  # nothing reached the model


def test_a_damaged_file_is_one_error_and_left_alone(fake: FakeGenerator, rag_home: Path) -> None:
    path = rag_home / "conversations.sqlite"
    path.write_bytes(b"not sqlite " * 1000)
    with running() as url:
        listed = httpx.get(f"{url}/v1/conversations")
        made = httpx.post(f"{url}/v1/conversations", json={})
        asked = httpx.post(f"{url}/v1/conversations/1/ask", json={"question": "q?"})
        health = httpx.get(f"{url}/healthz")
    for response in (listed, made, asked):
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["type"] == "ConversationsUnreadable" and str(path) in error["message"]
    assert health.status_code == 200  # the rest of the server is unaffected
    assert path.read_bytes() == b"not sqlite " * 1000
    assert fake.calls == []


def test_a_client_that_leaves_mid_stream_stores_nothing(register_part: Any) -> None:
    slow = SlowGenerator(words=2000, delay=0.01)
    register_part("generator", "fake", returning(slow), argument="ANY")
    with running() as url:
        ident = create(url)["id"]
        with httpx.stream(
            "POST",
            f"{url}/v1/conversations/{ident}/ask",
            json={"question": "q z", "stream": True},
            timeout=60,
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data:") and slow.pulled >= 3:
                    break
        assert slow.finished.wait(30), "the generation never stopped"
        slow.words = 2
        after = httpx.post(
            f"{url}/v1/conversations/{ident}/ask", json={"question": "then y"}, timeout=60
        )
        stored = httpx.get(f"{url}/v1/conversations/{ident}").json()
    assert after.status_code == 200 and after.json()["answer"] == "y0 y1"
    assert [t["question"] for t in stored["turns"]] == ["then y"]  # not the cut-short one
    assert stored["title"] == "then y"


def test_a_conversation_removed_while_answering_is_404(register_part: Any) -> None:
    slow = SlowGenerator(words=300, delay=0.01)
    register_part("generator", "fake", returning(slow), argument="ANY")
    with running() as url:
        ident = create(url)["id"]
        got: list[httpx.Response] = []
        asking = threading.Thread(
            target=lambda: got.append(
                httpx.post(f"{url}/v1/conversations/{ident}/ask", json={"question": "q z"},
                           timeout=60)
            )
        )  # fmt: skip
        asking.start()
        while slow.pulled < 3 and asking.is_alive():
            slow.finished.wait(0.01)
        assert httpx.delete(f"{url}/v1/conversations/{ident}").status_code == 204
        asking.join(60)
        listed = httpx.get(f"{url}/v1/conversations").json()
    assert got[0].status_code == 404, got[0].text
    assert listed == {"conversations": []}  # the turn did not bring it back
