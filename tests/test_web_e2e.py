"""End to end: `rag ask --search` with SmolLM2 against a SearxNG-compatible server on 127.0.0.1.

A real subprocess, a real model, a real HTTP search and page fetch; only the
search engine is local. Small max_tokens keeps it to a few seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from native import run_rag
from web_servers import html_reply, json_reply, local_server, searxng_results

PAGE = """<html><head><title>Emma (novel)</title></head><body><article>
<p>Emma is a novel written by the English author Jane Austen. It was first published
in December 1815 in three volumes by John Murray.</p>
<p>The novel follows Emma Woodhouse, who lives in the village of Highbury.</p>
</article></body></html>"""


@pytest.mark.slow
def test_ask_search_with_smollm2_and_a_local_searxng(tmp_path: Path, smollm2_path: Path) -> None:
    routes = {"/emma": lambda r: html_reply(PAGE)}
    with local_server(routes) as server:
        routes["/search"] = lambda r: json_reply(
            searxng_results(
                ("Emma (novel)", server.url + "/emma", "Emma is a novel by Jane Austen."),
                (
                    "Jane Austen",
                    "https://en.wikipedia.org/wiki/Jane_Austen",
                    "Jane Austen was an English novelist.",
                ),
                (
                    "Highbury",
                    "https://example.org/highbury",
                    "Highbury is the village where Emma is set.",
                ),
            )
        )
        env = {
            **os.environ,
            "RAG_HOME": str(tmp_path / "home"),
            "RAG_ENGINE": "searxng",
            "RAG_SEARXNG_URL": server.url,
            "RAG_ALLOW_PRIVATE_FETCH": "1",
        }
        command = [
            "ask", "Who wrote the novel Emma?", "--search",
            "--model", "smollm2-135m", "--max-tokens", "24", "--k", "3", "--fetch", "1", "--json",
        ]  # fmt: skip
        done = run_rag(command, env=env)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["question"] == "Who wrote the novel Emma?"
    assert payload["model"] == "smollm2-135m"
    assert payload["warnings"] == []
    sources = payload["sources"]
    assert [s["id"] for s in sources] == list(range(1, len(sources) + 1))
    assert {s["origin"] for s in sources} == {"web"}
    # reranked: the page that says who wrote Emma scores best (and, best-last, comes last
    # next to the question), fetched in full
    emma = sources[-1]
    assert emma["rerank_score"] == max(s["rerank_score"] for s in sources)
    assert emma["location"] == server.url + "/emma"
    assert "December 1815" in emma["text"]  # the fetched page, not the snippet
    assert emma["spans"] and emma["rerank_score"] is not None
    shown = " … ".join(emma["text"][a:b] for a, b in emma["spans"])
    assert "Jane Austen" in shown and all(0 <= a < b <= len(emma["text"]) for a, b in emma["spans"])
    timings = payload["timings"]
    assert timings["completion_tokens"] > 0
    assert timings["prompt_tokens"] > 100  # the sources went into the prompt
    assert payload["answer"].strip()
    search = [r for r in server.requests if r.path == "/search"]
    assert len(search) == 1 and search[0].query["format"] == "json"
    assert search[0].query["q"] == "Who wrote the novel Emma?"
