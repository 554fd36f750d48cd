"""`rag serve` under load: 32 concurrent clients for a minute, no failures, flat memory.

A small index of Wikipedia leads (../shared/data) is built into a temporary RAG_HOME, then
`rag serve --model smollm2-135m --index NAME` starts on a free loopback port. After a
warm-up (each kind of request once, then a short burst at full concurrency) the server's
RSS is sampled; then `--clients` threads, each with its own HTTP connection, send requests
back to back for `--seconds`: mostly `GET /v1/search`, some short `POST /v1/ask`
(`max_tokens` 8), half of those over the index and half closed-book. Every status is
recorded; any non-2xx is a failure and is printed with its body. Prints requests and
p50/p95 latency per kind, RSS after warm-up and at the end, and their ratio (goal <= 1.10).

The server refuses requests past its in-flight cap (`rag.serve.config.MAX_IN_FLIGHT`, 16,
not settable from the CLI or env) with 503: with more clients than that, the 503s count as
failures. A client told 503 pauses 50 ms ("try again shortly") rather than spin.

    python benchmarks/serve_load.py [--seconds 60] [--clients 32] [--docs 1000]

The helpers here (free ports, starting and stopping servers, the leads index) are shared
with serve_search.py and serve_first_token.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psutil
from cold_search import DATA, write_corpus

MB = 1024 * 1024


# --- shared helpers ---------------------------------------------------------------------


def rag_command() -> list[str]:
    """The installed `rag` script beside this interpreter (a pyenv shim would add bash)."""
    script = Path(sys.executable).with_name("rag")
    rag = str(script) if script.is_file() else shutil.which("rag")
    return [rag] if rag else [sys.executable, "-m", "rag.cli.launch"]


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_HOME"] = str(home)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def questions(n: int, skip: int = 0) -> list[str]:
    """NQ-open dev questions (real user queries), `skip` first then `n`."""
    rows = []
    with open(DATA / "nq-open-dev.jsonl", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if i >= skip:
                rows.append(json.loads(line)["question"])
            if len(rows) >= n:
                break
    return rows


def build_leads_index(home: Path, name: str, docs: int) -> float:
    """Index the first `docs` Wikipedia leads as `name` in `home`; returns seconds taken."""
    corpus = home.parent / "leads.jsonl"
    write_corpus(DATA / "wiki-vital-en.jsonl.gz", docs, corpus)
    started = time.perf_counter()
    done = subprocess.run(
        [*rag_command(), "index", str(corpus), "--name", name],
        capture_output=True,
        text=True,
        env=clean_env(home),
    )
    if done.returncode != 0:
        sys.exit(f"rag index failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


class Servers:
    """Server subprocesses, each in its own session (Ctrl-C reaches only this script),
    stopped on exit however it happens: normal end, an exception, Ctrl-C or SIGTERM."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Servers:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self, name: str, command: Sequence[str], env: dict[str, str], ready_url: str
    ) -> subprocess.Popen:
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.procs.append(proc)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                sys.exit(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        sys.exit(f"{name} was not ready in 300 s:\n{self.log_tail(name)}")

    def log_tail(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def rss(pid: int) -> int:
    """Resident memory of a process and its children, bytes."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# --- the load test ----------------------------------------------------------------------


class Load:
    def __init__(self, base: str, index: str, queries: list[str], ask_share: float) -> None:
        self.base = base
        self.index = index
        self.queries = queries
        self.ask_share = ask_share
        self.lock = threading.Lock()
        self.records: list[tuple[str, int, float]] = []  # kind, status, seconds
        self.failures: list[tuple[str, int, str]] = []

    def request(self, client: httpx.Client, rng: random.Random) -> None:
        query = rng.choice(self.queries)
        roll = rng.random()
        started = time.perf_counter()
        if roll >= self.ask_share:
            kind = "search"
            response = client.get(
                f"{self.base}/v1/search", params={"q": query, "index": self.index, "k": 5}
            )
        else:
            kind = "ask+index" if roll < self.ask_share / 2 else "ask closed"
            body = {"question": query, "max_tokens": 8}
            if kind == "ask closed":
                body["index"] = []
            response = client.post(f"{self.base}/v1/ask", json=body)
        elapsed = time.perf_counter() - started
        with self.lock:
            self.records.append((kind, response.status_code, elapsed))
            if not 200 <= response.status_code < 300:
                self.failures.append((kind, response.status_code, response.text[:300]))
        if response.status_code == 503:
            time.sleep(0.05)

    def run(self, clients: int, seconds: float, seed: int) -> None:
        deadline = time.monotonic() + seconds

        def client_loop(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            with httpx.Client(timeout=120) as client:
                while time.monotonic() < deadline:
                    try:
                        self.request(client, rng)
                    except httpx.HTTPError as exc:
                        with self.lock:
                            self.records.append(("error", 0, 0.0))
                            self.failures.append(("error", 0, repr(exc)[:300]))

        threads = [
            threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 180)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--docs", type=int, default=1000, help="Wikipedia leads to index")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--ask-share", type=float, default=0.2, help="share of /v1/ask")
    parser.add_argument("--warmup-seconds", type=float, default=5)
    args = parser.parse_args()
    args.seconds = min(args.seconds, 600)
    args.clients = max(1, min(args.clients, 128))

    work = Path(tempfile.mkdtemp(prefix="rag-bench-serve-load-"))
    home = work / "home"
    try:
        with Servers(work) as servers:
            took = build_leads_index(home, "leads", args.docs)
            print(f"indexed {args.docs} Wikipedia leads in {took:.1f} s")
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            command = [*rag_command(), "serve", "--model", args.model, "--index", "leads"]
            started = time.perf_counter()
            proc = servers.start(
                "rag-serve", [*command, "--port", str(port)], clean_env(home), f"{base}/healthz"
            )
            print(f"rag serve ready in {time.perf_counter() - started:.1f} s on {base}")
            load = Load(base, "leads", questions(500), args.ask_share)
            with httpx.Client(timeout=120) as client:  # each kind once, sequentially
                rng = random.Random(0)
                for _ in range(20):
                    load.request(client, rng)
            load.run(args.clients, args.warmup_seconds, seed=1)
            warm_failures = list(load.failures)
            load.records.clear()
            load.failures.clear()
            rss_warm = rss(proc.pid)
            peak = rss_warm
            sampling = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not sampling.wait(1.0):
                    peak = max(peak, rss(proc.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            load.run(args.clients, args.seconds, seed=2)
            wall = time.perf_counter() - started
            sampling.set()
            sampler.join()
            rss_end = rss(proc.pid)
            alive = proc.poll() is None
    except KeyboardInterrupt:
        sys.exit("interrupted; servers stopped")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"{args.clients} clients for {args.seconds:.0f} s ({wall:.1f} s with the last "
        f"replies), model {args.model}, index of {args.docs} leads; server alive: {alive}"
    )
    if warm_failures:
        print(f"  (warm-up: {len(warm_failures)} non-2xx, first: {warm_failures[0]})")
    kinds = sorted({kind for kind, _, _ in load.records})
    total_fail = 0
    for kind in kinds:
        rows = [r for r in load.records if r[0] == kind]
        ok = [s for _, status, s in rows if 200 <= status < 300]
        fails = len(rows) - len(ok)
        total_fail += fails
        codes = sorted({status for _, status, _ in rows if not 200 <= status < 300})
        latency = (
            f"p50 {percentile(ok, 50) * 1000:7.1f} ms  p95 {percentile(ok, 95) * 1000:7.1f} ms"
            if ok
            else "no successes"
        )
        print(
            f"  {kind:<11} {len(rows):6d} requests  {len(ok):6d} ok  {fails:5d} failed"
            f"{' ' + str(codes) if codes else ''}  {latency}"
        )
    print(
        f"  total {len(load.records)} requests ({len(load.records) / wall:.1f}/s), "
        f"failures {total_fail} (goal 0)"
    )
    shown: set[tuple[str, int]] = set()
    for kind, status, body in load.failures:
        if (kind, status) not in shown:  # each distinct failure once, with its body
            shown.add((kind, status))
            print(f"  failure {kind} {status}: {body}")
    print(
        f"  RSS after warm-up {rss_warm / MB:.0f} MB, peak {peak / MB:.0f} MB, "
        f"at end {rss_end / MB:.0f} MB"
    )
    print(f"  RSS growth end / after warm-up: {rss_end / rss_warm:.3f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
