"""`--site DOMAIN` and `exclude_domains`, for ddgs (its real client on a fake internet,
tests/ddgs_loopback.py) and SearxNG (a look-alike) alike, as a user meets them: the
engines that read `site:` are asked for the sites' pages, and every result's host is
checked too, so the rule holds whatever the engine returns; excluded results never reach
the reranker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import ddgs_loopback
import httpx
import pytest
from conftest import FakeGenerator
from ddgs_loopback import FakeInternet, duckduckgo_html, fake_internet, grokipedia_json
from ddgs_loopback import wikipedia as wikipedia_api
from test_serve import running
from typer.testing import CliRunner
from web_servers import LocalServer, json_reply, local_server, searxng_results

from rag.cli.app import app
from rag.core.config import load_settings
from rag.core.errors import UsageError

runner = CliRunner()
QUESTION = "Who wrote the novel Emma?"
#: What both engines return: on and off the sites the tests name.
MIXED = [
    ("Emma | Britannica", "https://www.britannica.com/topic/Emma", "Emma, by Jane Austen."),
    ("Emma (novel)", "https://en.wikipedia.org/wiki/Emma_(novel)", "Emma is by Jane Austen."),
    ("Emma - Grokipedia", "https://grokipedia.com/page/Emma", "An AI-written page on Emma."),
    ("Emma, mirrored", "https://mirror.grokipedia.com/Emma", "The same, on a subdomain."),
    ("Not Britannica", "https://notbritannica.com/emma", "A look-alike name."),
    ("Emma notes", "https://content-farm.example/emma-notes", "Ten facts about Emma."),
]
ALL_URLS = [url for _, url, _ in MIXED]


@pytest.fixture(autouse=True)
def no_reranker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_RERANKER", "none")  # the engines' order; no embedder to load


@pytest.fixture
def searxng(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    with local_server({"/search": lambda r: json_reply(searxng_results(*MIXED))}) as server:
        monkeypatch.setenv("RAG_ENGINE", "searxng")
        monkeypatch.setenv("RAG_ENGINE_SEARXNG_URL", server.url)
        yield server


@pytest.fixture
def ddgs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeInternet]:
    """ddgs on `auto`: Wikipedia and Grokipedia answer (one result each), and DuckDuckGo
    answers the rest, `site:` operators or not, as a search engine might."""
    hosts = {
        "html.duckduckgo.com": duckduckgo_html(
            [m for m in MIXED if "wikipedia" not in m[1] and m[1] != ALL_URLS[2]]
        ),
        "en.wikipedia.org": wikipedia_api("Emma (novel)", "Emma is by Jane Austen."),
        "grokipedia.com": grokipedia_json("Emma", "Emma", "An AI-written page on Emma."),
    }
    with fake_internet(hosts) as net:
        ddgs_loopback.use(monkeypatch, net.url)
        monkeypatch.setenv("RAG_ENGINE", "ddgs")
        yield net


@pytest.fixture(params=["ddgs", "searxng"])
def engine(request: pytest.FixtureRequest) -> tuple[str, object]:
    """Each test runs with each engine: (its name, the server that records its queries)."""
    return request.param, request.getfixturevalue(request.param)


def queries_sent(name: str, server: object) -> list[str]:
    if name == "searxng":
        return [r.query["q"] for r in server.requests]  # type: ignore[attr-defined]
    return [h.form["q"] for h in server.hits if h.host == "html.duckduckgo.com"]  # type: ignore[attr-defined]


def search(*args: str) -> tuple[dict, str]:
    result = runner.invoke(app, ["search", QUESTION, "--web", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def locations(body: dict) -> list[str]:
    return [r["location"] for r in body["results"]]


def test_site_restricts_the_results_of_every_engine(engine: tuple[str, object]) -> None:
    """Before: there was no --site; a `site:` typed into the question reached SearxNG's
    engines but not ddgs's Wikipedia backend, and nothing checked what came back."""
    name, server = engine
    body, _ = search("--site", "Britannica.com", "--site", "en.wikipedia.org")
    assert set(locations(body)) == {ALL_URLS[0], ALL_URLS[1]}  # www.: a subdomain, kept
    assert body["web_engine"] == name
    sent = queries_sent(name, server)
    assert sent and all(
        q == f"{QUESTION} site:britannica.com OR site:en.wikipedia.org" for q in sent
    )


def test_a_site_with_no_results_on_it_says_why(engine: tuple[str, object]) -> None:
    name, _ = engine
    result = runner.invoke(app, ["search", QUESTION, "--web", "--site", "gutenberg.org"])
    assert result.exit_code == 0, result.output
    assert "No results." in result.stderr
    warning = f"Warning: Web search engine {name} had nothing: none of its"
    assert warning in result.stderr and "was from gutenberg.org (--site)" in result.stderr


