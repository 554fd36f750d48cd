"""Real documents: whole Wikipedia articles indexed as a user's files, and the questions
students wrote about them (CMU Question-Answer data set, S08), with SmolLM2, offline.

NQ's gold passages are short, retrieval-ready paragraphs; a user's files are long
articles. This recipe measures retrieval and answers on those:

1. `rag index`es the articles folder (`cmu-qa-s08/data`) as NAME, as a user would (the
   configured embedder, all-MiniLM-L6-v2 by default, dense + BM25);
2. builds the short-answer questions (`evals.recipes.article_questions`: merged across
   readers, yes/no left out, every reader's answer accepted), each with its oracle passage:
   the chunk of its own article, as indexed, that holds the answer;
3. measures the retriever itself (the fused dense + BM25 ranking, no reranking): recall@1/5/10
   of a passage holding an answer, over every question and over the seeded sample;
4. `rag eval run --conditions closed,oracle,index:NAME` on that sample (`--n`, `--seed`):
   accuracy with its interval, the share of answers whose evidence held the answer (hit),
   prompt tokens and seconds; `--compare` adds an index condition with other options;
5. prints one table of both, and writes it to OUT/summary.json.

    python -m evals.recipes.real_articles --n 80 --out runs/real-articles

About 18% of the answers are not in their article's words (a paraphrase, a longer
sentence): no passage can hold them, so recall is also given over the questions whose
answer is in their article ("answerable"). Re-running resumes (the index is incremental,
the run resumes); `--skip-eval` measures retrieval only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.recipes.article_questions import (
    ArticleQuestion,
    Recall,
    answer_chunk,
    article_path,
    build_questions,
    read_pairs,
    recall_at,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cmu-qa-s08"
KS = (1, 5, 10)
#: Chunks fetched from the index at a time, to find each article's own.
_FETCH = 512


def index_chunks(retriever: Any) -> dict[str, list[tuple[str, str]]]:
    """path -> [(title, text), ...] of every chunk of a local index, in chunk order."""
    reader = retriever.reader
    last = int(reader.state.params.get("next_chunk_id", reader.state.params["chunks"] + 1))
    by_path: dict[str, list[tuple[int, str, str]]] = {}
    with reader.snapshot():
        for start in range(0, last + 1, _FETCH):
            rows = reader.fetch(list(range(start, min(start + _FETCH, last + 1))))
            for chunk_id, (path, title, _location, text, _s, _e) in rows.items():
                by_path.setdefault(path, []).append((chunk_id, title, text))
    return {p: [(t, x) for _, t, x in sorted(rows)] for p, rows in by_path.items()}


class Articles:
    """Which indexed file is each question's article."""

    def __init__(self, data_root: Path, chunks: dict[str, list[tuple[str, str]]]) -> None:
        self.data_root = data_root
        self.chunks = chunks
        self._resolved = {str(Path(p).resolve()): p for p in chunks}

    def path_of(self, question: ArticleQuestion) -> str | None:
        found = str(article_path(self.data_root, question.article).resolve())
        return self._resolved.get(found)

    def is_article(self, question: ArticleQuestion, path: str) -> bool:
        return path == self.path_of(question)

    def chunks_of(self, question: ArticleQuestion) -> list[tuple[str, str]]:
        path = self.path_of(question)
        return self.chunks.get(path, []) if path else []


def write_benchmark(
    questions: Sequence[ArticleQuestion], articles: Articles, target: Path
) -> dict[str, bool]:
    """The questions as an eval benchmark, each with its oracle chunk; question id -> whether
    a chunk of its article holds its answer."""
    answerable: dict[str, bool] = {}
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for q in questions:
            chunk, holds = answer_chunk(q, articles.chunks_of(q))
            answerable[q.id] = holds
            row: dict[str, Any] = {"id": q.id, "question": q.question, "answers": q.answers}
            if chunk is not None:
                row["gold_passages"] = [{"title": chunk[0], "text": chunk[1]}]
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return answerable


def rank_all(retriever: Any, questions: Sequence[ArticleQuestion], k: int) -> tuple[list, float]:
    """Each question's top k (path, text) from the retriever, and the mean seconds a query took."""
    retriever.retrieve(questions[0].question, k)  # loads the embedder: start-up, not a query
    ranked, started = [], time.perf_counter()
    for q in questions:
        ranked.append([(p.meta.get("path", ""), p.text) for p in retriever.retrieve(q.question, k)])
    return ranked, (time.perf_counter() - started) / max(len(questions), 1)


