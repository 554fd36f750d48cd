"""Warm search through `rag serve` vs the cold `rag search` CLI, same index (goal: >= 10x).

One index of Wikipedia leads (../shared/data) in a temporary RAG_HOME. Each round asks
one question three ways, interleaved so machine noise hits all alike: (a) the cold CLI,
`rag search Q --index NAME --json` as a whole fresh process; (b) `GET /v1/search` to an
already-warm `rag serve --index NAME` from this process, through one `httpx.Client` (a
new httpx.Client costs about 80 ms here, mostly its SSL context, even for plain http);
(c) when the CLI has a `RAG_SERVER` client mode (found by looking for `RAG_SERVER` in
rag/), `rag search` as a fresh process with `RAG_SERVER` pointing at that server. Medians
print, and the ratios cold / warm.

    python benchmarks/serve_search.py [--docs 1000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from closed_book import timed
from serve_load import (
    Servers,
    build_leads_index,
    clean_env,
    free_port,
    questions,
    rag_command,
)

ROOT = Path(__file__).resolve().parents[1]


def has_client_mode() -> bool:
    return any(
        "RAG_SERVER" in path.read_text(errors="replace") for path in ROOT.glob("rag/**/*.py")
    )


def timed_process(command: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """`closed_book.timed`, with the command's JSON output parsed."""
    elapsed, stdout = timed(command, env)
    return elapsed, json.loads(stdout)


def timed_get(client: httpx.Client, url: str, params: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.get(url, params=params)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        sys.exit(f"GET {url} -> {response.status_code}: {response.text[:1000]}")
    return elapsed, response.json()


def titles(result: dict) -> list[str]:
    return [source.get("location") or source.get("title", "") for source in result["results"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000, help="Wikipedia leads to index")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--model", default="smollm2-135m")
    args = parser.parse_args()
    args.rounds = max(1, min(args.rounds, 50))

    work = Path(tempfile.mkdtemp(prefix="rag-bench-serve-search-"))
    home = work / "home"
    env = clean_env(home)
    client_mode = has_client_mode()
    times: dict[str, list[float]] = {"cold": [], "warm": [], "client": [], "bare": [], "ping": []}
    same = 0
    try:
        with Servers(work) as servers, httpx.Client(timeout=60) as http:
            took = build_leads_index(home, "leads", args.docs)
            print(f"indexed {args.docs} Wikipedia leads in {took:.1f} s")
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            command = [*rag_command(), "serve", "--model", args.model, "--index", "leads"]
            servers.start("rag-serve", [*command, "--port", str(port)], env, f"{base}/healthz")
            asked = questions(args.rounds + 3)
            for question in asked[:3]:  # warm the server (and the page cache for both)
                timed_get(http, f"{base}/v1/search", {"q": question, "index": "leads"})
            timed_process([*rag_command(), "search", asked[0], "--index", "leads", "--json"], env)
            for question in asked[3:]:
                cli = [*rag_command(), "search", question, "--index", "leads", "--json"]
                seconds, cold = timed_process(cli, env)
                times["cold"].append(seconds)
                seconds, warm = timed_get(
                    http, f"{base}/v1/search", {"q": question, "index": "leads"}
                )
                times["warm"].append(seconds)
                same += titles(cold) == titles(warm)
                # For scale: the same search without reranking and selection, and an empty
                # request (the HTTP floor).
                params = {"q": question, "index": "leads", "no_rerank": "true"}
                times["bare"].append(timed_get(http, f"{base}/v1/search", params)[0])
                times["ping"].append(timed_get(http, f"{base}/healthz", {})[0])
                if client_mode:
                    seconds, _ = timed_process(cli, dict(env, RAG_SERVER=base))
                    times["client"].append(seconds)
    except KeyboardInterrupt:
        sys.exit("interrupted; servers stopped")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cold_s, warm_s = statistics.median(times["cold"]), statistics.median(times["warm"])
    n = args.rounds
    print(f"`rag search --index` over {args.docs} leads, median of {n} (NQ-open questions):")
    print(f"  (a) cold CLI process:          {cold_s * 1000:8.1f} ms")
    print(
        f"  (b) GET /v1/search, warm:      {warm_s * 1000:8.1f} ms  (same sources as (a): "
        f"{same}/{n})"
    )
    bare_s, ping_s = statistics.median(times["bare"]), statistics.median(times["ping"])
    print(
        f"      for scale: no_rerank=true {bare_s * 1000:.1f} ms; "
        f"GET /healthz {ping_s * 1000:.1f} ms"
    )
    if client_mode:
        client_s = statistics.median(times["client"])
        print(f"  (c) rag search, RAG_SERVER set: {client_s * 1000:7.1f} ms")
    else:
        print("  (c) not measured: no RAG_SERVER client mode in rag/ yet")
    print(f"  ratio cold / warm (a / b): {cold_s / warm_s:.1f} (goal >= 10)")
    if client_mode:
        print(f"  ratio cold / client (a / c): {cold_s / client_s:.1f} (goal >= 10)")


if __name__ == "__main__":
    main()
