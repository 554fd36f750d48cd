"""The same corpus in each index store: recall@5 (goal: within 0.01 of each other) and warm
query latency, dense and hybrid, through `IndexRetriever` as `rag search` uses it.

Corpus: the NQ gold passages plus Wikipedia leads of benchmarks/retrieval.py (about 12,700
passages, 2,655 questions). The pgvector store needs a PostgreSQL server with pgvector:
give --pg-url, or leave it out to start a throwaway one on 127.0.0.1 from the `pgserver`
wheel (the dev extra installs it; tests/pg_server.py). Each chunk is embedded once and
the vectors reused for the second store, so both hold identical vectors.

    python benchmarks/stores.py [--pg-url postgresql://...] [--questions N] [--distractors N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from retrieval import corpus_arguments, evaluate, percentile, write_corpus  # noqa: E402

from indexers.stores.base import resolve_index_dir  # noqa: E402


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from pg_server import postgres_server

    with postgres_server() as started:
        yield started


def embed_once() -> dict[str, object]:
    """Memoise `build._embed` by chunk text: the second store gets the first one's vectors.
    Returns the memo, which `remember_local` can fill from an index built earlier."""
    import numpy as np

    from indexers import build
    from indexers.chunking import embedding_text

    real, memo = build._embed, {}

    def cached(chunks, embedder):  # noqa: ANN001, ANN202
        keys = [embedding_text(c.title, c.text) for c in chunks]
        todo = [c for c, k in zip(chunks, keys, strict=True) if k not in memo]
        if todo:
            for c, v in zip(todo, real(todo, embedder), strict=True):
                memo[embedding_text(c.title, c.text)] = v
        return np.stack([memo[k] for k in keys])

    build._embed = cached
    return memo


def remember_local(name: str, settings, memo: dict) -> None:  # noqa: ANN001
    """Fill `memo` with the vectors of a local index already built (a re-run reuses it)."""
    from indexers.chunking import embedding_text
    from indexers.stores import local_layout
    from rag.core.threads import load_faiss

    faiss = load_faiss()
    generation = local_layout.open_current(resolve_index_dir(name, settings), name)
    conn = generation.connect()
    texts = {
        i: embedding_text(t, x) for i, t, x in conn.execute("SELECT id, title, text FROM chunks")
    }
    for index in generation.load_segments():
        ids = faiss.vector_to_array(index.id_map)
        vectors = index.index.reconstruct_n(0, index.ntotal)
        for chunk_id, vector in zip(ids, vectors, strict=True):
            memo[texts[int(chunk_id)]] = vector
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_arguments(parser)
    parser.add_argument("--pg-url", default=None, help="default: start a server on 127.0.0.1")
    parser.add_argument("--work", type=Path, default=HERE / "out" / "stores")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    os.environ["RAG_HOME"] = str(args.work / "home")
    for name in [n for n in os.environ if n.startswith("RAG_") and n != "RAG_HOME"]:
        os.environ.pop(name)
    from indexers.build import build_index
    from indexers.retriever import IndexRetriever
    from rag.core.config import load_settings

    corpus = args.work / "nq-corpus.jsonl"
    pairs = write_corpus(
        args.oracle, args.wiki, args.questions, args.distractors, corpus, args.seed
    )
    memo = embed_once()
    recalls: dict[str, dict[str, float]] = {}
    latency: dict[str, dict[str, float]] = {}
    with server(args.pg_url) as url:
        os.environ["RAG_STORE_PGVECTOR_URL"] = url
        settings = load_settings()
        for kind in ("local", "pgvector"):
            name = f"nq-{kind}"
            started = time.perf_counter()
            report = build_index([corpus], name, settings, store_kind=kind)
            if kind == "local":
                remember_local(name, settings, memo)
            print(f"[{kind}] {report.chunks_total} chunks, {len(pairs)} questions; index "
                  f"{'built' if report.changed else 'reused'} in "
                  f"{time.perf_counter() - started:.1f}s")  # fmt: skip
            recalls[kind], latency[kind] = {}, {}
            for mode, hybrid in (("dense", False), ("hybrid", True)):
                retriever = IndexRetriever.open(name, settings.with_overrides(hybrid=hybrid))
                recall, times = evaluate(retriever, pairs, args.k)
                retriever.close()
                recalls[kind][mode] = recall
                latency[kind][mode] = statistics.median(times)
                print(f"[{kind}] {mode:6s} recall@{args.k}: {recall:.3f}  warm latency p50 "
                      f"{1000 * latency[kind][mode]:.1f} ms, p95 "
                      f"{1000 * percentile(times, 0.95):.1f} ms")  # fmt: skip
    for mode in ("dense", "hybrid"):
        gap = recalls["pgvector"][mode] - recalls["local"][mode]
        ratio = latency["pgvector"][mode] / latency["local"][mode]
        print(f"pgvector vs local, {mode}: recall@{args.k} {gap:+.4f} (goal: within 0.01); "
              f"warm latency {ratio:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
