"""An engine chain (`engine = "ddgs,searxng"`), as a user meets it: ddgs through its real
client on a fake internet (tests/ddgs_loopback.py) and a SearxNG look-alike, both on
127.0.0.1. A failed or empty engine costs one warning naming it and why, the next one
answers, and the answer names the engine that served it; every engine failing is one
error line naming each engine and its cause (exit 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import ddgs_loopback
import httpx
import pytest
from conftest import FakeGenerator, returning
from ddgs_loopback import FakeInternet, duckduckgo_html, fake_internet, slow, status
from test_serve import running
from typer.testing import CliRunner
from web_servers import LocalServer, json_reply, local_server, searxng_results

from rag.cli.app import app
from rag.core.errors import SearchUnavailable
from rag.web import WebResult, WebRetriever
from rag.web.cache import SearchCache

runner = CliRunner()
QUESTION = "Who wrote the novel Emma?"
SEARXNG = searxng_results(
    ("Emma (novel)", "https://en.wikipedia.org/wiki/Emma_(novel)", "Emma is by Jane Austen."),
    ("Jane Austen", "https://www.janeausten.org/", "Jane Austen wrote Emma, published 1815."),
)
DDG = [("Emma | Britannica", "https://www.britannica.com/topic/Emma", "Emma, by Jane Austen.")]
RATE_LIMITED = {  # every backend ddgs asks first refuses: DuckDuckGo as it does, 202
    "html.duckduckgo.com": status(202, "Ratelimit"),
    "en.wikipedia.org": status(429),
    "grokipedia.com": status(403),
}


@pytest.fixture(autouse=True)
def no_reranker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engines' order: what is tested here is which engine answered, not the ranking
    (and no embedder is loaded)."""
    monkeypatch.setenv("RAG_RERANKER", "none")


@pytest.fixture
def searxng(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """A SearxNG look-alike answering SEARXNG, set as the searxng engine's URL."""
    routes = {"/search": lambda r: json_reply(SEARXNG)}
    with local_server(routes) as server:
        monkeypatch.setenv("RAG_ENGINE_SEARXNG_URL", server.url)
        yield server


@pytest.fixture
def internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeInternet]:
    """ddgs's internet, rate-limiting unless a test gives it other hosts."""
    with fake_internet(dict(RATE_LIMITED)) as net:
        ddgs_loopback.use(monkeypatch, net.url)
        yield net


