"""The research desk in a browser: how much later its first character shows than the
API's, how much it loads, and whether a long answer ever blocks the page.

1. First character. `rag serve --model smollm2-135m --index leads` (Wikipedia leads from
   ../shared/data, the default embedder) runs as its own process. For each question the
   page (system Chromium through Playwright) gets the question typed and Enter pressed;
   in the page, performance.now() at the Enter keydown and at the first mutation that
   puts text into the answer give its time. The API side is the same request
   (POST /v1/ask, stream, same sources) over http.client, timed to its first `text`
   event. Page and API alternate, never one right after the other on the same question
   (the model's prefix cache would favour the second); medians print, and the ratio.
   Goal: page <= 1.10 x API + 50 ms.
2. Page weight: the bytes of every file the first load fetched (fresh profile, no
   cache). Goal: <= 150 KB.
3. Long tasks: a 2,000-token answer (a fake model streaming fast, with a citation in
   every sentence) into the page with a PerformanceObserver on 'longtask'; the longest
   prints. Goal: none over 200 ms. (With 100 conversations in the sidebar once the
   Conversations view exists.)
4. Screenshots (README): light at 1280 px and dark at 375 px, after a real answer, into
   tests/screenshots/ (`--screenshots ''` skips them).

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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    const answer = document.querySelector('.result .answer');
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
DONE = """() => {
    const answer = document.querySelector('.result .answer');
    return answer.getAttribute('aria-busy') === 'false' && !answer.classList.contains('streaming')
        && answer.closest('.result').querySelector('.meta').textContent !== '';
}"""
LONGTASKS = """() => {
    window.longtasks = [];
    new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) window.longtasks.push(entry.duration);
    }).observe({type: 'longtask', buffered: true});
}"""


def api_first_text(port: int, body: dict[str, Any]) -> float:
    """Seconds from sending the request to its first non-empty `text` event; the stream
    is read to its end, so the model is idle before the next request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    connection.request(
        "POST", "/v1/ask", body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    if response.status != 200:
        sys.exit(f"POST /v1/ask -> {response.status}: {response.read()[:500]!r}")
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
    return first


def page_first_text(page: Any, question: str) -> float:
    """Seconds from Enter to the first streamed text, measured in the page. The wait for
    the end polls every 250 ms (not every frame), so it takes no CPU from the model."""
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_function(DONE, polling=250, timeout=300_000)
    bench = page.evaluate("window.bench")
    if bench["first"] is None:
        sys.exit(f"the page showed no streamed text for {question!r}")
    return (bench["first"] - bench["t0"]) / 1000


def first_character(browser: Browser, base: str, port: int, rounds: int, index: str) -> None:
    """Each round asks two questions A and B: page A, API B, API A, page B. No request
    follows one for the same question, so neither side gets the other's prompt from the
    model's prefix cache; each side asks both, and goes first once."""
    page = browser.page()
    page.goto(f"{base}/")
    box = f"fieldset.sources input[value={index}]"
    page.wait_for_selector(box)
    if not page.is_checked(box):
        page.check(box)
    page.evaluate(MEASURE)

    def body(question: str) -> dict[str, Any]:
        return {"question": question, "index": [index], "search": False, "stream": True}

    # One of each first: the model, the index and the page warm.
    page_first_text(page, QUESTIONS[-1])
    api_first_text(port, body(QUESTIONS[-2]))
    times: dict[str, list[float]] = {"page": [], "api": []}
    for i in range(rounds):
        a, b = QUESTIONS[(2 * i) % 8], QUESTIONS[(2 * i + 1) % 8]
        for side, question in (("page", a), ("api", b), ("api", a), ("page", b)):
            took = (
                page_first_text(page, question)
                if side == "page"
                else api_first_text(port, body(question))
            )
            times[side].append(took)
            print(f"  {side:4}  {question[:46]:46}  {took * 1000:7.0f} ms")
    page_s, api_s = statistics.median(times["page"]), statistics.median(times["api"])
    goal = 1.10 * api_s + 0.050
    print(f"first character, median of {2 * rounds}: page {page_s * 1000:.0f} ms, "
          f"API {api_s * 1000:.0f} ms, ratio {page_s / api_s:.3f}x "
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


def screenshots(browser_light: Browser, base: str, folder: Path, index: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    question = QUESTIONS[0]
    for name, width, height, theme in (("desk-light-desktop.png", 1280, 900, "light"),
                                       ("desk-dark-phone.png", 375, 812, "dark")):  # fmt: skip
        page = browser_light.page(width, height)
        page.emulate_media(color_scheme=theme)
        page.goto(f"{base}/")
        page.wait_for_selector(f"fieldset.sources input[value={index}]")
        page.fill("#question", question)
        page.press("#question", "Enter")
        page.wait_for_function(DONE, polling=250, timeout=300_000)
        if width > 600:
            page.click("#compare")
            closed_done = """() => {
                const closed = document.querySelectorAll('.result')[1];
                return closed.querySelector('.meta').textContent !== ''
                    && !closed.querySelector('.answer').classList.contains('streaming');
            }"""
            page.wait_for_function(closed_done, polling=250, timeout=300_000)
        page.evaluate("() => document.activeElement.blur()")
        page.screenshot(path=str(folder / name), full_page=width < 600)
        print(f"screenshot: {folder / name}")
        page.close()


# --- the long answer: a fake fast model in a server in this process -----------------------


def long_answer_generator(tokens: int, delay_s: float) -> Any:
    from rag.core.types import Timings
    from rag.generators.base import Generation, TimedStream

    class Fast:
        model_name = "fake-fast"
        context_size = 8192

        def count_tokens(self, text: str) -> int:
            return len(text.split())

        def count_prompt_tokens(self, messages: Any) -> int:
            return sum(len(m.content.split()) + 4 for m in messages)

        def generate(self, messages: Any, *, max_tokens: int, temperature: float = 0.0) -> Any:
            def pieces() -> Iterator[tuple[str, int]]:
                for i in range(tokens):
                    if delay_s:
                        time.sleep(delay_s)
                    yield (f" word{i}" + (f" [{1 + i % 3}]." if i % 12 == 11 else "")), 1

            timings = Timings(prompt_tokens=self.count_prompt_tokens(messages))
            return Generation(TimedStream(timings).wrap(pieces()), timings)

    return Fast()


@contextmanager
def fake_server(tokens: int, delay_s: float) -> Iterator[str]:
    from rag.core import plugins
    from rag.core.config import load_settings
    from rag.serve import ServeConfig
    from rag.serve.app import build_server

    generator = long_answer_generator(tokens, delay_s)
    plugins.register(plugins.Part("generator", "fake", lambda *a, **k: generator, argument="ANY"))
    config = ServeConfig(port=free_port(), model="fake:")
    server = build_server(config, load_settings(model="fake:", max_tokens=tokens + 10))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(15)


def long_tasks(browser: Browser, tokens: int, delay_s: float) -> None:
    with fake_server(tokens, delay_s) as base:
        page = browser.page()
        page.goto(f"{base}/")
        page.wait_for_selector("#question")
        page.evaluate(LONGTASKS)
        page.fill("#question", "Write at length.")
        page.press("#question", "Enter")
        page.wait_for_function(DONE, polling=250, timeout=300_000)
        page.wait_for_timeout(300)
        durations = page.evaluate("window.longtasks")
        words = page.evaluate(
            "document.querySelector('.result .answer').textContent.split(' ').length"
        )
        page.close()
    longest = max(durations, default=0.0)
    print(f"long tasks during a {tokens}-token answer ({words} words shown): {len(durations)}, "
          f"longest {longest:.0f} ms (goal: none over 200 ms: "
          f"{'met' if longest <= 200 else 'NOT met'})")  # fmt: skip


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
            servers.start(
                "rag-serve",
                [
                    *rag_command(),
                    "serve",
                    "--model",
                    args.model,
                    "--index",
                    index,
                    "--port",
                    str(port),
                ],  # fmt: skip
                env,
                f"{base}/healthz",
            )
            page_weight(browser, base)
            first_character(browser, base, port, max(1, args.rounds), index)
            long_tasks(browser, args.long_tokens, args.long_delay_ms / 1000)
            if args.screenshots:
                servers.stop_all()  # answers long enough to show: the server's default length
                env["RAG_MAX_TOKENS"] = "96"
                servers.start(
                    "rag-serve-long",
                    [
                        *rag_command(),
                        "serve",
                        "--model",
                        args.model,
                        "--index",
                        index,
                        "--port",
                        str(port),
                    ],  # fmt: skip
                    env,
                    f"{base}/healthz",
                )
                screenshots(browser, base, Path(args.screenshots), index)
            if browser.refused or browser.dialogs:
                sys.exit(f"refused requests: {browser.refused}; dialogs: {browser.dialogs}")
            print("no request left 127.0.0.1")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
