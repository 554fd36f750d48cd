"""The research desk in a browser: how much later its first character shows than the
API's, how much it loads, and whether a long answer ever blocks the page.

1. First character. `rag serve --model smollm2-135m --index leads` (Wikipedia leads from
   ../shared/data, the default embedder) runs as its own process. The page keeps every
   question in a conversation: with none open, Enter makes one (POST /v1/conversations)
   and asks in it (POST /v1/conversations/ID/ask, stream). So both sides take that same
   server path, each question the first turn of a new conversation (no history, no
   rewritten query; a follow-up would cost a model call first, on either side):
   - page: "New conversation" clicked (nothing is sent), the question typed, Enter; in
     the page, performance.now() at the Enter keydown and at the first mutation that puts
     text into the answer;
   - API: the same two requests over http.client (one connection, as the page's fetch
     keeps one), timed from sending the first to the first `text` event of the second.
     The conversation's creation is printed apart too.
   Page and API alternate, never one right after the other on the same question (the
   model's prefix cache would favour the second); medians print, and the ratio.
   Goal: page <= 1.10 x API + 50 ms.
2. Page weight: the bytes of every file the first load fetched (fresh profile, no
   cache). Goal: <= 150 KB.
3. Long tasks (benchmarks/page_long.py): with 100 conversations in the sidebar (made
   through POST /v1/conversations before the page loads), a 2,000-token answer (a fake
   model streaming fast, with a citation in every sentence) into the page with a
   PerformanceObserver on 'longtask'; the longest prints, with when it started.
   Goal: none over 200 ms.
4. Screenshots (README), into tests/screenshots/ (`--screenshots ''` skips them), after
   real answers, with a few conversations kept first (asked through the API):
   desk-light-desktop.png (1280 px, an answer with a citation's card opened, the
   sidebar), desk-dark-phone.png (375 px, the whole page) and desk-indexes.png (the
   Indexes view, 1280 px).

    python benchmarks/page.py [--rounds 5] [--docs 200] [--max-tokens 24]

Every request the browser makes beyond 127.0.0.1 is aborted and reported (tests/browser.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from page_long import DONE, long_tasks
from serve_load import Servers, build_leads_index, clean_env, free_port, rag_command

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import Browser, chromium, missing  # noqa: E402

#: Questions the first leads answer (the index holds the first --docs of them).
QUESTIONS = [
    "Who composed the opera Carmen?",
    "Who wrote Adventures of Huckleberry Finn?",
    "Who wrote Crime and Punishment?",
    "Who wrote the Divine Comedy?",
    "Where is the statue of Christ the Redeemer?",
    "Who wrote the Brandenburg Concertos?",
    "Who wrote A Doll's House?",
    "Who wrote Candide?",
    "Who wrote The Color Purple?",
    "Where is the Acropolis of Athens?",
]

#: Records, in the page, when Enter is pressed and when the answer first shows text.
MEASURE = """() => {
    const answer = document.querySelector('.results > .result .answer');
    window.bench = {t0: null, first: null};
    document.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey) window.bench = {t0: performance.now(), first: null};
    }, {capture: true});
    new MutationObserver(() => {
        const b = window.bench;
        if (b.t0 !== null && b.first === null && answer.textContent.length > 0
            && answer.classList.contains('streaming')) b.first = performance.now();
    }).observe(answer, {characterData: true, childList: true, subtree: true});
}"""


def post(connection: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> Any:
    """POST `body` as JSON; the response, its status checked (a stream is left unread)."""
    connection.request(
        "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    if response.status not in (200, 201):
        sys.exit(f"POST {path} -> {response.status}: {response.read()[:500]!r}")
    return response


def new_conversation(connection: http.client.HTTPConnection) -> int:
    return int(json.loads(post(connection, "/v1/conversations", {}).read())["id"])


def api_first_text(port: int, body: dict[str, Any]) -> tuple[float, float]:
    """What the page does for a question, through http.client: POST /v1/conversations,
    then POST /v1/conversations/ID/ask (stream). Seconds from sending the first request
    to the first non-empty `text` event, and to the conversation made. The stream is read
    to its end, so the model is idle before the next request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    ident = new_conversation(connection)
    made = time.perf_counter() - started
    response = post(connection, f"/v1/conversations/{ident}/ask", body)
    first, event = None, ""
    while True:
        line = response.readline()
        if not line:
            break
        text = line.decode().rstrip("\r\n")
        if text.startswith("event:"):
            event = text[6:].strip()
        elif text.startswith("data:") and event == "text" and first is None:
            if json.loads(text[5:]).get("text"):
                first = time.perf_counter() - started
        elif text.startswith("data:") and event == "error":
            sys.exit(f"stream error: {text}")
    connection.close()
    if first is None:
        sys.exit("the API streamed no text")
    return first, made


