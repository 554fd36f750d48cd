"""The research desk in a real browser: the system's Chromium through Playwright
(tests/browser.py: every request beyond 127.0.0.1 is aborted and recorded, and a test
fails if there was one), against a real `rag serve` on 127.0.0.1. SmolLM2 answers for
real in one test; elsewhere a fake model says exactly what a test needs (citations that
exist and one that does not, hostile markup). Skipped, with the reason, without
/usr/bin/chromium or playwright."""

# ruff: noqa: F811 - the fixtures imported from test_serve are the tests' parameters

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from browser import Browser, chromium, missing
from conftest import FakeGenerator, returning
from index_fixtures import docs, fake_embedder  # noqa: F401 - fixtures
from test_serve import SlowGenerator, running
from web_servers import html_reply, local_server

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

TOKEN = "s3cret-token-for-the-page"
QUESTION = "How often should I turn the compost heap?"
#: The fake model's answer: a real citation, a group, and a number no source has.
CITING = "Turn the heap every two weeks [1]. Keep it aerobic [1, 2]. Forest soil [7]."
#: What a hostile document (or a model repeating it) tries to make the page do.
HOSTILE = (
    "<img src=x onerror=alert(1)> <script>alert(2)</script> "
    "![x](http://evil.example/x.png) <a href=javascript:alert(3)>compost</a>"
)
#: How long a test waits for the page (the real model answers well within it).
WAIT_MS = 90_000


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as opened:
        yield opened
        assert opened.refused == [], f"requests left 127.0.0.1: {opened.refused}"
        assert opened.dialogs == [], f"a dialog fired: {opened.dialogs}"


