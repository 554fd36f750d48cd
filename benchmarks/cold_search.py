"""Cold whole-process `rag search --index`: the ONNX runtime vs the torch one, same corpus.

Goals: at most 1.5 s, and at most 0.35x the torch path (sentence-transformers, what every
query paid before the ONNX runtime). The corpus (Wikipedia leads from ../shared/data) is
indexed twice, once per runtime, so each index is queried with its own vectors; each
round runs both searches as fresh processes, interleaved, with a different question, and
medians print. The ONNX export is made (and timed) once, by the first `rag index`.

    python benchmarks/cold_search.py [--docs 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
QUESTIONS = [
    "who painted the ceiling of the sistine chapel",
    "what is the largest planet in the solar system",
    "when did the berlin wall fall",
    "how do vaccines train the immune system",
    "which river flows through cairo",
    "who wrote the origin of species",
    "what causes the seasons on earth",
    "where is mount kilimanjaro",
    "what language is spoken in brazil",
    "who invented the telephone",
]


def write_corpus(source: Path, n: int, out: Path) -> int:
    rows = []
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            rows.append(json.dumps({"title": record["title"], "text": record["text"]}))
            if len(rows) >= n:
                break
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return len(rows)


def run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--data", type=Path, default=DATA / "wiki-vital-en.jsonl.gz")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-bench-cold-"))
    corpus = work / "leads.jsonl"
    n = write_corpus(args.data, args.docs, corpus)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_HOME"] = str(work / "home")
    # The installed script beside this interpreter: a version manager's shim on PATH (pyenv
    # runs bash first) would add its own start-up to rag's side only.
    script = Path(sys.executable).with_name("rag")
    rag = str(script) if script.is_file() else shutil.which("rag")
    base = [rag] if rag else [sys.executable, "-m", "rag.cli.app"]
    runtimes = {"torch": "torch", "onnx": "auto"}
    for name, runtime in runtimes.items():
        seconds = run(
            [*base, "index", str(corpus), "--name", name], dict(env, RAG_EMBEDDER_RUNTIME=runtime)
        )
        print(f"indexed {n} leads with the {name} runtime in {seconds:.1f} s"
              + (" (includes the one-time ONNX export)" if name == "onnx" else ""))  # fmt: skip
    floor = run([sys.executable, "-c", "import faiss, onnxruntime, tokenizers"], env)
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    for i in range(args.rounds):
        question = QUESTIONS[i % len(QUESTIONS)]
        for name, runtime in runtimes.items():
            command = [*base, "search", question, "--index", name]
            times[name].append(run(command, dict(env, RAG_EMBEDDER_RUNTIME=runtime)))
    shutil.rmtree(work, ignore_errors=True)
    torch_s, onnx_s = (statistics.median(times[name]) for name in runtimes)
    print(f"cold `rag search --index` over {n} passages, median of {args.rounds}:")
    print(f"  torch runtime (sentence-transformers): {torch_s:.2f} s")
    print(f"  onnx runtime (default):                {onnx_s:.2f} s  (goal <= 1.5 s)")
    print(f"  ratio onnx / torch: {onnx_s / torch_s:.3f} (goal <= 0.35)")
    print(f"  for scale: importing faiss, onnxruntime and tokenizers alone takes {floor:.2f} s")


if __name__ == "__main__":
    main()
