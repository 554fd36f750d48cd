"""Recall@1/5/10 of the real-articles questions (evals/recipes/real_articles.py) under other
fusions of the same dense and BM25 candidates: BM25 weight, RRF k, dense or BM25 alone.
One index, one pass of queries: every variant
sees the same candidates, so the differences are the fusion's alone.

    python benchmarks/article_fusion.py --index cmu-articles [--data ../shared/data/cmu-qa-s08]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evals.metrics import contains_answer
from evals.recipes.article_questions import build_questions, read_pairs
from evals.recipes.real_articles import DEFAULT_DATA, KS, Articles, index_chunks
from indexers.hybrid import rrf
from indexers.retriever import CANDIDATES
from rag.core.config import load_settings
from rag.sources import build_retriever

VARIANTS = {
    "dense only": (1.0, 0.0, 10),
    "bm25 only": (0.0, 1.0, 10),
    "default (1, 0.5, k=10)": (1.0, 0.5, 10),
    "bm25 0.75": (1.0, 0.75, 10),
    "bm25 1.0": (1.0, 1.0, 10),
    "bm25 0.5, k=30": (1.0, 0.5, 30),
    "bm25 1.0, k=60": (1.0, 1.0, 60),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    settings = load_settings()
    questions = build_questions(read_pairs(args.data / "question_answer_pairs.txt"))
    retriever = build_retriever(f"index:{args.index}", settings)
    try:
        articles = Articles(args.data, index_chunks(retriever))
        holds = [
            any(contains_answer(t, q.answers) for _, t in articles.chunks_of(q)) for q in questions
        ]
        lists = []
        with retriever.reader.snapshot():
            for q in questions:
                dense = [i for i, _ in retriever.dense(q.question, CANDIDATES)]
                sparse = [i for i, _ in retriever.sparse(q.question, CANDIDATES)]
                lists.append((dense, sparse))
            wanted = {i for d, s in lists for i in d + s}
            rows = retriever.reader.fetch(sorted(wanted))
    finally:
        retriever.close()
    text = {i: row[3] for i, row in rows.items()}
    print(f"{len(questions)} questions, {sum(holds)} answerable; recall (answer in top k)")
    print(f"{'variant':<26}{'all 1/5/10':<20}answerable 1/5/10")
    for name, (wd, ws, k) in VARIANTS.items():
        hits = {k_: [0, 0] for k_ in KS}
        for q, (dense, sparse), holding in zip(questions, lists, holds, strict=True):
            ranked = (
                [i for i, _ in rrf([dense, sparse], [wd, ws], k=k)]
                if wd and ws
                else (dense if wd else sparse)
            )
            for k_ in KS:
                found = any(contains_answer(text[i], q.answers) for i in ranked[:k_])
                hits[k_][0] += found
                hits[k_][1] += found and holding
        cells = [
            "/".join(f"{100 * hits[k_][j] / (len(questions) if j == 0 else sum(holds)):.1f}"
                     for k_ in KS)
            for j in (0, 1)
        ]  # fmt: skip
        print(f"{name:<26}{cells[0]:<20}{cells[1]}")


if __name__ == "__main__":
    main()
