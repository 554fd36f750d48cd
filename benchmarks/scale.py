"""The stores' cost curve: build time, disk, peak RSS, warm query p50/p99 and recall@10
against exact search, per index size (local store 10k to 1M chunks, pgvector up to
`--pg-max`).

Goals (issue 24): at 1M chunks the local store answers a warm dense query in at most 50 ms
p50 with recall@10 at least 0.95, and its query-time RSS beyond the vectors themselves grows
less than linearly with the chunks.

Stand-in data, so that the store's own costs are measured in minutes and not the embedder's
(days at 1M chunks here): each vector is the real MiniLM vector of one of 2,000 Wikipedia
leads plus Gaussian noise with those vectors' own covariance, normalised. Real embeddings
are far from isotropic (the top 10 of 384 directions hold 18% of their variance), and that
is what makes HNSW work on them: on 16,384 such vectors HNSW (M=32, efSearch=128) finds
99.8% of the exact top 10, on 12,773 real NQ passages with real questions 99.5%, but on
vectors with isotropic noise (the first stand-in tried) 81%. Chunk texts: 60 words drawn
by Zipf's law from a vocabulary of 50,000, so SQLite's FTS5 index has postings of a
realistic shape; a query's BM25 text is three content words of a chunk.

Everything goes through the store's real writer and reader (`open_store`, `writer`,
`reader().dense()`, `reader().bm25()`), as `rag index` and `rag search` call them. Each
phase runs in a child process of its own, so its peak RSS is its own (`wait4`; the parent
stays small, as a child's peak counts what it was forked from); the exact top 10 comes
from a brute-force pass over the same vectors. pgvector's RSS is the client's: the
server's memory is its own (shared buffers).

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--queries 200]
        [--pg-max 100000] [--pg-sizes 10000,100000,200000] [--no-local] [--work DIR]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from retrieval import percentile  # noqa: E402 - a sibling script

DIM = 384
CENTRES = 2_000
DATA = ROOT.parent / "shared" / "data"
VOCAB = 50_000
WORDS_PER_CHUNK = 60
BLOCK = 16_384  # vectors generated (and added) per step, seeded per block: no run holds them
PER_FILE = 1_000  # chunks per "file", as a JSONL record set would arrive


@functools.cache
def centres() -> np.ndarray:
    """Real MiniLM vectors of `CENTRES` Wikipedia leads (../shared/data), embedded once per
    work folder; each stand-in vector is one of them plus noise of their own covariance."""
    path = Path(os.environ["SCALE_CENTRES"])
    if not path.exists():
        import gzip

        from indexers.embedders import get_embedder

        with gzip.open(DATA / "wiki-vital-en.jsonl.gz", "rt", encoding="utf-8") as handle:
            leads = [json.loads(line)["text"] for line in itertools.islice(handle, CENTRES)]
        found = np.asarray(get_embedder("all-MiniLM-L6-v2", "onnx").embed(leads), np.float32)
        np.save(path, found)
    return np.load(path)


@functools.cache
def _noise_shape() -> np.ndarray:
    """A matrix turning standard normal noise into noise of the centres' covariance."""
    real = centres()
    spread = np.linalg.eigh(np.cov((real - real.mean(0)).T))
    return (spread.eigenvectors * np.sqrt(np.maximum(spread.eigenvalues, 0))).astype(np.float32)


def vectors(block: int, seed: int, count: int = BLOCK) -> np.ndarray:
    """Block `block` of the stand-in vectors: the same on every call, in any process."""
    real, shape = centres(), _noise_shape()
    rng = np.random.default_rng([seed, block])
    out = real[rng.integers(0, len(real), count)]
    out += rng.standard_normal((count, DIM), dtype=np.float32) @ shape.T
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out  # float32 throughout: centres, noise and shape are


def texts(block: int, count: int) -> list[str]:
    """Words drawn by Zipf's law (exponent 1) over `VOCAB` ranks, as in real text; the 100
    most common stand for the function words BM25 leaves out (about 45% of the words)."""
    rng = np.random.default_rng([7, block])
    words = rng.choice(VOCAB, size=(count, WORDS_PER_CHUNK), p=_ZIPF) + 1
    return [" ".join(f"w{w}" for w in row) for row in words]