def search_json(*args: str) -> tuple[dict, str]:
    result = runner.invoke(app, ["search", QUESTION, "--web", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Warning: ")]


def test_a_rate_limited_ddgs_falls_to_searxng_which_answers(searxng: LocalServer) -> None:
    """Before: `--engine ddgs,searxng` was an unknown engine; with ddgs alone, a rate
    limit was exit 1."""
    with fake_internet(dict(RATE_LIMITED)) as net:
        done = ddgs_loopback.rag(
            net.url,
            *("ask", QUESTION, "--search", "--engine", "ddgs,searxng"),
            *("--model", "fake:", "--json"),
            RAG_ENGINE_SEARXNG_URL=searxng.url,
        )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["web_engine"] == "searxng"
    assert [s["location"] for s in body["sources"]] == [
        "https://en.wikipedia.org/wiki/Emma_(novel)",
        "https://www.janeausten.org/",
    ]
    assert len(body["warnings"]) == 1
    warning = body["warnings"][0]
    assert warning.startswith("Web search engine ddgs failed: no results, probably rate-limited")
    assert "duckduckgo HTTP 202" in warning and warning.endswith("searxng answered.")
    assert warnings_of(done.stderr) == [f"Warning: {warning}"]
    assert "Traceback" not in done.stderr
    assert net.hosts_asked().count("html.duckduckgo.com") == 1


def test_a_ddgs_that_times_out_falls_to_searxng(
    internet: FakeInternet, searxng: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    internet.hosts["html.duckduckgo.com"] = slow(4, duckduckgo_html(DDG))
    monkeypatch.setenv("RAG_ENGINE_DDGS_BACKEND", "duckduckgo")
    monkeypatch.setenv("RAG_ENGINE_DDGS_TIMEOUT", "1")
    monkeypatch.setenv("RAG_ENGINE_DDGS_ATTEMPTS", "1")
    body, stderr = search_json("--engine", "ddgs,searxng")
    assert body["web_engine"] == "searxng"
    assert {r["location"] for r in body["results"]} == {
        "https://en.wikipedia.org/wiki/Emma_(novel)",
        "https://www.janeausten.org/",
    }
    (warning,) = warnings_of(stderr)
    assert "engine ddgs failed: timed out (duckduckgo;" in warning
    assert "gave up after 1 attempt" in warning and warning.endswith("searxng answered.")


def test_an_empty_engine_falls_to_the_next(
    internet: FakeInternet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SearxNG answering no results at all is a real answer alone, but in a chain the
    next engine is asked; here ddgs answers."""
    internet.hosts.clear()
    internet.hosts["html.duckduckgo.com"] = duckduckgo_html(DDG)
    empty = searxng_results()
    with local_server({"/search": lambda r: json_reply(empty)}) as server:
        monkeypatch.setenv("RAG_ENGINE_SEARXNG_URL", server.url)
        body, stderr = search_json("--engine", "searxng,ddgs", "--region", "us-en")
        asked = [r.query["q"] for r in server.requests]
    assert asked == [QUESTION]
    assert body["web_engine"] == "ddgs"
    assert [r["location"] for r in body["results"]] == ["https://www.britannica.com/topic/Emma"]
    assert warnings_of(stderr) == [
        "Warning: Web search engine searxng had nothing: no results; ddgs answered."
    ]


def test_every_engine_failing_is_one_line_naming_each_and_its_cause() -> None:
    down = (503, {"Content-Type": "text/html"}, b"<h1>503</h1>")
    with (
        fake_internet(dict(RATE_LIMITED)) as net,
        local_server({"/search": lambda r: down}) as searx,
    ):
        done = ddgs_loopback.rag(
            net.url,
            *("ask", QUESTION, "--search", "--model", "fake:"),
            RAG_ENGINE="ddgs,searxng",
            RAG_ENGINE_SEARXNG_URL=searx.url,
        )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("Error: Web search failed on every engine (2 tried): ddgs: no results")
    assert "probably rate-limited (duckduckgo HTTP 202" in line
    assert f"; searxng: SearxNG at {searx.url}/search answered HTTP 503." in line
    assert "Wait a few minutes" in line  # what to do about the rate limit
    assert line.index("ddgs:") < line.index("searxng:")  # in the chain's order
    assert done.stdout == ""


def test_a_search_failing_on_every_engine_says_so_too(internet: FakeInternet) -> None:
    with local_server({}) as searx:  # answers 404 to everything
        result = runner.invoke(
            app, ["search", QUESTION, "--web", "--engine", "ddgs,searxng"],
            env={"RAG_ENGINE_SEARXNG_URL": searx.url},
        )  # fmt: skip
    assert result.exit_code == 1
    assert "Web search failed on every engine (2 tried): ddgs:" in result.stderr
    assert "searxng: SearxNG at" in result.stderr and "HTTP 404" in result.stderr


def test_rag_search_web_and_rag_ask_show_which_engine_answered(
    internet: FakeInternet, searxng: LocalServer, fake_model: FakeGenerator
) -> None:
    result = runner.invoke(app, ["search", QUESTION, "--web", "--engine", "ddgs,searxng"])
    assert result.exit_code == 0, result.output
    assert "(web via searxng, score" in result.stdout
    assert result.stdout.count("web via searxng") == 2
    assert "engine ddgs failed" in result.stderr
    asked = runner.invoke(app, ["ask", QUESTION, "-s", "--engine", "ddgs,searxng", "-m", "fake:"])
    assert asked.exit_code == 0, asked.output
    assert "\nSources (web: searxng):\n[1] " in asked.stdout


def test_the_cache_is_kept_per_engine(internet: FakeInternet, searxng: LocalServer) -> None:
    """An answer another engine of the chain already gave is used before any engine is
    asked again: the rate-limited ddgs is not asked a second time."""
    first, _ = search_json("--engine", "ddgs,searxng")
    asked = len(internet.hits), len(searxng.requests)
    again, stderr = search_json("--engine", "ddgs,searxng")
    assert (len(internet.hits), len(searxng.requests)) == asked
    assert again["web_engine"] == "searxng" and again["results"] == first["results"]
    assert warnings_of(stderr) == []
    alone, _ = search_json("--engine", "searxng")  # the same entry: SearxNG's own
    assert len(searxng.requests) == asked[1] and alone["web_engine"] == "searxng"
    internet.hosts["html.duckduckgo.com"] = duckduckgo_html(DDG)
    ddgs, _ = search_json("--engine", "ddgs")  # not SearxNG's entry
    assert ddgs["web_engine"] == "ddgs" and len(internet.hits) > asked[0]
    assert "https://www.britannica.com/topic/Emma" in [r["location"] for r in ddgs["results"]]


def test_ask_over_http_says_which_engine_served_it(
    internet: FakeInternet, searxng: LocalServer, register_part
) -> None:
    register_part("generator", "fake", returning(FakeGenerator()), argument="ANY")
    with running(search=True) as url:
        got = httpx.post(
            f"{url}/v1/ask", json={"question": QUESTION, "engine": "ddgs,searxng"}, timeout=60
        )
        found = httpx.get(
            f"{url}/v1/search", params={"q": QUESTION, "web": "true", "engine": "ddgs,searxng"}
        )
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["web_engine"] == "searxng"
    assert any(w.startswith("Web search engine ddgs failed") for w in body["warnings"])
    assert found.status_code == 200, found.text
    assert found.json()["web_engine"] == "searxng"


class Engine:
    """A search engine without a network: fixed results, or a failure."""

    def __init__(self, name: str, results=(), error: str = "") -> None:
        self.name, self.results, self.error = name, list(results), error
        self.calls = 0

    def cache_identity(self) -> dict:
        return {}

    def search(self, query: str, max_results: int) -> list[WebResult]:
        self.calls += 1
        if self.error:
            raise SearchUnavailable(f"Web search failed (engine {self.name}): {self.error}.")
        return self.results[:max_results]


def test_an_engine_that_gives_only_a_message_is_named_by_it(tmp_path: Path) -> None:
    """A plugin's engine raising a plain SearchUnavailable: its message is its cause."""
    first = Engine("first", error="it is down")
    second = Engine("second", [WebResult("T", "https://example.org/t", "text")])
    retriever = WebRetriever([first, second], cache=SearchCache(tmp_path / "c", 60))
    passages = retriever.retrieve("q", 3)
    assert [p.meta["engine"] for p in passages] == ["second"]
    assert passages.warnings == ["Web search engine first failed: it is down; second answered."]
    with pytest.raises(SearchUnavailable, match=r"^Web search failed \(engine solo\): gone\.$"):
        WebRetriever(Engine("solo", error="gone")).retrieve("q", 3)  # alone: its own message


def test_an_empty_engine_names_the_next_and_all_empty_is_no_results() -> None:
    empty, also = Engine("empty"), Engine("also")
    passages = WebRetriever([empty, also]).retrieve("q", 3)
    assert list(passages) == [] and passages.warnings == []
    assert empty.calls == also.calls == 1
