"""The ddgs engine driven through ddgs's real client code (DDGS, its backends, its parsers
and ranking, primp), with only its HTTP layer pointed at a fake internet on 127.0.0.1
(tests/ddgs_loopback.py): what the installed ddgs really does with a region, a backend
setting and a refused request, as a user meets it."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import ddgs_loopback
import pytest
from ddgs_loopback import FakeInternet, duckduckgo_html, fake_internet, grokipedia_json, status
from ddgs_loopback import wikipedia as wikipedia_api
from typer.testing import CliRunner

from rag.cli.app import app

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent

DDG_RESULTS = [
    (
        "Emma (novel) | Britannica",
        "https://www.britannica.com/topic/Emma-novel-by-Austen",
        "Emma, novel by Jane Austen, published in 1815.",
    ),
    ("Emma by Jane Austen", "https://www.gutenberg.org/ebooks/158", "Free eBook of Emma."),
    ("Emma - Jane Austen Society", "https://www.janeausten.org/emma/", "About the novel Emma."),
]
WIKI_EXTRACT = "Emma is a novel written by English author Jane Austen, published in 1815."


def answering_hosts() -> dict:
    """DuckDuckGo, Wikipedia in English and German, and Grokipedia answer; the other
    backends (Brave, Mojeek, Yahoo, Startpage) are not here (404, which ddgs drops)."""
    return {
        "html.duckduckgo.com": duckduckgo_html(DDG_RESULTS),
        "en.wikipedia.org": wikipedia_api("Emma (novel)", WIKI_EXTRACT),
        "de.wikipedia.org": wikipedia_api("Emma (Roman)", "Emma ist ein Roman von Jane Austen."),
        "grokipedia.com": grokipedia_json("Emma (novel)", "Emma_(novel)", "Emma is a novel."),
    }


@pytest.fixture(autouse=True)
def no_reranker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_RERANKER", "none")  # the engine's order; no embedder to load


@pytest.fixture
def internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeInternet]:
    with fake_internet(answering_hosts()) as net:
        ddgs_loopback.use(monkeypatch, net.url)
        yield net


def search_json(*args: str) -> dict:
    result = runner.invoke(app, ["search", "who wrote the novel emma", "--web", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_default_search_reaches_wikipedia_in_a_real_language(internet: FakeInternet) -> None:
    """Before: the default region `wt-wt` was split by ddgs into country `wt` and language
    `wt`, so every default search asked wt.wikipedia.org (a host that does not exist) and
    lost the Wikipedia result, the one most useful for a factual question."""
    body = search_json()
    asked = internet.hosts_asked()
    assert "wt.wikipedia.org" not in asked
    assert "en.wikipedia.org" in asked  # no region: ddgs's own default, us-en
    urls = [r["location"] for r in body["results"]]
    assert "https://en.wikipedia.org/wiki/Emma_(novel)" in urls
    assert "https://www.britannica.com/topic/Emma-novel-by-Austen" in urls
    assert body["web_engine"] == "ddgs"


def test_a_region_is_sent_as_ddgs_splits_it(internet: FakeInternet) -> None:
    body = search_json("--region", "DE-de")
    asked = internet.hosts_asked()
    assert "de.wikipedia.org" in asked and "en.wikipedia.org" not in asked
    duckduckgo = [h for h in internet.hits if h.host == "html.duckduckgo.com"]
    assert duckduckgo and duckduckgo[0].form["l"] == "de-de"
    assert "https://de.wikipedia.org/wiki/Emma_(Roman)" in [r["location"] for r in body["results"]]


@pytest.mark.parametrize("region", ["us", "en_US", "usa-en", "u1-en"])
def test_a_region_that_is_not_country_language_is_a_usage_error(
    internet: FakeInternet, region: str
) -> None:
    result = runner.invoke(app, ["search", "emma", "--web", "--region", region])
    assert result.exit_code == 2, result.output
    assert "--region: region must be country-language" in result.stderr
    assert "Traceback" not in result.output
    assert internet.hits == []


def test_the_backend_setting_chooses_ddgs_backends(internet: FakeInternet, rag_home: Path) -> None:
    """Before: pocketrag passed no backend, so ddgs always ran `auto` (Wikipedia and
    Grokipedia first), and the `[engines.ddgs]` section took no options."""
    (rag_home / "config.toml").write_text('[engines.ddgs]\nbackend = "duckduckgo"\n')
    body = search_json()
    assert set(internet.hosts_asked()) == {"html.duckduckgo.com"}
    assert [r["location"] for r in body["results"]] == [url for _, url, _ in DDG_RESULTS]


def test_an_unknown_backend_is_a_usage_error_listing_the_installed_ones(
    internet: FakeInternet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: ddgs logged a warning nobody saw and searched with `auto` instead."""
    monkeypatch.setenv("RAG_ENGINE_DDGS_BACKEND", "duckduckgo,bign")
    result = runner.invoke(app, ["search", "emma", "--web"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ddgs has no backend 'bign'" in lines[0]
    assert "RAG_ENGINE_DDGS_BACKEND" in lines[0]
    for name in ("auto", "brave", "duckduckgo", "mojeek", "wikipedia"):
        assert name in lines[0]
    assert internet.hits == []


def test_a_rate_limit_that_arrives_as_no_results_is_reported_as_one() -> None:
    """ddgs drops a backend's non-200 answer without a word, so DuckDuckGo's `202
    Ratelimit` used to come out as "No results found", three times over. Now: one try, and
    the error names who refused and what to do."""
    hosts = {
        "html.duckduckgo.com": status(202, "Ratelimit"),
        "en.wikipedia.org": status(429),
        "grokipedia.com": status(403),
    }
    with fake_internet(hosts) as net:
        done = ddgs_loopback.rag(net.url, "search", "who wrote emma", "--web")
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: Web search failed (engine ddgs)")
    assert "probably rate-limited" in lines[0]
    assert "duckduckgo HTTP 202" in lines[0] and "wikipedia HTTP 429" in lines[0]
    assert "Wait a few minutes" in lines[0]
    assert "--engine ddgs,searxng" in lines[0] and "[engines.ddgs]" in lines[0]
    assert "Traceback" not in done.stderr
    assert net.hosts_asked().count("html.duckduckgo.com") == 1  # not hammered again


def test_backends_that_answer_nothing_are_no_results_not_a_rate_limit() -> None:
    nothing = json.dumps(["zxqv", [], [], []]).encode()  # Wikipedia's opensearch, no match
    hosts = {
        "html.duckduckgo.com": duckduckgo_html([]),
        "en.wikipedia.org": lambda hit: (200, {"Content-Type": "application/json"}, nothing),
    }
    with fake_internet(hosts) as net:
        done = ddgs_loopback.rag(
            net.url, "search", "zxqv", "--web", RAG_ENGINE_DDGS_BACKEND="duckduckgo,wikipedia"
        )
    assert done.returncode == 1, done.stderr
    assert "no results (backends that answered: duckduckgo, wikipedia)" in done.stderr
    assert "rate-limited" not in done.stderr


def test_the_tested_ddgs_version_range_is_declared_and_installed() -> None:
    """The engine relies on how ddgs 9.x builds its backends (DDGS._get_engines, each
    backend's http_client); pyproject.toml bounds the versions this was tested with."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ddgs = next(Requirement(d) for d in project["dependencies"] if re.match(r"ddgs\b", d))
    assert version("ddgs") in ddgs.specifier
    assert any(s.operator == "<" for s in ddgs.specifier), "an upper bound: the next major"
    assert not ddgs.specifier.contains("9.0.0"), "9.0 had no backends of its own"