_ZIPF = 1.0 / np.arange(1, VOCAB + 1)
_ZIPF /= _ZIPF.sum()


def queries(n: int) -> tuple[np.ndarray, list[str]]:
    """Query vectors, and for BM25 three content words (rank above 100) of a chunk's text,
    chosen at random, as a person's query words are."""
    rng = np.random.default_rng(3)
    words = []
    for text in texts(10**6, n):
        content = sorted({w for w in text.split() if int(w[1:]) > 100})
        words.append(" ".join(rng.choice(content, size=min(3, len(content)), replace=False)))
    return vectors(0, seed=1, count=n), words


def exact_top(size: int, query_vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """Brute force over every stand-in vector: the exact top-k chunk ids (ids from 1)."""
    best_s = np.full((len(query_vectors), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(query_vectors), k), dtype=np.int64)
    for block, start in enumerate(range(0, size, BLOCK)):
        count = min(BLOCK, size - start)
        scores = query_vectors @ vectors(block, seed=0, count=count).T
        ids = np.broadcast_to(np.arange(start + 1, start + count + 1), scores.shape)
        all_s, all_i = np.hstack([best_s, scores]), np.hstack([best_i, ids])
        order = np.argsort(-all_s, axis=1)[:, :k]
        best_s = np.take_along_axis(all_s, order, 1)
        best_i = np.take_along_axis(all_i, order, 1)
    return best_i


def child_env(home: Path, pg_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_HOME=str(home), PYTHONPATH=str(ROOT), SCALE_CENTRES=os.environ["SCALE_CENTRES"])
    if pg_url:
        env["RAG_STORE_PGVECTOR_URL"] = pg_url
    return env


def run_child(args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """One phase in its own process: (what it printed as JSON, its peak RSS in MB)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], env=env, stdout=subprocess.PIPE, text=True
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{args[:2]} failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def build(kind: str, name: str, size: int) -> dict:
    from indexers.chunking import Chunk
    from indexers.stores import local_layout, open_store
    from rag.core.config import load_settings

    settings = load_settings()
    store = open_store(name, settings, kind)
    root = Path(os.environ["RAG_HOME"]) / "docs"
    root.mkdir(exist_ok=True)
    params = local_layout.new_params(name, "standin", "standin-384", "onnx", DIM, [str(root)])
    started = time.perf_counter()
    with store.writing([root], 0):
        writer = store.writer(params, None, None)  # the store's own threshold
        for block, start in enumerate(range(0, size, BLOCK)):
            count = min(BLOCK, size - start)
            vecs, words = vectors(block, seed=0, count=count), texts(block, count)
            for first in range(0, count, PER_FILE):
                path = str(root / f"part-{start + first:08d}.jsonl")
                part = words[first : first + PER_FILE]
                chunks = [Chunk(t, "", f"#{i}", 0, len(t), 80) for i, t in enumerate(part)]
                writer.add_chunks(path, chunks, vecs[first : first + PER_FILE])
                writer.add_file(path, "0" * 64, 0, 0)
        state = writer.commit()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "faiss": state.params.get("faiss", state.params.get("vectors")),
            "bytes": store.stats().get("bytes")}  # fmt: skip


def query(kind: str, name: str, n: int, truth_file: str) -> dict:
    from indexers.stores import open_store
    from rag.core.config import load_settings

    started = time.perf_counter()
    store = open_store(name, load_settings(), kind)
    reader = store.reader()  # every segment read: what a cold `rag search` pays first
    opened = time.perf_counter() - started
    query_vectors, query_texts = queries(n)
    truth = np.load(truth_file)
    for vector in query_vectors[: min(20, n)]:  # warm: segments read, caches filled
        reader.dense(vector, 10)
    dense, bm25, hits = [], [], 0
    for vector, text, exact in zip(query_vectors, query_texts, truth, strict=True):
        started = time.perf_counter()
        found = reader.dense(vector, 10)
        dense.append(time.perf_counter() - started)
        started = time.perf_counter()
        reader.bm25(text, 10)
        bm25.append(time.perf_counter() - started)
        hits += len({i for i, _ in found} & set(exact.tolist()))
    reader.close()
    return {"dense": dense, "bm25": bm25, "recall": hits / truth.size, "open_s": opened}


def measure(kind: str, size: int, n: int, work: Path, pg_url: str | None) -> dict:
    home = work / f"{kind}-{size}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = child_env(home, pg_url)
    name = f"scale{size}"
    built, build_rss = run_child(["build", kind, name, str(size)], env)
    truth = work / f"truth-{size}-{n}.npy"
    if not truth.exists():  # in a child too: the parent stays small (see main)
        run_child(["truth", "-", str(truth), str(size), str(n)], env)
    asked, query_rss = run_child(["query", kind, name, str(n), str(truth)], env)
    row = {
        "store": kind, "chunks": size, "vectors": built["faiss"],
        "build_s": built["seconds"], "disk_mb": (built["bytes"] or 0) / 1e6,
        "build_rss_mb": build_rss, "query_rss_mb": query_rss,
        "beyond_vectors_mb": query_rss - size * DIM * 4 / 2**20,
        "p50_ms": 1000 * statistics.median(asked["dense"]),
        "p99_ms": 1000 * percentile(asked["dense"], 0.99),
        "bm25_p50_ms": 1000 * statistics.median(asked["bm25"]), "recall10": asked["recall"],
        "open_s": asked["open_s"],
    }  # fmt: skip
    if kind == "local":
        shutil.rmtree(home, ignore_errors=True)  # disk: 1M chunks are about 3 GB
    return row


def show(row: dict) -> None:
    print(
        f"{row['store']:8s} {row['chunks']:>9,d} {row['vectors']:6s} "
        f"build {row['build_s']:7.1f}s  disk {row['disk_mb']:7.0f} MB  "
        f"RSS build {row['build_rss_mb']:6.0f} MB query {row['query_rss_mb']:6.0f} MB "
        f"(beyond vectors {row['beyond_vectors_mb']:5.0f})  dense p50 {row['p50_ms']:6.2f} ms "
        f"p99 {row['p99_ms']:6.2f} ms  bm25 p50 {row['bm25_p50_ms']:6.2f} ms  "
        f"recall@10 {row['recall10']:.3f}  open {row['open_s']:.2f}s",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("build", "query", "centres", "truth"):
        phase, kind, name, *rest = sys.argv[1:]
        if phase == "centres":
            result = {"centres": len(centres())}
        elif phase == "truth":
            np.save(name, exact_top(int(rest[0]), queries(int(rest[1]))[0]))
            result = {"truth": name}
        elif phase == "build":
            result = build(kind, name, int(rest[0]))
        else:
            result = query(kind, name, int(rest[0]), rest[1])
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--pg-max", type=int, default=100_000, help="0: no pgvector")
    parser.add_argument("--pg-sizes", default=None, help="pgvector's own sizes (default: --sizes)")
    parser.add_argument("--no-local", action="store_true", help="pgvector only")
    parser.add_argument("--pg-url", default=None, help="default: a throwaway local server")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["SCALE_CENTRES"] = str(work / "centres.npy")
    # In a child: a parent that held the embedder would count in every child's peak RSS
    # (Linux's ru_maxrss of a child includes what it was forked from).
    run_child(["centres", "-", "-"], child_env(work, None))
    rows = []
    for size in [] if args.no_local else sizes:
        rows.append(measure("local", size, args.queries, work, None))
        show(rows[-1])
    pg_sizes = [int(s) for s in args.pg_sizes.split(",")] if args.pg_sizes else sizes
    pg_sizes = [s for s in pg_sizes if s <= args.pg_max]
    if pg_sizes:
        from contextlib import nullcontext

        from pg_server import postgres_server

        with nullcontext(args.pg_url) if args.pg_url else postgres_server() as url:
            for size in pg_sizes:
                rows.append(measure("pgvector", size, args.queries, work, url))
                show(rows[-1])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
