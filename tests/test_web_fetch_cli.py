"""`rag search --web --fetch` against hostile pages, as a user runs it: the CLI in a
subprocess, a SearxNG look-alike on 127.0.0.1 whose results point at the pages, and the
pages behind public names and addresses that the child's fake internet (`hostile_pages`)
routes to servers on 127.0.0.1. RAG_ALLOW_PRIVATE_FETCH is unset: the loopback refusal is
on, as by default, and sees public addresses.

A page that cannot be read, whatever its reason, keeps its snippet and leaves one warning;
the others are read; the search answers with exit code 0, no traceback, in bounded time
and memory. The subprocess timeout only guards the run: no assertion is about time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from hostile_pages import (
    ARTICLE,
    CHILD,
    Reply,
    drips,
    environment,
    html,
    raw_server,
    redirect,
    sends,
)
from test_web_fetch import gzipped
from web_servers import json_reply, local_server, searxng_results

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
#: A guard for the test run only (a page's fetch takes 8 s at most).
GUARD_S = 90
#: The public addresses the fake internet routes: the hostile page, a good one.
HOSTILE, GOOD = "93.184.216.34", "93.184.216.35"
GOOD_URL = "http://article.example/compost"
#: What the good page says (the fetched text, not its snippet).
GOOD_TEXT = "Compost is turned every two weeks"


@dataclass
class Run:
    code: int
    out: str
    err: list[str]  # without the peak-memory line
    maxrss_mib: float


def search(
    hostile_url: str, reply: Reply, fetch: tuple[str, ...] = ("--fetch", "2")
) -> tuple[Run, list[bytes]]:
    """`rag search compost --web --fetch 2`, whose results are `hostile_url` (served by
    `reply`, as the public address HOSTILE) and then the good page; the run and the
    requests the hostile server got. `fetch=()`: no option and no RAG_FETCH, the default."""
    with raw_server(reply) as bad, raw_server(sends(html(ARTICLE))) as good:
        results = [("Hostile", hostile_url, "snippet about compost 0"), ("Good", GOOD_URL, "s")]
        with local_server({"/search": lambda r: json_reply(searxng_results(*results))}) as engine:
            dns = {"public.example": [HOSTILE], "article.example": [GOOD]}
            dns |= {"xn--a.example": [HOSTILE], "rebind.example": [HOSTILE]}
            env = {
                **{
                    k: v
                    for k, v in os.environ.items()
                    if k != "RAG_ALLOW_PRIVATE_FETCH" and (fetch or k != "RAG_FETCH")
                },
                "RAG_ENGINE": "searxng",
                "RAG_ENGINE_SEARXNG_URL": engine.url,
                "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),
                **environment(dns, {HOSTILE: bad.port, GOOD: good.port}),
            }
            # --no-rerank: the results in the engine's order, their whole texts; no model
            args = ["search", "compost", "--web", *fetch, "-k", "2", "--no-rerank"]
            done = subprocess.run(
                [sys.executable, "-c", CHILD, *args],
                capture_output=True,
                env=env,
                cwd=REPO,
                timeout=GUARD_S,
            )
        requests = list(bad.requests)
    err = done.stderr.decode("utf-8", "replace").splitlines()
    rss = [line for line in err if line.startswith("MAXRSS:")]
    run = Run(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        [line for line in err if not line.startswith("MAXRSS:")],
        int(rss[-1].partition(":")[2]) / 1024 if rss else 0.0,
    )
    return run, requests


def read_anyway(run: Run, said: str) -> None:
    """The search answered: the good page read, the hostile one's snippet kept with one
    warning that says `said`."""
    assert run.code == 0, run
    assert not any("Traceback" in line for line in run.err), run.err
    assert GOOD_TEXT in run.out, run.out
    assert "snippet about compost 0" in run.out, run.out
    warnings = [line for line in run.err if line.startswith("Warning: Could not read ")]
    assert len(warnings) == 1 and said in warnings[0], run.err
    assert len(warnings[0]) < 1200, warnings[0]


@cache
def gzip_bomb(layers: int) -> bytes:
    """512 MB of HTML gzipped once (about 500 KB on the wire) or twice (about 1 KB:
    `Content-Encoding: gzip, gzip` took 4 GB of 6.8 KB, then a MemoryError)."""
    return gzipped(512 * 1024 * 1024, layers)


def bomb(coding: str, layers: int = 2) -> Reply:
    """The bomb as a page (made on first use, then kept: `prepare_bombs` makes them before
    a test's search starts, so no page's clock runs while they are made)."""
    return lambda connection, request: connection.sendall(
        html(gzip_bomb(layers), f"Content-Encoding: {coding}")
    )


@pytest.fixture(autouse=True, scope="module")
def prepare_bombs() -> None:
    gzip_bomb(1)
    gzip_bomb(2)


PAGE = "http://public.example/"
UNREADABLE = {
    "url-control": (f"http://{HOSTILE}/a\x01b", sends(html(ARTICLE)), "InvalidURL"),
    "url-too-long": (f"http://{HOSTILE}/" + "a" * 70_000, sends(html(ARTICLE)), "URL too long"),
    "location-http-colon": (PAGE, redirect(b"http:x"), "InvalidURL"),
    "location-idna": (PAGE, redirect(b"http://xn--a.example/"), "Codepoint"),
    "gzip-gzip": (PAGE, bomb("gzip, gzip"), "only gzip is read"),
    "dripping": (
        PAGE,
        drips(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 99999\r\n\r\n"),
        "did not answer within 8s",
    ),
    "loopback": ("http://127.0.0.1:9/secret", sends(html(ARTICLE)), "non-public address"),
}


@pytest.mark.parametrize(("url", "reply", "said"), UNREADABLE.values(), ids=UNREADABLE)
def test_an_unreadable_page_keeps_its_snippet_and_the_search_answers(
    url: str, reply: Reply, said: str
) -> None:
    run, _ = search(url, reply)
    read_anyway(run, said)


def test_a_gzip_bomb_costs_no_more_than_its_cap() -> None:
    """At most the 2 MB cap of it is inflated (httpx inflated 64 KB pieces whole: 163 MB
    at the peak for a 200 MB page). The CLI's own peak is about 65 MiB."""
    run, requests = search(PAGE, bomb("gzip", layers=1))
    assert run.code == 0, run
    assert GOOD_TEXT in run.out and "compost compost compost" in run.out, run.out
    assert "snippet about compost 0" not in run.out and run.err == [], run
    assert 0 < run.maxrss_mib < 120, run.maxrss_mib
    assert b"\r\naccept-encoding: gzip\r\n" in requests[0].lower()


def test_a_page_in_a_charset_python_cannot_read_is_read() -> None:
    page = html(ARTICLE).replace(b"text/html", b"text/html; charset=rot13")
    run, _ = search(PAGE, sends(page))
    assert run.code == 0, run
    assert "snippet about compost 0" not in run.out, run.out  # the page replaced it
    assert run.out.split("\n\n")[0].count(GOOD_TEXT) > 1, run.out
    assert not [line for line in run.err if line.startswith("Warning")], run.err


def test_pages_are_read_by_default() -> None:
    """No --fetch, no RAG_FETCH: the top pages are read (3 measured best, README), so the
    good page's own text is in the results, not only its snippet."""
    run, requests = search("http://public.example/page", sends(html(ARTICLE)), fetch=())
    assert run.code == 0 and GOOD_TEXT in run.out, run
    assert len(requests) == 1  # the first result's page was asked for too
