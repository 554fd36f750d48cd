"""Warm query latency: rag's retriever vs a raw sentence-transformers + FAISS script.

Goal: rag's p50 at most the raw script's, on the same 2,000 passages. The raw side is
what a framework such as LlamaIndex does for a dense query, at its best on this machine:
the model loaded once with torch pinned to one thread, the passages' vectors in a FAISS
flat inner-product index, and per query one encode and one search (no BM25, no fusion).
rag's side is `IndexRetriever.retrieve` as `rag search` and `rag ask` call it: the query
embedded by the default runtime, FAISS, BM25 and their fusion. Queries alternate between
the two so machine noise hits both; each side warms up first.

    python benchmarks/warm_query.py [--docs 2000] [--queries 200]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexing import embedded_texts  # noqa: E402 - a sibling script

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def passages_and_questions(n_docs: int, n_queries: int) -> tuple[list[dict], list[str]]:
    with gzip.open(DATA / "wiki-vital-en.jsonl.gz", "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for _, line in zip(range(n_docs), handle, strict=False)]
    with open(DATA / "nq-open-dev.jsonl", encoding="utf-8") as handle:
        questions = [json.loads(line)["question"] for line in handle]
    return docs, random.Random(0).sample(questions, n_queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-bench-warm-"))
    os.environ["RAG_HOME"] = str(work / "home")
    docs, questions = passages_and_questions(args.docs, args.queries)
    corpus = work / "leads.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")

    from indexers.build import build_index
    from indexers.retriever import IndexRetriever
    from rag.core.config import load_settings

    settings = load_settings()
    build_index([corpus], "warm", settings)
    retriever = IndexRetriever.open("warm", settings)
    texts = embedded_texts(work / "home", "warm")  # exactly what rag embedded

    import faiss
    import torch
    from sentence_transformers import SentenceTransformer

    from indexers.model_files import packaged_model_dir

    torch.set_num_threads(1)
    model = SentenceTransformer(str(packaged_model_dir("all-MiniLM-L6-v2")), device="cpu")
    vectors = model.encode(texts, batch_size=16, normalize_embeddings=True)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)

    def raw(question: str) -> None:
        query = model.encode([question], normalize_embeddings=True)
        flat.search(query, 5)

    def ours(question: str) -> None:
        retriever.retrieve(question, 5)

    sides = {"rag retrieve (default runtime, hybrid)": ours, "raw ST + FAISS, 1 thread": raw}
    for run in sides.values():
        for question in questions[:10]:
            run(question)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for question in questions:
        for name, run in sides.items():
            started = time.perf_counter()
            run(question)
            times[name].append(time.perf_counter() - started)
    print(f"warm queries over {len(texts)} passages, {len(questions)} NQ questions each:")
    for name, values in times.items():
        print(f"  {name:40s} p50 {1000 * statistics.median(values):6.2f} ms")
    ours_p50, raw_p50 = (statistics.median(v) for v in times.values())
    print(f"ratio rag / raw p50: {ours_p50 / raw_p50:.2f} (goal <= 1.0)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
