"""Wall time of `rag --help` vs. `python -c pass` (goal: under 0.5 s added), and proof
that `rag --help` imports none of torch, llama_cpp, faiss, sentence_transformers.

    python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "llama_cpp", "faiss", "sentence_transformers", "transformers", "mcp")
PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['rag', '--help']\n"
    "try:\n    runpy.run_module('rag.cli.app', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    f"print('HEAVY:', ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
)


def heavy_modules_loaded_by_help() -> list[str]:
    """Modules from HEAVY that `rag --help` imports (should be none)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("HEAVY:")][-1]
    return [m for m in line.removeprefix("HEAVY:").strip().split(",") if m]


def median_wall_time(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    rag = shutil.which("rag")
    rag_command = [rag, "--help"] if rag else [sys.executable, "-m", "rag.cli.app", "--help"]
    baseline = median_wall_time([sys.executable, "-c", "pass"], args.runs)
    with_rag = median_wall_time(rag_command, args.runs)
    heavy = heavy_modules_loaded_by_help()
    print(f"python -c pass: {baseline * 1000:.0f} ms (median of {args.runs})")
    print(f"{' '.join(rag_command)}: {with_rag * 1000:.0f} ms (median of {args.runs})")
    print(f"heavy modules imported by rag --help: {', '.join(heavy) or 'none'}")
    print(
        f"added time: {with_rag - baseline:.3f} s (goal < 0.5 s); ratio {with_rag / baseline:.2f}x"
    )


if __name__ == "__main__":
    main()