@pytest.fixture
def model(register_part: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> FakeGenerator:
    generator = FakeGenerator(reply=lambda messages: CITING)
    register_part("generator", "fake", returning(generator), argument="ANY")
    return generator


def build(name: str, *paths: Path) -> None:
    from indexers.build import build_index
    from rag.core.config import load_settings

    build_index([str(p) for p in paths], name, load_settings(embedder="fake"))


@pytest.fixture
def notes(fake_embedder: Any, docs: Path) -> str:
    build("notes", docs / "notes.md")
    return "notes"


def open_desk(browser: Browser, url: str, width: int = 1280, height: int = 900) -> Any:
    page = browser.page(width, height)
    page.goto(f"{url}/")
    page.wait_for_selector("#question")
    page.wait_for_selector("fieldset.sources label.check >> nth=0")
    return page


def ask(page: Any, question: str = QUESTION) -> None:
    """Type the question and press Enter; wait until the answer is complete."""
    page.fill("#question", question)
    page.press("#question", "Enter")
    wait_done(page, 0)


def wait_done(page: Any, panel: int) -> None:
    page.wait_for_function(
        f"""() => {{
            const answer = document.querySelectorAll('.result .answer')[{panel}];
            return answer && answer.getAttribute('aria-busy') === 'false'
                && answer.closest('.result').querySelector('.meta').textContent !== ''
                && !answer.classList.contains('streaming');
        }}""",
        timeout=WAIT_MS,
    )


def watch_text(page: Any) -> None:
    """Record every distinct text length the evidence answer shows while it streams."""
    page.evaluate(
        """() => {
            window.seen = [];
            const answer = document.querySelector('.result .answer');
            new MutationObserver(() => {
                const n = answer.textContent.length;
                if (n && n !== window.seen[window.seen.length - 1]) window.seen.push(n);
            }).observe(answer, {characterData: true, childList: true, subtree: true});
        }"""
    )


@pytest.mark.slow
def test_smollm2_streams_into_the_page(
    browser: Browser, notes: str, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real model's answer arrives piece by piece, then with the sources it read."""
    monkeypatch.setenv("RAG_MAX_TOKENS", "40")
    with running(model="smollm2-135m", indexes=(notes,)) as url:
        page = open_desk(browser, url)
        assert page.is_checked("fieldset.sources input[value=notes]")  # the server's default
        watch_text(page)
        ask(page)
        seen = page.evaluate("window.seen")
        assert len(seen) >= 3, seen  # several updates while streaming, not one at the end
        cards = page.locator(".result .card")
        assert cards.count() >= 1
        assert cards.first.locator("mark").count() >= 1
        assert "smollm2" in page.text_content(".result .meta").lower()


def test_citations_open_their_cards_and_a_made_up_one_says_so(
    browser: Browser, model: FakeGenerator, notes: str
) -> None:
    with running(indexes=(notes,)) as url:
        page = open_desk(browser, url)
        ask(page)
        answer = page.locator(".result .answer").first
        assert answer.text_content().endswith("Forest soil [no source 7].")
        links = answer.locator("a.cite")
        sources = page.locator(".result .card").count()
        assert links.count() == 2 + (sources >= 2)  # [1], [1, ...] and [2] if there is a 2
        assert answer.locator(".cite-missing", has_text="no source 7").count() == 1
        assert answer.locator("a.cite", has_text="7").count() == 0  # never linked elsewhere

        links.first.click()
        card = page.locator(":focus")
        assert card.get_attribute("class").startswith("card")
        assert card.get_attribute("id").endswith("-src-1")
        assert card.is_visible() and card.locator("h4 .num").text_content() == "1"
        assert card.locator("mark").count() >= 1
        read = " ".join(card.locator("mark").all_text_contents())
        assert "two weeks" in read
        assert "notes.md" in card.locator(".where").text_content()

        dropped = page.locator(".result details.dropped")
        if dropped.count():  # what the model did not read, each with why
            dropped.locator("summary").click()
            reasons = dropped.locator(".reason").all_text_contents()
            assert reasons and all(r.startswith("Not read: ") and len(r) > 12 for r in reasons)


def test_the_keyboard_alone_asks_and_opens_a_citation(
    browser: Browser, model: FakeGenerator, notes: str
) -> None:
    with running(indexes=(notes,)) as url:
        page = open_desk(browser, url)
        order = []
        for _ in range(30):  # Tab through the page until the question box
            page.keyboard.press("Tab")
            order.append(
                page.evaluate("document.activeElement.id || document.activeElement.textContent")
            )
            if order[-1] == "question":
                break
        assert order[-1] == "question", order
        page.keyboard.type("How often turn compost?")
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("Every week?")
        assert page.input_value("#question") == "How often turn compost?\nEvery week?"
        page.keyboard.press("Enter")
        wait_done(page, 0)
        for _ in range(30):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.classList.contains('cite')"):
                break
        style = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert style not in ("", "none")  # the focus is visible
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id").endswith("-src-1")
        assert page.get_attribute(".result .answer", "aria-live") == "polite"


def test_stop_and_esc_end_the_generation(
    browser: Browser, register_part: Callable[..., None], notes: str
) -> None:
    """Esc (and the Stop button) abort the stream; the server stops decoding."""
    slow = SlowGenerator(words=3000, delay=0.02)
    register_part("generator", "fake", returning(slow), argument="ANY")
    with running(indexes=(notes,)) as url:
        page = open_desk(browser, url)
        page.fill("#question", "Who wrote Emma?")
        page.press("#question", "Enter")
        page.wait_for_function(
            "() => document.querySelector('.result .answer').textContent.length > 20"
        )
        assert page.is_enabled("#stop")
        page.keyboard.press("Escape")
        page.wait_for_selector(".result .answer.stopped")
        assert "Stopped" in page.text_content(".result .meta")
        assert slow.finished.wait(10)  # the generation ended long before its 3000 words
        assert slow.pulled < 3000
        assert page.is_disabled("#stop")

        slow.finished.clear()
        page.click("#ask")
        page.wait_for_function(
            "() => document.querySelector('.result .answer').textContent.length > 20"
        )
        page.click("#stop")
        page.wait_for_selector(".result .answer.stopped")
        assert slow.finished.wait(10)


def test_a_new_question_mid_answer_takes_the_panel_over(
    browser: Browser, register_part: Callable[..., None], notes: str
) -> None:
    """Enter during an answer stops it and asks anew; the stopped one's ending never
    lands on the new answer."""
    slow = SlowGenerator(words=60, delay=0.02)
    register_part("generator", "fake", returning(slow), argument="ANY")
    with running(indexes=(notes,)) as url:
        page = open_desk(browser, url)
        page.fill("#question", "Who wrote Emma?")
        page.press("#question", "Enter")
        long_enough = "() => document.querySelector('.result .answer').textContent.length > 20"
        page.wait_for_function(long_enough)
        page.fill("#question", "Who wrote Persuasion?")
        page.press("#question", "Enter")
        wait_done(page, 0)
        answer = page.locator(".result .answer").first
        assert "stopped" not in answer.get_attribute("class")
        assert "tokens/s" in page.text_content(".result .meta")
        assert len(slow.calls) == 2


def test_a_failure_mid_answer_is_the_server_s_one_line(
    browser: Browser, register_part: Callable[..., None], notes: str
) -> None:
    from rag.core.errors import GenerationError

    class Broken(FakeGenerator):
        def generate(self, messages: Any, **options: Any) -> Any:
            raise GenerationError("The model server hung up.")

    register_part("generator", "fake", returning(Broken()), argument="ANY")
    with running(indexes=(notes,)) as url:
        page = open_desk(browser, url)
        page.fill("#question", QUESTION)
        page.press("#question", "Enter")
        alert = page.wait_for_selector(".result .error[role=alert]")
        assert alert.text_content() == "The model server hung up."
        assert page.get_attribute(".result .answer", "aria-busy") == "false"
        assert page.is_disabled("#stop") and page.is_enabled("#ask")


def test_compare_with_closed_book_asks_without_sources(
    browser: Browser, model: FakeGenerator, notes: str
) -> None:
    with running(indexes=(notes,)) as url:
        page = open_desk(browser, url)
        bodies: list[dict[str, Any]] = []
        page.on(  # the question (kept: in a conversation), then the comparison (not kept)
            "request",
            lambda r: bodies.append(json.loads(r.post_data)) if r.url.endswith("/ask") else None,
        )
        ask(page)
        page.click("#compare")
        wait_done(page, 1)
        assert bodies[0]["index"] == ["notes"] and bodies[0]["search"] is False
        assert bodies[1] == {"question": QUESTION, "index": [], "search": False, "stream": True}
        assert "<source" not in model.calls[-1][-1].content  # the closed-book prompt
        panels = page.locator(".result")
        assert panels.count() == 2 and panels.nth(1).is_visible()
        assert "Closed-book" in panels.nth(1).locator("h2").text_content()
        closed = panels.nth(1).locator(".answer")
        assert closed.locator("a.cite").count() == 0  # no sources: no citation is real
        assert closed.locator(".cite-missing", has_text="no source 1").count() >= 1
        assert panels.nth(0).locator(".card").count() >= 1  # both shown side by side
        box0, box1 = panels.nth(0).bounding_box(), panels.nth(1).bounding_box()
        assert box1["x"] > box0["x"] + box0["width"] - 1  # beside it on a desktop


def test_a_hostile_document_renders_as_text(
    browser: Browser, register_part: Callable[..., None], fake_embedder: Any, tmp_path: Path
) -> None:
    """Markup and a Markdown image in a file's name, its text and the answer stay text:
    no dialog, no element made from them, no request for them (not even to 127.0.0.1)."""
    generator = FakeGenerator(reply=lambda messages: f"Compost answer {HOSTILE} [1].")
    register_part("generator", "fake", returning(generator), argument="ANY")
    folder = tmp_path / "hostile"
    folder.mkdir()
    doc = folder / "<img src=x onerror=alert(4)>.md"
    doc.write_text(
        f"# <script>alert(5)</script> Compost\n\nTurn the compost heap every two weeks. {HOSTILE}\n"
        "![y](http://evil.example/y.png) Compost smells like forest soil.\n"
    )
    build("hostile", doc)
    with running(indexes=("hostile",)) as url:
        page = open_desk(browser, url)
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        ask(page, "How often turn the compost heap?")
        page.click(".result a.cite >> nth=0")
        text = page.text_content("main")
        assert "<img src=x onerror=alert(1)>" in text and "<script>alert(2)</script>" in text
        assert "![x](http://evil.example/x.png)" in text
        assert "<img src=x onerror=alert(4)>.md" in text  # the file name, as text
        assert (
            page.locator("main img, main script, main iframe, main a[href^=javascript]").count()
            == 0
        )
        page.wait_for_timeout(300)  # anything an onerror would have loaded
    # Only the page's own files (the icon may load late), the question itself and the
    # conversation it is kept in.
    paths = [urlsplit(u).path for u in requested]
    assert [p for p in paths if not p.startswith(("/static/", "/v1/conversations"))] == []
    # (browser fixture: no dialog fired, no request beyond 127.0.0.1)


def sse_answer(body: str) -> dict[str, Any]:
    """The `answer` event of a /v1/ask stream."""
    for block in body.split("\n\n"):
        if block.startswith("event: answer\n"):
            return json.loads(block.split("data: ", 1)[1])
    raise AssertionError(f"no answer event in {body[:300]!r}")


def test_the_marks_are_exactly_the_spans_the_model_read(
    browser: Browser,
    model: FakeGenerator,
    fake_embedder: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spans count characters as Python does (code points); the page marks the same
    characters even where emoji take two UTF-16 units in JavaScript."""
    monkeypatch.setenv("RAG_EVIDENCE_TOKENS", "60")  # a budget that reads sources in part
    filler = " ".join(f"Turn the compost heap {i} often, past 🏔️ hills {i} 🌍." for i in range(60))
    doc = tmp_path / "mixed.md"
    doc.write_text(f"# Mixed\n\n{filler}\n")
    build("mixed", doc)
    with running(indexes=("mixed",)) as url:
        page = open_desk(browser, url)
        with page.expect_response(lambda r: r.url.endswith("/ask")) as response:
            ask(page, "How often turn the compost heap?")
        answer = sse_answer(response.value.text())
        assert answer["sources"]
        partial = 0
        for source in answer["sources"]:
            card = page.locator(f".result .card:has(h4 .num:text-is('{source['id']}'))")
            spans = source["spans"] or [[0, len(source["text"])]]
            expected = [source["text"][a:b] for a, b in spans]
            assert card.locator("mark").all_text_contents() == expected
            partial += card.locator(".unread").count() > 0
        assert partial, "no source was read in part: the test would not show the offsets"


def test_a_phone_has_no_horizontal_scroll(
    browser: Browser, register_part: Callable[..., None], fake_embedder: Any, tmp_path: Path
) -> None:
    long_word = "x" * 300
    generator = FakeGenerator(
        reply=lambda messages: f"See {long_word} and https://{long_word}.example [1]."
    )
    register_part("generator", "fake", returning(generator), argument="ANY")
    deep = tmp_path / ("a-very-long-folder-name-" * 6) / ("nested-" * 10)
    deep.mkdir(parents=True)
    doc = deep / ("compost-notes-with-a-long-name-" * 4 + ".md")
    doc.write_text(f"# Compost\n\nTurn the compost heap every two weeks. {long_word}\n")
    build("phone", doc)
    with running(indexes=("phone",)) as url:
        page = open_desk(browser, url, 375, 812)
        width = "document.documentElement.scrollWidth"
        assert page.evaluate(width) <= 375
        ask(page, "How often turn the compost heap?")
        page.click("#compare")
        wait_done(page, 1)
        page.click(".result a.cite >> nth=0")
        assert page.evaluate(width) <= 375
        assert page.evaluate("document.body.scrollWidth") <= 375


def test_the_token_is_asked_once_and_kept_in_an_httponly_cookie(
    browser: Browser, model: FakeGenerator, notes: str
) -> None:
    with running(token=TOKEN, indexes=(notes,)) as url:
        page = browser.page()
        page.goto(f"{url}/")
        page.wait_for_selector("#token")
        assert page.locator("#question").count() == 0  # nothing until signed in
        page.fill("#token", "not-the-token")
        page.press("#token", "Enter")
        page.wait_for_selector("text=That is not this server's token.")
        assert browser.context.cookies() == []

        page.fill("#token", TOKEN)
        page.click("#signin-submit")
        page.wait_for_selector("#question")
        cookies = browser.context.cookies()
        assert [c["name"] for c in cookies] == ["rag_session"]
        assert cookies[0]["httpOnly"] is True and cookies[0]["sameSite"] == "Strict"
        assert TOKEN not in cookies[0]["value"]
        assert "rag_session" not in page.evaluate("document.cookie")  # no script reads it
        assert page.is_checked("fieldset.sources input[value=notes]")  # /v1/indexes worked
        ask(page)
        assert page.locator(".result .card").count() >= 1

        page.reload()  # the cookie keeps it signed in
        page.wait_for_selector("#question")
        assert page.locator("#token").count() == 0
        page.click("#sign-out")
        page.wait_for_selector("#token")
        assert browser.context.cookies() == []


HOSTILE_PAGE = """<!doctype html><title>evil</title><script>
const api = "%(api)s";
const tries = {
  read: () => fetch(api + "/v1/indexes", {credentials: "include"}).then(r => r.text()),
  blind: () => fetch(api + "/v1/indexes", {mode: "no-cors", credentials: "include"})
    .then(r => "opaque:" + r.type),
  ask: () => fetch(api + "/v1/ask", {method: "POST", mode: "no-cors", credentials: "include",
    headers: {"Content-Type": "text/plain"}, body: JSON.stringify({question: "steal"})})
    .then(r => "opaque:" + r.type),
  json: () => fetch(api + "/v1/ask", {method: "POST", credentials: "include",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({question: "steal"})})
    .then(r => r.text()),
  session: () => fetch(api + "/v1/session", {method: "POST", mode: "no-cors",
    credentials: "include", headers: {"Content-Type": "text/plain"},
    body: JSON.stringify({token: "guessed-token-123"})}).then(r => "opaque:" + r.type),
};
window.results = {};
Promise.all(Object.entries(tries).map(([name, run]) =>
  run().then(v => { results[name] = "ok:" + v; }, e => { results[name] = "failed:" + e; })
)).then(() => { window.done = true; });
</script>"""


@pytest.mark.parametrize("token", ["", TOKEN], ids=["no-token", "signed-in"])
def test_a_page_of_another_origin_cannot_use_the_api(
    browser: Browser, model: FakeGenerator, notes: str, token: str
) -> None:
    """A hostile page on another port of 127.0.0.1 (same site, other origin; the browser
    sends it the SameSite cookie) calls the API every way a page can: the server refuses
    each request it gets (403), the model never runs, the page reads nothing."""
    with running(token=token, indexes=(notes,)) as url:
        if token:  # the user is signed in on the desk in this very browser
            desk = browser.page()
            desk.goto(f"{url}/")
            desk.fill("#token", token)
            desk.press("#token", "Enter")
            desk.wait_for_selector("#question")
            assert browser.context.cookies()[0]["name"] == "rag_session"
        markup = HOSTILE_PAGE % {"api": url}
        with local_server({"/": lambda request: html_reply(markup)}) as evil:
            page = browser.page()
            statuses: list[tuple[str, str, int]] = []
            page.on(
                "response",
                lambda r: (
                    statuses.append((r.request.method, r.url, r.status))
                    if r.url.startswith(url)
                    else None
                ),
            )
            page.goto(f"{evil.url}/")
            page.wait_for_function("() => window.done === true", timeout=30_000)
            results = page.evaluate("window.results")
            page.wait_for_timeout(200)
    assert model.calls == []  # nothing reached the model
    for name, result in results.items():
        assert "notes" not in result and "Jane" not in result and "Turn the heap" not in result, (
            name
        )
        assert result.startswith("failed:") or result == "ok:opaque:opaque", (name, result)
    assert statuses, "no request reached the server (the test would prove nothing)"
    assert all(status == 403 for _, _, status in statuses), statuses
    if token:  # the cookie was sent (same site) and still opened nothing
        assert len(browser.context.cookies()) == 1


def test_the_theme_follows_the_system_and_the_toggle_is_remembered(
    browser: Browser, model: FakeGenerator
) -> None:
    background = "getComputedStyle(document.body).backgroundColor"
    with running() as url:
        page = open_desk(browser, url)
        light = page.evaluate(background)
        page.emulate_media(color_scheme="dark")
        dark = page.evaluate(background)
        assert light != dark
        page.emulate_media(color_scheme="light")
        page.click("#theme-toggle")
        assert page.get_attribute("html", "data-theme") == "dark"
        assert page.evaluate(background) == dark
        assert page.get_attribute("#theme-toggle", "aria-pressed") == "true"
        page.reload()
        page.wait_for_selector("#question")
        assert page.get_attribute("html", "data-theme") == "dark"  # remembered
        assert page.evaluate(background) == dark