def ask_in_page(page: Any, question: str, *, new: bool = True) -> None:
    """A new conversation (nothing is sent until the question; a page just loaded has
    none open), the question, Enter, and the wait for the answer's end, polled every
    250 ms (not every frame: no CPU taken from the model)."""
    if new:
        page.click("#conv-new")
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_function(DONE, polling=250, timeout=300_000)


def page_first_text(page: Any, question: str) -> float:
    """Seconds from Enter to the first streamed text, measured in the page."""
    ask_in_page(page, question)
    bench = page.evaluate("window.bench")
    if bench["first"] is None:
        sys.exit(f"the page showed no streamed text for {question!r}")
    return (bench["first"] - bench["t0"]) / 1000


def open_desk(page: Any, base: str, index: str, hash_: str = "") -> None:
    """The desk loaded, `index` checked, the conversations listed."""
    page.goto(f"{base}/{hash_}")
    box = f"fieldset.sources input[value={index}]"
    page.wait_for_selector(box)
    if not page.is_checked(box):
        page.check(box)
    listed = "#conv-list li, .conv-status:has-text('None yet')"  # folded away on a phone
    page.wait_for_selector(listed, state="attached")


def first_character(browser: Browser, base: str, port: int, rounds: int, index: str) -> None:
    """Each round asks two questions A and B: page A, API B, API A, page B. No request
    follows one for the same question, so neither side gets the other's prompt from the
    model's prefix cache; each side asks both, and goes first once."""
    page = browser.page()
    open_desk(page, base, index)
    page.evaluate(MEASURE)

    def body(question: str) -> dict[str, Any]:
        return {"question": question, "index": [index], "search": False, "stream": True}

    # One of each first: the model, the index and the page warm.
    page_first_text(page, QUESTIONS[-1])
    api_first_text(port, body(QUESTIONS[-2]))
    times: dict[str, list[float]] = {"page": [], "api": []}
    made: list[float] = []
    for i in range(rounds):
        a, b = QUESTIONS[(2 * i) % 8], QUESTIONS[(2 * i + 1) % 8]
        for side, question in (("page", a), ("api", b), ("api", a), ("page", b)):
            if side == "page":
                took = page_first_text(page, question)
            else:
                took, making = api_first_text(port, body(question))
                made.append(making)
            times[side].append(took)
            print(f"  {side:4}  {question[:46]:46}  {took * 1000:7.0f} ms")
    page_s, api_s = statistics.median(times["page"]), statistics.median(times["api"])
    goal = 1.10 * api_s + 0.050
    print(
        "first character, both sides POST /v1/conversations then "
        "POST /v1/conversations/ID/ask (stream), a new conversation each question:"
    )
    print(f"first character, median of {2 * rounds}: page {page_s * 1000:.0f} ms, "
          f"API {api_s * 1000:.0f} ms (of which the conversation made: median "
          f"{statistics.median(made) * 1000:.0f} ms), ratio {page_s / api_s:.3f}x "
          f"(goal <= 1.10x + 50 ms = {goal * 1000:.0f} ms: "
          f"{'met' if page_s <= goal else 'NOT met'})")  # fmt: skip
    page.close()


def page_weight(browser: Browser, base: str) -> None:
    """Runs first, on the fresh profile: nothing is cached yet."""
    page = browser.page()
    files: dict[str, int] = {}

    def seen(response: Any) -> None:
        path = response.url[len(base) :]
        if path == "/" or path.startswith("/static/"):
            files[path] = len(response.body())

    page.on("response", seen)
    page.goto(f"{base}/")
    page.wait_for_selector("#question")
    page.wait_for_load_state("networkidle")
    total = sum(files.values())
    print(f"page weight: {total / 1000:.1f} KB in {len(files)} files "
          f"(goal <= 150 KB: {'met' if total <= 150_000 else 'NOT met'})")  # fmt: skip
    page.close()


