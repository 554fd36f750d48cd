"""`rag index` throughput vs. raw `SentenceTransformer.encode` on the same chunks (goal >= 0.9),
and the cost of re-indexing when nothing changed (goal: under 5% of the first run).

Corpus: the first N Wikipedia vital-article leads from ../shared/data, written as one
Markdown file each (a user's notes folder). Steps, all in this one run:
1. `rag index DIR --name bench` as a subprocess: wall time, start-up and model load included,
   against a raw script in a fresh process that imports sentence-transformers, loads the
   same model and encodes the same texts;
2. raw `SentenceTransformer.encode` of exactly the texts rag embedded (same model folder,
   batch size and normalisation), interleaved with
3. `build_index --rebuild` in this process with the model already loaded (the pipeline
   without the one-off process start-up and model load); medians over --rounds;
4. `rag index` again with nothing changed.

    python benchmarks/indexing.py [--docs 400] [--data ../shared/data/wiki-vital-en.jsonl.gz]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "wiki-vital-en.jsonl.gz"


def write_corpus(data: Path, n: int, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with gzip.open(data, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            slug = re.sub(r"[^A-Za-z0-9]+", "_", record["title"])[:60]
            (folder / f"{count:05d}_{slug}.md").write_text(
                f"# {record['title']}\n\n{record['text']}\n", encoding="utf-8"
            )
            count += 1
            if count >= n:
                break
    return count


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rag.cli.app", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"rag {' '.join(args)} failed:\n{proc.stderr}")
    return elapsed, json.loads(proc.stdout)


def embedded_texts(home: Path, name: str) -> list[str]:
    from indexers.chunking import embedding_text

    gen = home / "indexes" / name / (home / "indexes" / name / "CURRENT").read_text().strip()
    conn = sqlite3.connect(gen / "chunks.sqlite")
    return [embedding_text(t, x) for t, x in conn.execute("SELECT title, text FROM chunks")]


# The raw library doing the whole job in a fresh process, as a user's own script would:
# import, load the model, encode. Compared with the cold `rag index` process.
RAW_SCRIPT = """
import json, sys
from sentence_transformers import SentenceTransformer
texts = json.load(open(sys.argv[2], encoding="utf-8"))
model = SentenceTransformer(sys.argv[1], device="cpu")
model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
"""


def raw_cold_process_seconds(model_path: str, texts: list[str], work: Path) -> float:
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", RAW_SCRIPT, model_path, str(texts_file)], check=True)
    return time.perf_counter() - started


def raw_encode_seconds(model, texts: list[str]) -> float:  # noqa: ANN001
    started = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=400, help="number of articles to index")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=2, help="warm build / raw encode pairs")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from indexers.build import build_index
    from indexers.embedders import get_embedder
    from indexers.model_files import packaged_model_dir
    from rag.core.config import load_settings

    work = Path(tempfile.mkdtemp(prefix="rag-bench-index-"))
    home = work / "home"
    corpus = work / "corpus"
    n_docs = write_corpus(args.data, args.docs, corpus)
    env = dict(os.environ, RAG_HOME=str(home))
    env.pop("RAG_EMBEDDER", None)

    model_dir = packaged_model_dir("all-MiniLM-L6-v2")
    model = SentenceTransformer(str(model_dir or "all-MiniLM-L6-v2"), device="cpu")
    raw_encode_seconds(model, ["warm up"] * 8)

    cli_first, report = run_cli(["index", str(corpus), "--name", "bench", "--json"], env)
    chunks = report["chunks"]
    texts = embedded_texts(home, "bench")
    assert len(texts) == chunks
    raw = [raw_encode_seconds(model, texts)]
    raw_cold = raw_cold_process_seconds(str(model_dir or "all-MiniLM-L6-v2"), texts, work)

    os.environ["RAG_HOME"] = str(home)
    settings = load_settings(embedder="all-MiniLM-L6-v2")
    embedder = get_embedder(settings.embedder)  # loaded once, as in a long-lived process
    inner = embedder.embed
    in_embed = [0.0]

    def timed_embed(batch: list[str]):  # noqa: ANN202 - measures time spent embedding
        t0 = time.perf_counter()
        try:
            return inner(batch)
        finally:
            in_embed[0] += time.perf_counter() - t0

    embedder.embed = timed_embed  # type: ignore[method-assign]
    warm: list[float] = []
    embed_share: list[float] = []
    for _ in range(args.rounds):  # interleaved with raw runs so machine load hits both
        in_embed[0] = 0.0
        started = time.perf_counter()
        build_index([corpus], "bench-warm", settings, rebuild=True)
        warm.append(time.perf_counter() - started)
        embed_share.append(in_embed[0] / warm[-1])
        raw.append(raw_encode_seconds(model, texts))
    cli_again, again = run_cli(["index", str(corpus), "--name", "bench", "--json"], env)
    assert again["changed"] is False and again["files_unchanged"] == report["files_read"]

    raw_s, warm_s = statistics.median(raw), statistics.median(warm)
    load = os.getloadavg()[0]
    print(f"corpus: {n_docs} Markdown files ({args.data.name}), {chunks} chunks; "
          f"{os.cpu_count()} CPUs, load average {load:.1f}; work dir {work}")  # fmt: skip
    print("raw SentenceTransformer.encode runs: " + ", ".join(f"{r:.1f}s" for r in raw))
    print("rag build_index (warm model) runs:   " + ", ".join(f"{w:.1f}s" for w in warm))
    print(f"rag index CLI, cold process: {cli_first:.1f}s")
    print(f"raw encode: {chunks / raw_s:.1f} chunks/s (median)")
    print(f"rag index pipeline (warm model, in-process): {chunks / warm_s:.1f} chunks/s"
          f" -> ratio {raw_s / warm_s:.2f} (goal >= 0.9); time inside the embedder: "
          f"{100 * statistics.median(embed_share):.1f}%")  # fmt: skip
    print(f"raw script in a fresh process (import, load, encode): {raw_cold:.1f}s")
    cold_ratio, warm_ratio = raw_cold / cli_first, raw_s / cli_first
    print(f"rag index end-to-end (fresh process: start-up, model load, read, chunk, embed, "
          f"write): {chunks / cli_first:.1f} chunks/s -> ratio {cold_ratio:.2f} vs the raw "
          f"script (goal >= 0.9); {warm_ratio:.2f} vs warm raw encode alone")  # fmt: skip
    print(f"re-index, nothing changed: {cli_again:.2f}s = {100 * cli_again / cli_first:.1f}% "
          "of the first run (goal < 5%)")  # fmt: skip


if __name__ == "__main__":
    main()
