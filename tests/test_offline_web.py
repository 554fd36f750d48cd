"""The offline web (evals.recipes.offline_web): its server speaks SearxNG and serves pages with
chrome; the fetcher reads it only when allowed by exact address; a tiny recipe run through
the real CLI keeps the chrome out of the evidence and turns failing pages into reasons.

Everything runs on 127.0.0.1; the model is the tests' fake (`--model fake:`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx
import pytest
from conftest import FakeGenerator
from typer.testing import CliRunner
from web_servers import local_server

from evals.recipes import offline_web
from evals.recipes.local_web import SNIPPET_MAX, Page, SearchIndex, pages_from_passages
from evals.recipes.web_pages import CHROME_PHRASES, FAILURES, failure_of, serve_web
from rag.core.errors import UsageError
from rag.web.fetch import FetchError, fetch_page, parse_private_hosts

TOWER = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the "
    "tower from 1887 to 1889 as the entrance to the 1889 World's Fair."
)
PASSAGES = [
    {"title": "Eiffel Tower", "text": TOWER},
    {
        "title": "Eiffel Tower",
        "text": "The tower is 330 metres tall, about as tall as an "
        "81-storey building, and the tallest structure in Paris.",
    },  # fmt: skip
    {
        "title": "Tower Bridge",
        "text": "Tower Bridge is a combined bascule and suspension "
        "bridge in London, built between 1886 and 1894.",
    },  # fmt: skip
    {
        "title": "Gustave Eiffel",
        "text": "Gustave Eiffel was a French civil engineer whose "
        "company built the Eiffel Tower for the 1889 Universal Exposition.",
    },  # fmt: skip
]


def failing_titles() -> dict[str, str]:
    """A title for each way a page fails (failure_of hashes the title)."""
    found: dict[str, str] = {}
    for i in range(10_000):
        title = f"Eiffel Tower trivia {i}"
        kind = failure_of(Page(title, ("x",), "x"))
        if kind and kind != "slow" and kind not in found:
            found[kind] = title
        if len(found) == len(FAILURES) - 1:
            return found
    raise AssertionError("no titles for every failure")


def host_of(url: str) -> str:
    return url.split("//", 1)[1]


def test_search_speaks_searxng_json_with_engine_length_snippets() -> None:
    index = SearchIndex(pages_from_passages(PASSAGES))
    with serve_web(index) as (url, _):
        found = httpx.get(url + "/search", params={"q": "who built the eiffel tower",
                                                   "format": "json"}).json()  # fmt: skip
        refused = httpx.get(url + "/search", params={"q": "eiffel"})
    results = found["results"]
    tower = next(r for r in results if r["title"] == "Eiffel Tower")
    assert tower["url"] == url + "/wiki/Eiffel_Tower"
    assert all(0 < len(r["content"]) <= SNIPPET_MAX + 4 for r in results)
    assert "designed and built" in tower["content"]  # the sentence the query matches best
    assert refused.status_code == 403  # SearxNG without `json` in its formats


def test_page_has_chrome_and_the_fetcher_keeps_only_the_article() -> None:
    index = SearchIndex(pages_from_passages(PASSAGES))
    with serve_web(index) as (url, _):
        markup = httpx.get(url + "/wiki/Eiffel_Tower").text
        page = fetch_page(
            url + "/wiki/Eiffel_Tower", private_hosts=parse_private_hosts(host_of(url))
        )
    assert all(phrase in markup for phrase in CHROME_PHRASES)
    assert TOWER in " ".join(page.text.split())  # words split across tags come out joined
    assert not [phrase for phrase in CHROME_PHRASES if phrase in page.text]


def test_loopback_is_refused_by_default_and_beyond_the_allowed_address() -> None:
    index = SearchIndex(pages_from_passages(PASSAGES))
    with serve_web(index) as (url, _), local_server({}) as other:
        page = url + "/wiki/Eiffel_Tower"
        with pytest.raises(FetchError, match="non-public"):
            fetch_page(page)
        with pytest.raises(FetchError, match="non-public"):  # another port on the same host
            fetch_page(page, private_hosts=parse_private_hosts(host_of(other.url)))
        other.routes["/hop"] = lambda _: (302, {"Location": page}, b"")
        with pytest.raises(FetchError, match="non-public"):  # a redirect away from it
            fetch_page(other.url + "/hop", private_hosts=parse_private_hosts(host_of(other.url)))
        assert fetch_page(page, private_hosts=parse_private_hosts(host_of(url))).title


@pytest.mark.parametrize("bad", ["localhost:8080", "127.0.0.1", "10.0.0.1:0", "[::1]:x"])
def test_private_hosts_are_ip_literals_with_a_port(bad: str) -> None:
    with pytest.raises(UsageError, match="not an IP address and port"):
        parse_private_hosts(bad)


def test_failing_pages_fail_as_the_real_web_does() -> None:
    titles = failing_titles()
    pages = pages_from_passages([{"title": t, "text": TOWER} for t in titles.values()])
    with serve_web(SearchIndex(pages)) as (url, _):
        allowed = parse_private_hosts(host_of(url))
        reasons = {}
        for kind, title in titles.items():
            with pytest.raises(FetchError) as caught:
                fetch_page(f"{url}/wiki/{title.replace(' ', '_')}", private_hosts=allowed)
            reasons[kind] = str(caught.value)
    assert "HTTP 404" in reasons["missing"]
    assert "application/pdf" in reasons["pdf"]
    assert "no readable text" in reasons["huge"]  # the article lies beyond the size cap


def _write_data(folder: Path) -> list[str]:
    """NQ-like files: dev questions, their gold passages (oracle file), and leads."""
    questions = [
        ("who designed and built the eiffel tower", ["Gustave Eiffel"]),
        ("when was tower bridge in london built", ["between 1886 and 1894"]),
    ]
    (folder / "dev.jsonl").write_text(
        "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in questions)
    )
    gold = {questions[0][0]: PASSAGES[0], questions[1][0]: PASSAGES[2]}
    with gzip.open(folder / "oracle.jsonl.gz", "wt") as fh:
        for q, ctx in gold.items():
            fh.write(json.dumps({"question": q, "ctxs": [{**ctx, "isgold": True}]}) + "\n")
    leads = [PASSAGES[1], PASSAGES[3]]
    leads += [{"title": t, "text": TOWER} for t in failing_titles().values()]
    with gzip.open(folder / "wiki.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in leads)
    return [q for q, _ in questions]


def test_recipe_runs_the_cli_keeps_chrome_out_and_reports_unread_pages(
    tmp_path: Path,
    fake_model: FakeGenerator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rag.cli.app import app

    _write_data(tmp_path)
    seen_env: list[dict[str, str]] = []

    def in_process(*args: str, env: dict[str, str] | None = None) -> None:
        for name, value in (env or {}).items():
            if name.startswith("RAG_"):
                monkeypatch.setenv(name, value)
        seen_env.append(dict(env or {}))
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 0, result.output

    out = tmp_path / "out"
    offline_web.main(
        ["--nq-dev", str(tmp_path / "dev.jsonl"), "--oracle", str(tmp_path / "oracle.jsonl.gz"),
         "--wiki", str(tmp_path / "wiki.jsonl.gz"), "--out", str(out), "--n", "2",
         "--conditions", "closed,web,web[fetch=3]", "--model", "fake:", "--delay", "0,0"],
        run=in_process,
    )  # fmt: skip
    assert seen_env[0]["RAG_ENGINE"] == "searxng"
    assert "RAG_ALLOW_PRIVATE_FETCH" not in seen_env[0]
    rows = [json.loads(line) for line in (out / "run" / "predictions.jsonl").open()]
    assert {r["condition"] for r in rows} == {"closed", "web", "web[fetch=3]"}
    fetched = [r for r in rows if r["condition"] == "web[fetch=3]"]
    texts = [s["text"] for r in rows for s in r["sources"]]
    assert texts and not [p for p in CHROME_PHRASES for t in texts if p in t]
    warnings = [w for r in fetched for w in r["warnings"]]
    assert any("Could not read" in w and "using its snippet" in w for w in warnings)
    assert any(r["hit"] for r in fetched)  # the pages that were read reached the model
    table = capsys.readouterr().out
    assert "| web[fetch=3] | 2 |" in table and "pages unread" in table


def test_evidence_only_counts_the_prompt_and_answers_nothing(fake_generator: FakeGenerator) -> None:
    from evals.recipes.evidence_only import EvidenceOnly
    from rag.core.types import Message

    generator = EvidenceOnly(fake_generator)
    messages = [Message("user", "one two three")]
    generation = generator.generate(messages, max_tokens=8)
    assert generation.text == ""
    assert generation.timings.prompt_tokens == fake_generator.count_prompt_tokens(messages)
    assert generator.context_size == fake_generator.context_size
    assert generator.model_name == "fake (evidence only)"
