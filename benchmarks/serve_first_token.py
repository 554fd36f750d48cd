"""Closed-book time to first streamed token: `rag serve` vs `llama_cpp.server` (goal <= 1.1).

Both servers run warm on free loopback ports with the same GGUF, context size, threads and
seed. For each question (NQ-open dev, ../shared/data) rag gets `POST /v1/ask` with
`"stream": true` (the first `event: text` with non-empty text counts), and
llama_cpp.server gets `POST /v1/chat/completions` with `"stream": true` (the first chunk
with non-empty `delta.content`) carrying the messages rag renders for that question (its
closed-book prompt from prompts/, as benchmarks/closed_book.py reproduces it; the server
applies the GGUF's chat template, as rag does). Both greedy, same small `max_tokens`. The
prompt token counts of both sides are printed so any difference shows. Requests alternate
between the servers (which one goes first alternates too), several rounds; medians print.

    python benchmarks/serve_first_token.py [--questions 6] [--rounds 5] [--max-tokens 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from serve_load import Servers, clean_env, free_port, questions, rag_command


def rag_side(model: str, asked: list[str]) -> tuple[dict, list[list[dict]]]:
    """rag's model settings (as closed_book.py reads them) and its closed-book messages."""
    from rag.core.config import load_settings
    from rag.generators import load_generator
    from rag.orchestrator import build_prompt

    settings = load_settings(model=model)
    generator = load_generator(settings)
    job = {
        "path": str(generator.model_path),
        "n_ctx": generator.llama.n_ctx(),
        "threads": generator.threads,
        "seed": settings.seed,
    }
    messages = []
    for question in asked:
        rendered, _ = build_prompt(
            question, [], generator, max_tokens=settings.max_tokens, family="answer"
        )
        messages.append([m.as_dict() for m in rendered])
    return job, messages


def first_event(client: httpx.Client, url: str, body: dict, rag: bool) -> tuple[float, dict]:
    """Seconds to the first non-empty streamed text; the rest of the stream is read (so the
    server is idle before the next request) and rag's final answer object returned."""
    started = time.perf_counter()
    first = None
    final: dict = {}
    event = ""
    with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            response.read()
            sys.exit(f"POST {url} -> {response.status_code}: {response.text[:1000]}")
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                continue
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            data = json.loads(line[5:])
            if rag:
                if event == "text" and data.get("text") and first is None:
                    first = time.perf_counter() - started
                elif event == "answer":
                    final = data
                elif event == "error":
                    sys.exit(f"rag stream error: {data}")
            else:
                choices = data.get("choices") or [{}]
                if choices[0].get("delta", {}).get("content") and first is None:
                    first = time.perf_counter() - started
    if first is None:
        sys.exit(f"no text streamed from {url} for {body}")
    return first, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()
    args.rounds = max(1, min(args.rounds, 20))

    work = Path(tempfile.mkdtemp(prefix="rag-bench-serve-ttft-"))
    home = work / "home"
    env = clean_env(home)
    os.environ.update(RAG_HOME=str(home))
    asked = questions(max(1, min(args.questions, 50)))
    job, messages = rag_side(args.model, asked)
    times: dict[str, list[float]] = {"rag": [], "raw": []}
    tokens: dict[str, list[int]] = {"rag": [], "raw": []}
    inside: list[float] = []
    try:
        with Servers(work) as servers:
            rag_port, raw_port = free_port(), free_port()
            while raw_port == rag_port:
                raw_port = free_port()
            rag_base, raw_base = f"http://127.0.0.1:{rag_port}", f"http://127.0.0.1:{raw_port}"
            servers.start(
                "rag-serve",
                [*rag_command(), "serve", "--model", args.model, "--port", str(rag_port)],
                env,
                f"{rag_base}/healthz",
            )
            servers.start(
                "llama_cpp.server",
                [
                    sys.executable,
                    "-m",
                    "llama_cpp.server",
                    "--model",
                    job["path"],
                    "--n_ctx",
                    str(job["n_ctx"]),
                    "--n_threads",
                    str(job["threads"]),
                    "--n_threads_batch",
                    str(job["threads"]),
                    "--seed",
                    str(job["seed"]),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(raw_port),
                ],
                env,
                f"{raw_base}/v1/models",
            )
            rag_url, raw_url = f"{rag_base}/v1/ask", f"{raw_base}/v1/chat/completions"
            with httpx.Client(timeout=120) as client:

                def rag_body(i: int) -> dict:
                    return {"question": asked[i], "stream": True,
                            "max_tokens": args.max_tokens, "temperature": 0}  # fmt: skip

                def raw_body(i: int, stream: bool = True) -> dict:
                    return {"messages": messages[i], "stream": stream,
                            "max_tokens": args.max_tokens, "temperature": 0}  # fmt: skip

                for i in range(len(asked)):  # warm both; read the prompt token counts
                    _, final = first_event(client, rag_url, rag_body(i), rag=True)
                    tokens["rag"].append(final["timings"]["prompt_tokens"])
                    usage = client.post(raw_url, json=raw_body(i, stream=False)).json()
                    tokens["raw"].append(usage["usage"]["prompt_tokens"])
                for r in range(args.rounds):
                    for i in range(len(asked)):
                        order = ["rag", "raw"] if (r + i) % 2 == 0 else ["raw", "rag"]
                        for side in order:
                            if side == "rag":
                                seconds, final = first_event(client, rag_url, rag_body(i), True)
                                inside.append(final["timings"]["ttft_s"])
                            else:
                                seconds, _ = first_event(client, raw_url, raw_body(i), False)
                            times[side].append(seconds)
    except KeyboardInterrupt:
        sys.exit("interrupted; servers stopped")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rag_s, raw_s = statistics.median(times["rag"]), statistics.median(times["raw"])
    n = len(times["rag"])
    print(
        f"model {args.model}: n_ctx {job['n_ctx']}, {job['threads']} threads, greedy, "
        f"max_tokens {args.max_tokens}; {len(asked)} NQ questions x {args.rounds} rounds"
    )
    print(
        f"prompt tokens per question: rag {tokens['rag']}, llama_cpp.server {tokens['raw']}"
        f" ({'same' if tokens['rag'] == tokens['raw'] else 'DIFFERENT'})"
    )
    print(
        f"  rag serve POST /v1/ask stream:                 {rag_s * 1000:7.1f} ms median of {n}"
        f" (rag's own ttft_s inside: {statistics.median(inside) * 1000:.1f} ms)"
    )
    print(f"  llama_cpp.server /v1/chat/completions stream:  {raw_s * 1000:7.1f} ms median of {n}")
    print(f"  ratio rag / raw: {rag_s / raw_s:.3f} (goal <= 1.1)")


if __name__ == "__main__":
    main()