def recall_rows(
    questions: Sequence[ArticleQuestion],
    ranked: Sequence[Sequence[tuple[str, str]]],
    articles: Articles,
    answerable: dict[str, bool],
    sample: set[str],
) -> dict[str, Recall]:
    """Recall over every question, the answerable ones, and the eval's sample."""
    groups = {
        "all": [i for i, _ in enumerate(questions)],
        "answerable": [i for i, q in enumerate(questions) if answerable.get(q.id)],
        "sample": [i for i, q in enumerate(questions) if q.id in sample],
    }
    return {
        name: recall_at(
            [questions[i] for i in picked], [ranked[i] for i in picked], KS, articles.is_article
        )
        for name, picked in groups.items()
    }


def rag(*args: str) -> None:
    print("$ rag " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "rag.cli.app", *args], check=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def print_summary(
    recalls: dict[str, Recall], results: dict[str, Any] | None, query_s: float
) -> None:
    print(f"\nretriever (fused dense + BM25, no rerank), mean {1000 * query_s:.0f} ms a query")
    print(f"{'questions':<12}{'n':>5}  {'answer in top 1/5/10':<22}{'from its article':<20}"
          "article in top 1/5/10")  # fmt: skip
    for name, r in recalls.items():
        cells = ["/".join(_pct(getattr(r, f)[k]) for k in KS)
                 for f in ("answer", "article_answer", "article")]  # fmt: skip
        print(f"{name:<12}{r.n:>5}  {cells[0]:<22}{cells[1]:<20}{cells[2]}")
    if not results:
        return
    print(f"\n{'condition':<40}{'n':>4}{'accuracy':>10}  {'95% CI':<14}{'hit':>6}"
          f"{'prompt tok':>11}{'seconds':>9}")  # fmt: skip
    for name, c in results["conditions"].items():
        low, high = c["accuracy_ci"]
        print(f"{name:<40}{c['n']:>4}{_pct(c['accuracy']):>10}  "
              f"{_pct(low) + '-' + _pct(high):<14}{_pct(c['hit_at_k']):>6}"
              f"{c['mean_prompt_tokens']:>11.0f}{c['mean_latency_s']:>9.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the cmu-qa-s08 folder")
    parser.add_argument("--out", type=Path, default=Path("runs/real-articles"))
    parser.add_argument("--index-name", default="cmu-articles")
    parser.add_argument("--n", type=int, default=80, help="questions the model answers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--compare", default="", help="options of a second index condition, e.g. 'k=3' ('': none)"
    )
    parser.add_argument(
        "--also",
        default="",
        help="more conditions for the same run, e.g. 'index:OLD' to pair an older index ('': none)",
    )
    parser.add_argument("--skip-index", action="store_true", help="reuse the existing index")
    parser.add_argument("--skip-eval", action="store_true", help="measure retrieval only")
    args = parser.parse_args(argv)
    pairs = args.data / "question_answer_pairs.txt"
    if not pairs.is_file() or not (args.data / "data").is_dir():
        parser.error(f"no question_answer_pairs.txt and data/ in {args.data}; pass --data")

    if not args.skip_index:
        rag("index", str(args.data / "data"), "--name", args.index_name)
    from evals.benchmarks import load_benchmark, sample_questions
    from rag.core.config import load_settings
    from rag.sources import build_retriever

    settings = load_settings()
    questions = build_questions(read_pairs(pairs))
    retriever = build_retriever(f"index:{args.index_name}", settings)
    try:
        articles = Articles(args.data, index_chunks(retriever))
        benchmark = args.out / "data" / "questions.jsonl"
        answerable = write_benchmark(questions, articles, benchmark)
        print(f"questions: {len(questions)} ({sum(answerable.values())} with the answer in "
              f"their article) -> {benchmark}", file=sys.stderr)  # fmt: skip
        sample = sample_questions(load_benchmark(str(benchmark), settings).questions, args.n,
                                  args.seed)  # fmt: skip
        ranked, query_s = rank_all(retriever, questions, max(KS))
    finally:
        retriever.close()
    recalls = recall_rows(questions, ranked, articles, answerable, {q.id for q in sample})
    print_summary(recalls, None, query_s)  # before the model's long run
    results = None
    if not args.skip_eval:
        run_dir = args.out / "run"
        index = f"index:{args.index_name}"
        conditions = [
            "closed",
            "oracle",
            index,
            *([f"{index}[{args.compare}]"] if args.compare else []),
            *([args.also] if args.also else []),
        ]
        rag("eval", "run", "--benchmark", str(benchmark), "--conditions", ",".join(conditions),
            "--n", str(args.n), "--seed", str(args.seed), "--model", args.model,
            "--out", str(run_dir))  # fmt: skip
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    summary = {
        "questions": len(questions),
        "answerable": sum(answerable.values()),
        "index": args.index_name,
        "mean_query_s": round(query_s, 4),
        "recall": {name: r.__dict__ for name, r in recalls.items()},
        "eval": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if results:
        print_summary(recalls, results, query_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