def test_excluded_domains_never_reach_the_reranker(
    engine: tuple[str, object], rag_home: Path, fake_model: FakeGenerator
) -> None:
    """An excluded host (or any subdomain of it) is dropped before the reranker: it is
    neither a source nor among the candidates the model did not read."""
    (rag_home / "config.toml").write_text(
        'exclude_domains = ["grokipedia.com", "Content-Farm.example."]\n'
    )
    result = runner.invoke(
        app, ["ask", QUESTION, "--search", "--model", "fake:", "--k", "10", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    seen = [s["location"] for s in body["sources"]] + [d["location"] for d in body["dropped"]]
    assert ALL_URLS[0] in seen and ALL_URLS[1] in seen and ALL_URLS[4] in seen
    assert not any("grokipedia.com" in url or "content-farm" in url for url in seen)
    prompt = fake_model.calls[-1][-1].content
    assert "grokipedia" not in prompt.lower() and "Ten facts" not in prompt


def test_site_and_exclusions_come_through_the_server(searxng: LocalServer, register_part) -> None:
    """A request's `site` is a name or a list (POST /v1/ask) or comma-separated text
    (GET /v1/search): the per-question option, declared once."""
    from conftest import returning

    register_part("generator", "fake", returning(FakeGenerator()), argument="ANY")
    with running(search=True) as url:
        asked = httpx.post(
            f"{url}/v1/ask",
            json={"question": QUESTION, "site": ["britannica.com", "grokipedia.com"]},
            timeout=60,
        )
        found = httpx.get(
            f"{url}/v1/search", params={"q": QUESTION, "web": "true", "site": "grokipedia.com"}
        )
        bad = httpx.post(f"{url}/v1/ask", json={"question": QUESTION, "site": "https://x.org/a"})
    assert asked.status_code == 200, asked.text
    assert {s["location"] for s in asked.json()["sources"]} == {
        ALL_URLS[0],
        ALL_URLS[2],
        ALL_URLS[3],
    }
    assert found.status_code == 200, found.text
    assert {r["location"] for r in found.json()["results"]} == {ALL_URLS[2], ALL_URLS[3]}
    assert bad.status_code == 400 and "'https://x.org/a' is not a domain name" in bad.text
    assert "(write 'x.org')" in bad.text


@pytest.mark.parametrize(
    ("raw", "domains"),
    [
        ("Britannica.COM", ("britannica.com",)),
        ("en.wikipedia.org., *.example.org .gov", ("en.wikipedia.org", "example.org", "gov")),
        ("bücher.de  bücher.de", ("xn--bcher-kva.de",)),
        (["a.org", "b.org", "a.org"], ("a.org", "b.org")),
        ("", ()),
    ],
)
def test_domains_are_parsed_once_and_normalised(raw: object, domains: tuple[str, ...]) -> None:
    from rag.core.domains import parse_domains

    assert parse_domains(raw, "test") == domains  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("https://en.wikipedia.org/wiki/Emma", "(write 'en.wikipedia.org')"),
        ("example.org/emma", "(write 'example.org')"),
        ("example.org:8080", "without scheme, port or path"),
        ("exa mple", None),  # two names, both fine
        ("-bad.org", "is not a domain name"),
        ("a..org", "is not a domain name"),
        ("emoji🙂.org", None),  # IDNA encodes it
    ],
)
def test_what_is_not_a_domain_is_a_usage_error_saying_what_to_write(
    raw: str, message: str | None
) -> None:
    from rag.core.domains import parse_domains

    if message is None:
        assert parse_domains(raw, "test")
        return
    with pytest.raises(UsageError) as info:
        parse_domains(raw, "--site")
    assert str(info.value).startswith("--site: ") and message in str(info.value)


def test_a_domain_matches_itself_and_its_subdomains_only() -> None:
    from rag.core.domains import host_matches, parse_domains, url_host

    assert host_matches(url_host("https://EN.Wikipedia.org./wiki/X"), ("wikipedia.org",))
    assert host_matches("wikipedia.org", ("wikipedia.org",))
    assert not host_matches("notwikipedia.org", ("wikipedia.org",))
    assert not host_matches(url_host("https://wikipedia.org.evil.example/"), ("wikipedia.org",))
    assert not host_matches(url_host("not a url"), ("wikipedia.org",))
    assert host_matches(url_host("https://xn--bcher-kva.de/"), parse_domains("bücher.de", "t"))


def test_domain_settings_are_checked_in_every_layer(
    rag_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = rag_home / "config.toml"
    config.write_text('exclude_domains = "grokipedia.com, Example.org"\nsite = ["a.org"]\n')
    settings = load_settings()
    assert settings.exclude_domains == "grokipedia.com,example.org" and settings.site == "a.org"
    monkeypatch.setenv("RAG_EXCLUDE_DOMAINS", "x.org y.org")
    assert load_settings().exclude_domains == "x.org,y.org"
    monkeypatch.setenv("RAG_EXCLUDE_DOMAINS", "http://x.org/")
    with pytest.raises(UsageError, match=r"^RAG_EXCLUDE_DOMAINS: 'http://x.org/' is not a domain"):
        load_settings()
    monkeypatch.delenv("RAG_EXCLUDE_DOMAINS")
    config.write_text("exclude_domains = [1, 2]\n")
    with pytest.raises(UsageError, match=r"config.toml: a domain must be text, got 1"):
        load_settings()
    result = runner.invoke(app, ["search", "q", "--web", "--site", "a.org/x"])
    assert result.exit_code == 2 and "--site: 'a.org/x' is not a domain name" in result.stderr