def keep_conversations(port: int, questions: list[str], index: str) -> None:
    """Conversations for the sidebar to show: each question asked in a new one through
    the API, as another client (or an earlier visit) would have."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for question in questions:
        ident = new_conversation(connection)
        fields = {"question": question, "index": [index], "search": False}
        post(connection, f"/v1/conversations/{ident}/ask", fields).read()
    connection.close()


def shot(page: Any, path: Path, *, full_page: bool = False) -> None:
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path} ({path.stat().st_size / 1000:.0f} KB)")


def screenshots(browser: Browser, base: str, port: int, folder: Path, index: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    keep_conversations(port, [QUESTIONS[0], QUESTIONS[3], QUESTIONS[9]], index)

    page = browser.page(1280, 900)
    page.emulate_media(color_scheme="light")
    open_desk(page, base, index)
    # The small model does not cite in every answer: the question first that it did
    # cite in (smollm2-135m, 200 leads), then others, each in a new conversation (so in
    # the sidebar too), until one answer cites.
    for question in (QUESTIONS[5], QUESTIONS[7], QUESTIONS[6]):
        ask_in_page(page, question)
        if page.locator(".results > .result a.cite").count():
            break
    cite = page.locator(".results > .result a.cite")
    if cite.count():
        cite.first.focus()
        page.keyboard.press("Enter")  # the card opened as a reader opens it
        page.wait_for_timeout(400)  # scrolled to, focused, still highlighted
    else:
        print("  (no answer cited a source: the screenshot shows no card opened)")
        page.evaluate("() => document.activeElement.blur()")
    shot(page, folder / "desk-light-desktop.png")
    page.close()

    page = browser.page(375, 812)
    page.emulate_media(color_scheme="dark")
    open_desk(page, base, index)
    ask_in_page(page, QUESTIONS[4], new=False)  # the sidebar is folded away on a phone
    page.evaluate("() => document.activeElement.blur()")
    shot(page, folder / "desk-dark-phone.png", full_page=True)
    page.close()

    page = browser.page(1280, 900)
    page.emulate_media(color_scheme="light")
    page.goto(f"{base}/#/indexes")
    page.wait_for_selector(f"#index-table tbody tr:has-text('{index}')")
    page.wait_for_selector("#conv-list li")
    shot(page, folder / "desk-indexes.png")
    page.close()


def serve(servers: Servers, name: str, model: str, index: str, port: int, env: dict) -> None:
    command = [*rag_command(), "serve", "--model", model, "--index", index, "--port", str(port)]
    servers.start(name, command, env, f"http://127.0.0.1:{port}/healthz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--long-tokens", type=int, default=2000)
    parser.add_argument("--long-delay-ms", type=float, default=1.0)
    parser.add_argument("--screenshots", default=str(ROOT / "tests" / "screenshots"))
    args = parser.parse_args()
    why = missing()
    if why:
        sys.exit(why)

    work = Path(tempfile.mkdtemp(prefix="rag-bench-page-"))
    home = work / "home"
    home.mkdir()
    os.environ["RAG_HOME"] = str(home)
    index = "leads"
    try:
        seconds = build_leads_index(home, index, args.docs)
        print(f"index: {args.docs} Wikipedia leads in {seconds:.1f} s")
        env = {**clean_env(home), "RAG_MAX_TOKENS": str(args.max_tokens)}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with Servers(work) as servers, chromium() as browser:
            serve(servers, "rag-serve", args.model, index, port, env)
            page_weight(browser, base)
            first_character(browser, base, port, max(1, args.rounds), index)
            long_tasks(browser, work / "long-home", args.long_tokens, args.long_delay_ms / 1000)
            if args.screenshots:
                # Answers long enough to show (the server's default length), and a
                # sidebar of the few conversations asked for the screenshots only.
                servers.stop_all()
                for stale in home.glob("conversations.sqlite*"):
                    stale.unlink()
                env["RAG_MAX_TOKENS"] = "96"
                serve(servers, "rag-serve-long", args.model, index, port, env)
                screenshots(browser, base, port, Path(args.screenshots), index)
            if browser.refused or browser.dialogs:
                sys.exit(f"refused requests: {browser.refused}; dialogs: {browser.dialogs}")
            print("no request left 127.0.0.1")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
