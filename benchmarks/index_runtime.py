"""Cold `rag index` with the default ONNX int8 runtime vs the torch one, same 300 files.

Goals: throughput at least 1.5x the torch path (sentence-transformers, how every index
was embedded before), with peak RSS no higher. Each run is a fresh `rag index` process
building a new index of the same Markdown files (Wikipedia leads from ../shared/data);
runs are interleaved (torch, onnx, torch, onnx, ...) and medians print. Peak RSS is the
child's own high-water mark (wait4). The one-time ONNX export happens in a warm-up run
and is timed separately: every later index, on this machine, reuses it.

    python benchmarks/index_runtime.py [--docs 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexing import DEFAULT_DATA, write_corpus  # noqa: E402 - a sibling script


def index_once(corpus: Path, home: Path, runtime: str, onnx_cache: Path) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one cold `rag index` building a new index."""
    shutil.rmtree(home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_HOME=str(home), RAG_EMBEDDER_RUNTIME=runtime, RAG_ONNX_CACHE=str(onnx_cache))
    command = [sys.executable, "-m", "rag.cli.app", "index", str(corpus), "--name", "bench"]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"rag index ({runtime}) failed:\n{child.stderr.read().decode()[-2000:]}")
    child.stderr.close()
    return elapsed, usage.ru_maxrss * 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-bench-runtime-"))
    corpus = work / "corpus"
    n = write_corpus(args.data, args.docs, corpus)
    onnx_cache = work / "onnx"
    export_s, _ = index_once(corpus, work / "home", "onnx-int8", onnx_cache)
    runtimes = ("torch", "onnx-int8")
    seconds: dict[str, list[float]] = {r: [] for r in runtimes}
    peaks: dict[str, list[int]] = {r: [] for r in runtimes}
    for _ in range(args.rounds):
        for runtime in runtimes:
            elapsed, peak = index_once(corpus, work / "home", runtime, onnx_cache)
            seconds[runtime].append(elapsed)
            peaks[runtime].append(peak)
    shutil.rmtree(work, ignore_errors=True)
    print(f"cold `rag index` of {n} Markdown files, a new index each run, median of "
          f"{args.rounds} (first run, exporting to ONNX once: {export_s:.1f} s):")  # fmt: skip
    for runtime in runtimes:
        print(f"  {runtime:9s} {statistics.median(seconds[runtime]):6.1f} s  "
              f"{n / statistics.median(seconds[runtime]):5.1f} files/s  peak RSS "
              f"{max(peaks[runtime]) / 2**20:5.0f} MB")  # fmt: skip
    speed = statistics.median(seconds["torch"]) / statistics.median(seconds["onnx-int8"])
    memory = max(peaks["onnx-int8"]) / max(peaks["torch"])
    print(f"throughput onnx-int8 / torch: {speed:.2f}x (goal >= 1.5)")
    print(f"peak RSS onnx-int8 / torch: {memory:.2f} (goal <= 1.0)")


if __name__ == "__main__":
    main()
