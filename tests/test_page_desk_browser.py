"""The research desk's Conversations sidebar and Runs view in a real browser (the system's
Chromium through Playwright, tests/browser.py: a request beyond 127.0.0.1 or a dialog
fails the test), against a real `rag serve` on 127.0.0.1 with a scripted fake model. Every
question asked in the page is kept in a conversation; a follow-up goes through the chat
path, its rewritten search query shown; eval runs show their table, plot and evidence.
Skipped, with the reason, without /usr/bin/chromium or playwright."""

# ruff: noqa: F811 - the fixtures imported from other test modules are the tests' parameters

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from browser import Browser, missing
from conftest import FakeGenerator, returning
from index_fixtures import docs, fake_embedder  # noqa: F401 - fixtures
from test_page_browser import QUESTION, TOKEN, browser, notes, open_desk  # noqa: F401
from test_run_routes import runs  # noqa: F401 - fixture
from test_serve import running

from rag.core.types import Message

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

FOLLOW_UP = "And in winter?"
#: What the fake model rewrites the follow-up into (words of the conversation, as
#: `rag.chat.plausible_rewrite` wants them).
REWRITTEN = "how often turn the compost heap in winter"
#: Markup a conversation's question or title may carry; it must stay text.
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
WAIT_MS = 60_000


def scripted(messages: list[Message]) -> str:
    """Rewrites a follow-up (the chat path's prompt); answers every question citing [1]."""
    last = messages[-1].content
    if "Standalone search query:" in last:
        return REWRITTEN
    return "Turn the heap every two weeks [1]."


@pytest.fixture
def model(register_part: Callable[..., None]) -> FakeGenerator:
    generator = FakeGenerator(reply=scripted)
    register_part("generator", "fake", returning(generator), argument="ANY")
    return generator


