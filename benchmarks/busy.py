"""The default thread choice against every fixed count, on an idle machine and beside a
busy neighbour (goals: busy within 1.2x of the best fixed count, idle within 1.05x).

A small index of Wikipedia leads (../shared/data) is built into a temporary RAG_HOME.
Then, for each machine state (idle; one neighbour process spinning on one core; on
machines of 4 cores or more also half the cores spinning), each round runs every
configuration (the default, `RAG_THREADS` unset, and `RAG_THREADS=1..cores`) in a
rotated order, so noise hits them alike, on four tasks:

- `ask`: closed-book `rag ask` as a whole fresh process (SmolLM2, `--max-tokens`);
- `ask --index`: the same over the index;
- `index`: `rag index` of a few leads into a new index (throughput: seconds per run);
- `serve search`: warm `GET /v1/search` to a `rag serve --index` started per
  configuration (the median of a few searches per round).

Each prints its median seconds per configuration and the ratio default / best fixed.
The machine may be shared, so the figures carry that noise: run it when `uptime` is low.

    python benchmarks/busy.py [--rounds 3] [--docs 200] [--index-docs 40] [--searches 8]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from closed_book import timed
from cold_search import DATA, write_corpus
from serve_load import Servers, free_port, questions

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m"
SPIN = "while True: pass"


def rag() -> list[str]:
    """This tree's CLI (not an installed `rag`, which may run another checkout)."""
    return [sys.executable, "-m", "rag.cli.launch"]


def env_for(home: Path, threads: int | None, onnx_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_HOME=str(home), RAG_ONNX_CACHE=str(onnx_cache), PYTHONPATH=str(ROOT))
    if threads is not None:
        env["RAG_THREADS"] = str(threads)
    return env


def label(threads: int | None) -> str:
    return "default" if threads is None else f"{threads} thread{'s' * (threads > 1)}"


@contextlib.contextmanager
def neighbours(count: int) -> Iterator[None]:
    """`count` processes each spinning on a core, for the block."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        time.sleep(1.0 if procs else 0.0)  # the default measures the load it sees
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def index_corpus(home: Path, name: str, docs: int) -> Path:
    corpus = home.parent / f"{name}.jsonl"
    write_corpus(DATA / "wiki-vital-en.jsonl.gz", docs, corpus)
    return corpus


def warm_search(client: httpx.Client, url: str, name: str, qs: list[str]) -> float:
    times = []
    for q in qs:
        started = time.perf_counter()
        response = client.get(url, params={"q": q, "index": name, "k": "5"})
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            sys.exit(f"GET {url} -> {response.status_code}: {response.text[:500]}")
    return statistics.median(times)


def report(task: str, state: str, results: dict[int | None, list[float]]) -> str:
    medians = {t: statistics.median(v) for t, v in results.items()}
    fixed = {t: m for t, m in medians.items() if t is not None}
    best = min(fixed, key=fixed.__getitem__)
    parts = ", ".join(f"{label(t)} {m:.3f}" for t, m in medians.items())
    ratio = medians[None] / fixed[best]
    return f"{state:>10} | {task:<12} | {parts} s | default/best fixed ({label(best)}) {ratio:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", type=int, default=200, help="leads in the searched index")
    parser.add_argument("--index-docs", type=int, default=40, help="leads per `rag index` run")
    parser.add_argument("--searches", type=int, default=8, help="warm searches per round")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--tasks", default="ask,ask-index,index,search")
    parser.add_argument("--onnx-cache", type=Path, default=None)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    states = [("idle", 0), ("busy 1", 1)] + ([("busy half", cores // 2)] if cores >= 4 else [])
    configs: list[int | None] = [None, *range(1, cores + 1)]
    tasks = args.tasks.split(",")
    work = Path(tempfile.mkdtemp(prefix="rag-busy-"))
    home = work / "home"
    home.mkdir()
    onnx_cache = args.onnx_cache or work / "onnx"
    qs = questions(args.searches + 1)
    lines: list[str] = []
    try:
        env = env_for(home, None, onnx_cache)
        corpus = index_corpus(home, "leads", args.docs)
        timed([*rag(), "index", str(corpus), "--name", "leads"], env)
        small = index_corpus(home, "few", args.index_docs)
        with Servers(work) as servers:
            urls = {}
            if "search" in tasks:
                for t in configs:
                    port = free_port()
                    servers.start(
                        f"serve-{label(t)}",
                        [
                            *rag(),
                            "serve",
                            "--model",
                            MODEL,
                            "--index",
                            "leads",
                            "--port",
                            str(port),
                        ],
                        env_for(home, t, onnx_cache),
                        f"http://127.0.0.1:{port}/healthz",
                    )
                    urls[t] = f"http://127.0.0.1:{port}/v1/search"
            client = httpx.Client(timeout=600)
            for state, spinning in states:
                results: dict[str, dict[int | None, list[float]]] = {
                    task: {t: [] for t in configs} for task in tasks
                }
                with neighbours(spinning):
                    for r in range(args.rounds):
                        order = configs[r % len(configs) :] + configs[: r % len(configs)]
                        for t in order:
                            e = env_for(home, t, onnx_cache)
                            ask = [*rag(), "ask", qs[0], "--model", MODEL]
                            ask += ["--max-tokens", str(args.max_tokens)]
                            if "ask" in tasks:
                                results["ask"][t].append(timed(ask, e)[0])
                            if "ask-index" in tasks:
                                results["ask-index"][t].append(
                                    timed([*ask, "--index", "leads"], e)[0]
                                )
                            if "index" in tasks:
                                name = f"few-{r}-{label(t).replace(' ', '')}-{state[-1]}"
                                results["index"][t].append(
                                    timed([*rag(), "index", str(small), "--name", name], e)[0]
                                )
                            if "search" in tasks:
                                results["search"][t].append(
                                    warm_search(client, urls[t], "leads", qs[1:])
                                )
                for task in tasks:
                    line = report(task, state, results[task])
                    print(line, flush=True)
                    lines.append(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
