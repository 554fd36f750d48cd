"""Whole-process `rag ask` (closed-book) vs a raw llama-cpp-python script (goal: <= 1.05x).

Both are cold processes answering the same question from the same GGUF with the same
settings: the messages rag renders (its closed-book prompt), the context size, threads,
seed, greedy decoding and max tokens rag would use. The raw script is the least a
program can do: import llama_cpp, load the model, stream a completion of the same prompt
tokens with the same stop strings. Runs are
interleaved (rag, raw, rag, raw, ...) so machine noise hits both alike; medians print.

    python benchmarks/closed_book.py [--model smollm2-135m] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "What is the capital of France?"

RAW = """
import json, sys, time
started = time.perf_counter()
import llama_cpp
job = json.loads(sys.argv[1])
llm = llama_cpp.Llama(job["path"], n_ctx=job["n_ctx"], n_threads=job["threads"],
                      n_threads_batch=job["threads"], seed=job["seed"], verbose=False)
first, n = None, 0
for chunk in llm.create_completion(job["tokens"], max_tokens=job["max_tokens"], stream=True,
                                   temperature=0.0, stop=job["stops"] or None):
    text = chunk["choices"][0]["text"]
    if text:
        n += 1
        first = first or time.perf_counter()
        sys.stdout.write(text)
        sys.stdout.flush()
print(f"\\nRAW first_token_s={first - started:.3f} pieces={n}", file=sys.stderr)
"""


def job_for(model: str) -> dict:
    """What rag would do for this question: its messages and its model settings."""
    from rag.core.config import load_settings
    from rag.generators import load_generator
    from rag.orchestrator import build_prompt

    settings = load_settings(model=model)
    generator = load_generator(settings)
    messages, _ = build_prompt(
        QUESTION, [], generator, max_tokens=settings.max_tokens, family="answer"
    )
    tokens, stops = generator.render(messages)  # the chat template, as rag applies it
    return {
        "tokens": list(tokens),
        "stops": list(stops),
        "path": str(generator.model_path),
        "n_ctx": generator.llama.n_ctx(),
        "threads": generator.threads,
        "seed": settings.seed,
        "max_tokens": settings.max_tokens,
    }


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{command[:3]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="rag-bench-closed-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_HOME"] = str(home)
    os.environ.update(RAG_HOME=str(home))
    job = job_for(args.model)
    # The installed script beside this interpreter: a version manager's shim on PATH (pyenv
    # runs bash first) would add its own start-up to rag's side only.
    script = Path(sys.executable).with_name("rag")
    rag = str(script) if script.is_file() else shutil.which("rag")
    rag_command = [rag] if rag else [sys.executable, "-m", "rag.cli.app"]
    rag_command += ["ask", QUESTION, "--model", args.model]
    raw_command = [sys.executable, "-c", RAW, json.dumps(job)]
    timed(rag_command, env)  # warm the page cache for both: the same model file
    rag_times, raw_times = [], []
    for _ in range(args.rounds):
        seconds, rag_answer = timed(rag_command, env)
        rag_times.append(seconds)
        seconds, raw_answer = timed(raw_command, env)
        raw_times.append(seconds)
    shutil.rmtree(home, ignore_errors=True)
    rag_s, raw_s = statistics.median(rag_times), statistics.median(raw_times)
    print(f"model {args.model}: n_ctx {job['n_ctx']}, {job['threads']} threads, greedy")
    print(f"rag ask (closed-book): {rag_s:.3f} s median of {args.rounds} -> {rag_answer!r}")
    print(f"raw llama-cpp-python:  {raw_s:.3f} s median of {args.rounds} -> {raw_answer!r}")
    print(f"ratio rag / raw: {rag_s / raw_s:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