def ask(page: Any, question: str) -> None:
    """Ask `question` (Enter) and wait until its answer is complete (the live panel, not
    a stored turn shown above it)."""
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.results .result');
            const answer = panel && panel.querySelector('.answer');
            return answer && !panel.hidden && answer.getAttribute('aria-busy') === 'false'
                && panel.querySelector('.meta').textContent !== ''
                && !answer.classList.contains('streaming');
        }""",
        timeout=WAIT_MS,
    )


def listed(page: Any) -> list[str]:
    return page.locator("#conv-list button.conv-open").all_text_contents()


def wait_listed(page: Any, titles: list[str]) -> None:
    page.wait_for_function(
        """(titles) => JSON.stringify([...document.querySelectorAll(
            '#conv-list button.conv-open')].map(b => b.textContent)) === JSON.stringify(titles)""",
        arg=titles,
        timeout=WAIT_MS,
    )


def stored(url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/v1/conversations", timeout=30).json()["conversations"]


def test_a_question_is_kept_found_after_a_reload_searched_renamed_and_deleted(
    browser: Browser, model: FakeGenerator, notes: str
) -> None:
    with running(indexes=(notes,)) as url:
        page = open_desk(browser, url)
        assert page.is_visible("#conversations")
        assert page.is_hidden("nav.views a[data-view=runs]")  # no --runs: no Runs view
        page.wait_for_selector("text=None yet: the first question you ask starts one.")
        with page.expect_request(lambda r: r.url.endswith("/ask")) as request:
            ask(page, QUESTION)
        ident = stored(url)[0]["id"]
        assert urlsplit(request.value.url).path == f"/v1/conversations/{ident}/ask"
        wait_listed(page, [QUESTION])
        assert page.get_attribute("#conv-list button.conv-open", "aria-current") == "true"
        page.wait_for_function(  # the open conversation is named by its first question
            "(t) => document.querySelector('.conv-current-title').textContent === t",
            arg=f"Open: {QUESTION}",
        )

        page.reload()
        page.wait_for_selector("#conv-list button.conv-open")
        assert listed(page) == [QUESTION]  # kept on the server, found again
        assert "1 turn" in page.text_content("#conv-list .conv-meta")
        assert page.locator(".turns .result").count() == 0

        # Search by a word (typed, debounced), then open the match with the keyboard alone.
        page.fill("#conv-search", "nothing-like-it")
        page.wait_for_selector("text=No conversation matches “nothing-like-it”.")
        assert listed(page) == []
        page.fill("#conv-search", "compost")
        wait_listed(page, [QUESTION])
        page.focus("#conv-search")
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.classList.contains('conv-open')"):
                break
        page.keyboard.press("Enter")
        turn = page.locator(".turns .result")
        turn.wait_for()
        assert turn.locator("h2").text_content() == QUESTION
        assert turn.locator(".answer").text_content() == "Turn the heap every two weeks [1]."
        assert turn.locator(".card").count() >= 1  # its sources, as stored
        assert turn.locator(".query").is_hidden()  # a first turn searched for itself
        assert page.evaluate("document.activeElement.id") == "question"

        # Rename: Enter saves; Esc cancels.
        page.click("#conv-rename")
        assert page.evaluate("document.activeElement.id") == "conv-new-title"
        page.fill("#conv-new-title", "Compost plans")
        page.evaluate(  # saved, and straight on to the search box before the server answers
            """() => {
                document.querySelector('form.conv-rename').requestSubmit();
                document.querySelector('#conv-search').focus();
            }"""
        )
        page.wait_for_function(
            "() => document.querySelector('.conv-current-title').textContent.endsWith('plans')"
        )
        assert page.evaluate("document.activeElement.id") == "conv-search"  # focus not taken
        page.fill("#conv-search", "")
        wait_listed(page, ["Compost plans"])
        assert stored(url)[0]["title"] == "Compost plans"
        assert "Compost plans" in page.text_content(".conv-current-title")
        page.click("#conv-rename")
        page.fill("#conv-new-title", "Not this")
        page.press("#conv-new-title", "Escape")
        assert page.is_hidden(".conv-rename") and stored(url)[0]["title"] == "Compost plans"

        # Export: the conversation as `rag history export` writes it.
        assert page.get_attribute("#conv-export", "href") == f"/v1/conversations/{ident}/export"
        with page.expect_download() as download:
            page.click("#conv-export")
        exported = Path(download.value.path()).read_text()
        assert exported.startswith("# Compost plans") and QUESTION in exported

        # Delete: asked first, in the page; "Keep it" keeps it.
        page.click("#conv-delete")
        assert "Compost plans" in page.text_content(".conv-confirm")
        assert page.evaluate("document.activeElement.textContent") == "Keep it"
        page.keyboard.press("Enter")
        assert page.is_hidden(".conv-confirm") and len(stored(url)) == 1
        page.click("#conv-delete")
        page.click("#conv-delete-yes")
        page.wait_for_selector("text=None yet: the first question you ask starts one.")
        assert listed(page) == [] and stored(url) == []
        assert page.locator(".turns .result").count() == 0  # the Ask view let it go
        assert page.is_hidden(".conv-current")


def test_a_follow_up_goes_through_the_conversation_with_its_rewritten_query(
    browser: Browser, model: FakeGenerator, notes: str
) -> None:
    with running(indexes=(notes,)) as url:
        page = open_desk(browser, url)
        ask(page, QUESTION)
        ident = stored(url)[0]["id"]
        paths: list[str] = []
        page.on("request", lambda r: paths.append(urlsplit(r.url).path))
        ask(page, FOLLOW_UP)
        assert f"/v1/conversations/{ident}/ask" in paths and "/v1/ask" not in paths
        answer = page.locator(".results .result").first
        assert answer.locator(".query").text_content() == f"Searched for: {REWRITTEN}"
        history = page.locator(".turns .result")  # the turn before it, above
        assert history.count() == 1 and history.locator("h2").text_content() == QUESTION
        rewriter = [m for m in model.calls if "Standalone search query:" in m[-1].content]
        assert rewriter and QUESTION in rewriter[-1][-1].content  # it saw the stored turn
        got = httpx.get(f"{url}/v1/conversations/{ident}", timeout=30).json()
        assert [t["question"] for t in got["turns"]] == [QUESTION, FOLLOW_UP]
        assert got["turns"][1]["search_query"] == REWRITTEN

        page.reload()  # opened again, both turns, the follow-up's query shown
        page.click("#conv-list button.conv-open")
        page.wait_for_function("() => document.querySelectorAll('.turns .result').length === 2")
        queries = page.locator(".turns .result .query")
        assert queries.nth(0).is_hidden()
        assert queries.nth(1).text_content() == f"Searched for: {REWRITTEN}"
        ask(page, "And in spring?")  # asked in the re-opened conversation: its third turn
        turns = httpx.get(f"{url}/v1/conversations/{ident}", timeout=30).json()["turns"]
        assert [t["question"] for t in turns] == [QUESTION, FOLLOW_UP, "And in spring?"]
        page.wait_for_function("() => document.querySelectorAll('.turns .result').length === 2")

        # "New conversation": the next question starts another one.
        page.click("#conv-new")
        assert page.locator(".turns .result").count() == 0
        ask(page, "What about leaves?")
        wait_listed(page, ["What about leaves?", QUESTION])
        assert [c["turns"] for c in stored(url)] == [1, 3]
        assert page.locator(".results .result .query").first.is_hidden()


def test_a_hostile_title_and_question_stay_text(
    browser: Browser, model: FakeGenerator, notes: str
) -> None:
    """A question and a title made of markup are shown as typed: no element is made from
    them, no dialog fires, nothing is requested for them (not even from 127.0.0.1)."""
    with running(indexes=(notes,)) as url:
        page = open_desk(browser, url)
        requested: list[str] = []
        page.on("request", lambda r: requested.append(urlsplit(r.url).path))
        ask(page, f"Compost {HOSTILE}")
        wait_listed(page, [f"Compost {HOSTILE}"])
        page.click("#conv-rename")
        page.fill("#conv-new-title", f"{HOSTILE} renamed")
        page.press("#conv-new-title", "Enter")
        wait_listed(page, [f"{HOSTILE} renamed"])
        page.reload()
        page.wait_for_selector("#conv-list button.conv-open")
        page.click("#conv-list button.conv-open")
        page.locator(".turns .result").wait_for()
        assert page.text_content(".turns .result h2") == f"Compost {HOSTILE}"
        assert f"{HOSTILE} renamed" in page.text_content("#conversations")
        page.click("#conv-delete")
        assert f"Delete “{HOSTILE} renamed”" in page.text_content(".conv-confirm")
        made = "#conversations img, #conversations script, main img, main script"
        assert page.locator(made).count() == 0
        page.hover("#conv-list button.conv-open")
        page.wait_for_timeout(300)  # anything an onerror would have loaded
    # The page itself (reloaded) and the API; never an `x` or anything else markup names.
    page_and_api = [
        p for p in requested if p in ("/", "/healthz") or p.startswith(("/v1/", "/static/"))
    ]
    assert requested == page_and_api
    # (browser fixture: no dialog fired, no request beyond 127.0.0.1)


def test_the_sidebar_folds_away_on_a_phone(
    browser: Browser, model: FakeGenerator, notes: str
) -> None:
    width = "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    with running(indexes=(notes,)) as url:
        long = "x" * 190  # one word, near the most a title may have (200)
        for title in (f"Compost {long}", "https://" + "y" * 170 + ".example/compost"):
            made = httpx.post(f"{url}/v1/conversations", json={"title": title}, timeout=30)
            assert made.status_code == 201, made.text
        page = open_desk(browser, url, 375, 812)
        toggle = page.locator("button.conv-toggle")
        assert toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false"
        assert page.is_hidden("#conv-body")
        assert page.evaluate(width) <= 375
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"
        page.wait_for_selector("#conv-list button.conv-open >> nth=1")
        assert page.is_visible("#conv-search")
        assert page.evaluate(width) <= 375  # long titles wrap
        page.click("#conv-list button.conv-open >> nth=1")
        page.locator("#question:focus").wait_for()
        assert page.is_hidden("#conv-body")  # opened: folded away again
        ask(page, QUESTION)
        assert page.evaluate(width) <= 375
        toggle.click()
        page.click("#conv-rename")
        assert page.evaluate(width) <= 375

        desktop = open_desk(browser, url)
        assert desktop.is_hidden("button.conv-toggle") and desktop.is_visible("#conv-search")


def test_the_runs_view_shows_the_table_the_plot_and_the_evidence(
    browser: Browser, runs: Path
) -> None:
    """On a server with a token, signed in once: the plot loads with the session cookie."""
    results = json.loads((runs / "good" / "results.json").read_text())
    with running(runs_dir=runs, token=TOKEN) as url:
        page = browser.page()
        page.goto(f"{url}/")
        page.fill("#token", TOKEN)
        page.press("#token", "Enter")
        page.wait_for_selector("#question")
        link = page.locator("nav.views a[data-view=runs]")
        link.wait_for()
        link.click()
        page.wait_for_selector("#view-runs .run-link")
        names = page.locator("#view-runs .run-link").all_text_contents()
        assert set(names) == {"good", "broken", "badline"}
        broken = page.locator("#view-runs .run-item", has=page.locator("text=broken"))
        assert broken.locator(".error").text_content()  # the one line `rag eval report` gives

        page.click("#view-runs .run-link:text-is('good')")
        page.wait_for_selector("#view-runs table.run-table")
        assert page.evaluate("location.hash") == "#/runs/good"
        assert page.evaluate("document.activeElement.id") == "run-title"
        rows = page.locator("#view-runs table.run-table tbody tr")
        assert rows.locator("th").all_text_contents() == list(results["conditions"])
        tiny = results["conditions"]["index:tiny"]
        row = rows.nth(1)
        assert row.locator("td[data-key=acc]").text_content() == f"{100 * tiny['accuracy']:.1f}"
        low, high = tiny["accuracy_ci"]
        assert row.locator("td[data-key=ci]").text_content() == f"{100 * low:.1f}–{100 * high:.1f}"
        assert row.locator("td[data-key=helped]").text_content() == "+1 / −1"
        assert "vs closed" in row.locator("td[data-key=versus]").text_content()
        assert rows.nth(0).locator("td[data-key=versus]").text_content() == "baseline"

        plot = page.locator("#view-runs .run-plot img")
        assert plot.get_attribute("src") == "/v1/runs/good/plot.png"
        page.wait_for_function(
            "() => { const i = document.querySelector('#view-runs .run-plot img');"
            " return i.complete && i.naturalWidth > 0; }"
        )

        helped = page.locator("#view-runs .run-questions.helped details.run-question")
        assert helped.count() == 1
        assert page.locator("#view-runs .run-questions.hurt details.run-question").count() == 1
        helped.locator("summary").first.click()
        assert helped.locator(".evidence-answer").text_content() == "Canberra"
        assert helped.locator(".closed-answer").text_content() == "I am not sure."
        passage = helped.locator(".run-evidence details").first
        assert passage.locator("summary").text_content() == "Canberra"
        assert passage.locator(".excerpt").is_hidden()  # collapsed until opened
        passage.locator("summary").click()
        assert "capital city of Australia" in passage.locator(".excerpt").text_content()

        # Reached directly (a reload, a shared address), and on a phone, no page scroll.
        phone = browser.page(375, 812)
        phone.goto(f"{url}/#/runs/good")
        phone.wait_for_selector("#view-runs table.run-table")
        assert phone.is_hidden("#view-ask")
        width = "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        assert phone.evaluate(width) <= 375  # the wide table scrolls in its own box

        page.click("text=← All runs")
        page.wait_for_selector("#view-runs .run-link")
        page.click("nav.views a[data-view=ask]")
        page.wait_for_selector("#view-ask", state="visible")
        assert page.is_hidden("#view-runs")
