"""The SearxNG engine against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_servers import html_reply, json_reply, local_server, searxng_results, slow

from rag.core.config import Settings, load_settings
from rag.core.errors import SearchUnavailable, UsageError
from rag.web import build_engine
from rag.web.searxng import SearxngEngine, search_endpoint

EMMA = searxng_results(
    (
        "Emma (novel)",
        "https://en.wikipedia.org/wiki/Emma_(novel)",
        "Emma is a novel by Jane Austen.",
    ),
    ("Jane Austen", "https://en.wikipedia.org/wiki/Jane_Austen", "English novelist (1775-1817)."),
    ("Emma (1996 film)", "https://example.org/emma-film", "A film adaptation."),
)


def test_json_api_query_and_parsing() -> None:
    with local_server({"/search": lambda r: json_reply(EMMA)}) as server:
        engine = SearxngEngine(server.url, region="us-en", safesearch="off", timelimit="m")
        results = engine.search("who wrote emma", 2)
    assert [r.title for r in results] == ["Emma (novel)", "Jane Austen"]
    assert results[0].url == "https://en.wikipedia.org/wiki/Emma_(novel)"
    assert results[0].snippet == "Emma is a novel by Jane Austen."
    sent = server.requests[0].query
    assert sent["q"] == "who wrote emma"
    assert sent["format"] == "json"
    assert sent["safesearch"] == "0"
    assert sent["language"] == "en-US"
    assert sent["time_range"] == "month"


def test_settings_select_url_and_no_region_means_all_languages() -> None:
    with local_server({"/searx/search": lambda r: json_reply(EMMA)}) as server:
        settings = Settings(engine="searxng", searxng_url=server.url + "/searx/")
        results = SearxngEngine.from_settings(settings).search("emma", 5)
    assert len(results) == 3
    assert server.requests[0].query["language"] == "all"
    assert "time_range" not in server.requests[0].query
    assert server.requests[0].query["safesearch"] == "1"


def test_403_explains_the_json_format_setting() -> None:
    forbidden = (403, {"Content-Type": "text/html"}, b"<h1>403 Forbidden</h1>")
    with (
        local_server({"/search": lambda r: forbidden}) as server,
        pytest.raises(SearchUnavailable) as info,
    ):
        SearxngEngine(server.url).search("emma", 5)
    message = str(info.value)
    assert "engine searxng" in message and "403" in message
    assert "settings.yml" in message and "json" in message and "formats" in message


def test_html_instead_of_json_is_explained() -> None:
    with (
        local_server({"/search": lambda r: html_reply("<html>results</html>")}) as server,
        pytest.raises(SearchUnavailable, match="did not return JSON"),
    ):
        SearxngEngine(server.url).search("emma", 5)


def test_rate_limit_and_server_errors() -> None:
    routes = {
        "/a/search": lambda r: json_reply({"error": "too many"}, status=429),
        "/b/search": lambda r: json_reply({"error": "boom"}, status=500),
    }
    with local_server(routes) as server, pytest.raises(SearchUnavailable, match="429"):
        SearxngEngine(server.url + "/a").search("emma", 5)
        with pytest.raises(SearchUnavailable, match="HTTP 500"):
            SearxngEngine(server.url + "/b").search("emma", 5)


def test_no_results_because_engines_failed_is_an_error() -> None:
    body = {
        "results": [],
        "unresponsive_engines": [["duckduckgo", "timeout"], ["brave", "CAPTCHA"]],
    }
    with (
        local_server({"/search": lambda r: json_reply(body)}) as server,
        pytest.raises(SearchUnavailable, match=r"duckduckgo \(timeout\), brave \(CAPTCHA\)"),
    ):
        SearxngEngine(server.url).search("emma", 5)


def test_genuinely_empty_results_are_an_empty_list() -> None:
    with local_server({"/search": lambda r: json_reply(searxng_results())}) as server:
        assert SearxngEngine(server.url).search("xyzzy", 5) == []


def test_timeout_names_the_instance() -> None:
    with (
        local_server({"/search": slow(json_reply(EMMA), 2.0)}) as server,
        pytest.raises(SearchUnavailable, match=r"did not answer within 0.3s"),
    ):
        SearxngEngine(server.url, timeout_s=0.3).search("emma", 5)


def test_connection_refused_names_engine_and_cause() -> None:
    with local_server({}) as server:
        url = server.url
    with pytest.raises(SearchUnavailable) as info:
        SearxngEngine(url).search("emma", 5)
    assert "engine searxng" in str(info.value)
    assert "ConnectError" in str(info.value)


@pytest.mark.parametrize(
    ("base", "endpoint"),
    [
        ("http://localhost:8888", "http://localhost:8888/search"),
        ("http://localhost:8888/", "http://localhost:8888/search"),
        ("https://search.example/searx/search?q=x", "https://search.example/searx/search"),
    ],
)
def test_endpoint_normalisation(base: str, endpoint: str) -> None:
    assert search_endpoint(base) == endpoint


@pytest.mark.parametrize("url", ["", "localhost:8888", "ftp://host/"])
def test_missing_or_bad_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match=r"\[engines\.searxng\].*RAG_ENGINE_SEARXNG_URL"):
        SearxngEngine(url)


def test_url_and_timeout_come_from_the_engines_section(
    rag_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = rag_home / "config.toml"
    config.write_text('[engines.searxng]\nurl = "http://section:8888"\ntimeout = 3\n')
    settings = load_settings(engine="searxng", searxng_url="http://old-alias:8888")
    engine = build_engine(settings)
    assert engine.endpoint == "http://section:8888/search"  # the option wins over the alias
    assert engine.timeout_s == 3.0
    monkeypatch.setenv("RAG_ENGINE_SEARXNG_URL", "http://env:8888")
    assert build_engine(settings).endpoint == "http://env:8888/search"  # env > file

    config.write_text('searxng_url = "http://old-alias:8888"\n')  # the deprecated setting
    assert build_engine(load_settings(engine="searxng")).endpoint == "http://env:8888/search"
    monkeypatch.delenv("RAG_ENGINE_SEARXNG_URL")
    assert build_engine(load_settings(engine="searxng")).endpoint == (
        "http://old-alias:8888/search"
    )
    monkeypatch.setenv("RAG_SEARXNG_URL", "http://old-env:8888")
    assert build_engine(load_settings(engine="searxng")).endpoint == "http://old-env:8888/search"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("timeout = 0", r"\[engines\.searxng\]: timeout must be between 0.5 and 300"),
        ('timeout = "soon"', "timeout must be a number"),
        ("url = 8888", "url must be text in quotes"),
        ('ulr = "http://x"', "unknown option 'ulr'; searxng takes: url, timeout"),
    ],
)
def test_bad_engine_options_name_the_file_and_section(
    rag_home: Path, section: str, message: str
) -> None:
    (rag_home / "config.toml").write_text(f"[engines.searxng]\n{section}\n")
    with pytest.raises(UsageError, match=message) as caught:
        build_engine(load_settings(engine="searxng"))
    assert str(rag_home / "config.toml") in str(caught.value)


def test_a_misspelt_engine_section_is_reported_when_an_engine_is_used(rag_home: Path) -> None:
    (rag_home / "config.toml").write_text('[engines.serxng]\nurl = "http://x:1"\n')
    load_settings()  # plugins are not loaded to read the settings
    with pytest.raises(UsageError, match=r"Unknown search engine 'serxng'.*known: ddgs, searxng"):
        build_engine(load_settings(engine="ddgs"))


def test_a_result_holding_a_lone_surrogate_is_cached_and_shown(monkeypatch) -> None:
    """An engine's JSON may carry `"\\ud800"`. Before: a UnicodeEncodeError traceback
    from the cache (SQLite) in `rag search --web`. Results keep U+FFFD in its place."""
    import json as json_module

    from typer.testing import CliRunner

    from rag.cli.app import app

    raw = json_module.dumps(
        searxng_results(("Odd \ud800 title", "https://example.org/odd", "Odd \udcff snippet."))
    ).replace("\\\\", "\\")
    reply = (200, {"Content-Type": "application/json"}, raw.encode("ascii"))
    with local_server({"/search": lambda r: reply}) as server:
        monkeypatch.setenv("RAG_ENGINE", "searxng")
        monkeypatch.setenv("RAG_ENGINE_SEARXNG_URL", server.url)
        runner = CliRunner()
        for _ in range(2):  # the second from the cache
            result = runner.invoke(app, ["search", "odd", "--web", "--json", "--no-rerank"])
            assert result.exit_code == 0, result.output
            shown = json_module.loads(result.stdout)["results"][0]
            assert shown["title"] == "Odd \ufffd title"
            assert shown["text"] == "Odd \ufffd snippet."
    assert len(server.requests) == 1
