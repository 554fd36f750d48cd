"""Recall@5 of the gold passage for NQ-open questions, dense vs. hybrid, per embedder runtime
(goal: int8 ONNX within 0.005 of sentence-transformers on torch), and query latency.

Corpus recipe (../shared/data/README.md): the gold 100-word Wikipedia passage of each
NQ-open question (nq-open-oracle) plus the Wikipedia vital-article leads as
distractors, about 12,700 passages, written as one JSONL file and indexed with
`build_index` (so each record is its own document, cited as `path#L<line>`).
A question counts as a hit when its gold passage's line is among the top 5.
Latency is per `retrieve()` call in a warm process (model loaded, 5 warm-up queries).

Each runtime in --runtimes embeds its own index of the same corpus (the first is the
reference). The indexes live in --work (default benchmarks/out/retrieval) and are
incremental, so a re-run reuses them. Use --distractors/--questions to run on a subset.

    python benchmarks/retrieval.py [--runtimes torch,onnx-int8] [--distractors N] [--questions N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_corpus(
    oracle: Path, wiki: Path, n_questions: int, n_distractors: int, out: Path, seed: int
) -> list[tuple[str, int]]:
    """Write the corpus JSONL; return (question, gold line number) pairs."""
    questions = [r for r in read_jsonl(oracle) if any(c.get("isgold") for c in r["ctxs"])]
    rng = random.Random(seed)
    if n_questions < len(questions):
        questions = rng.sample(questions, n_questions)
    lines: list[str] = []
    line_of: dict[tuple[str, str], int] = {}
    pairs = []
    for q in questions:
        gold = next(c for c in q["ctxs"] if c.get("isgold"))
        key = (gold["title"], gold["text"])
        if key not in line_of:
            lines.append(json.dumps({"title": gold["title"], "text": gold["text"]}))
            line_of[key] = len(lines)
        pairs.append((q["question"], line_of[key]))
    distractors = read_jsonl(wiki)
    if n_distractors < len(distractors):
        distractors = rng.sample(distractors, n_distractors)
    for d in distractors:
        lines.append(json.dumps({"title": d["title"], "text": d["text"]}))
    text = "\n".join(lines) + "\n"
    if not out.exists() or out.read_text(encoding="utf-8") != text:  # keep mtime: incremental
        out.write_text(text, encoding="utf-8")
    return pairs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def evaluate(retriever, pairs: list[tuple[str, int]], k: int) -> tuple[float, list[float]]:  # noqa: ANN001
    line = re.compile(r"#L(\d+):")
    for question, _ in pairs[:5]:
        retriever.retrieve(question, k)
    hits, latencies = 0, []
    for question, gold_line in pairs:
        started = time.perf_counter()
        passages = retriever.retrieve(question, k)
        latencies.append(time.perf_counter() - started)
        lines = {int(m.group(1)) for p in passages if (m := line.search(p.location))}
        hits += gold_line in lines
    return hits / len(pairs), latencies


def corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """The corpus and question options, shared with benchmarks/stores.py."""
    parser.add_argument("--oracle", type=Path, default=DATA / "nq-open-oracle.jsonl.gz")
    parser.add_argument("--wiki", type=Path, default=DATA / "wiki-vital-en.jsonl.gz")
    parser.add_argument("--questions", type=int, default=10**9, help="default: all (2,655)")
    parser.add_argument("--distractors", type=int, default=10**9, help="default: all (10,033)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_arguments(parser)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "retrieval")
    parser.add_argument(
        "--runtimes",
        default="torch,onnx-int8",
        help="embedder runtimes to compare, each with its own index (first: the reference)",
    )
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    os.environ["RAG_HOME"] = str(args.work / "home")
    os.environ.pop("RAG_EMBEDDER", None)
    from indexers.build import build_index
    from indexers.retriever import IndexRetriever
    from rag.core.config import load_settings

    corpus = args.work / "nq-corpus.jsonl"
    pairs = write_corpus(
        args.oracle, args.wiki, args.questions, args.distractors, corpus, args.seed
    )
    runtimes = args.runtimes.split(",")
    recalls: dict[str, dict[str, float]] = {}
    for runtime in runtimes:
        settings = load_settings().with_overrides(embedder_runtime=runtime)
        name = f"nq-{runtime}"
        started = time.perf_counter()
        report = build_index([corpus], name, settings)
        build_s = time.perf_counter() - started
        print(f"[{runtime}] corpus: {report.chunks_total} chunks from {corpus} "
              f"({len(pairs)} questions); index {'built' if report.changed else 'reused'} "
              f"in {build_s:.1f}s")  # fmt: skip
        recalls[runtime] = {}
        for mode, hybrid in (("dense", False), ("hybrid", True)):
            retriever = IndexRetriever.open(name, settings.with_overrides(hybrid=hybrid))
            recall, latencies = evaluate(retriever, pairs, args.k)
            retriever.close()
            recalls[runtime][mode] = recall
            print(f"[{runtime}] {mode:6s} recall@{args.k}: {recall:.3f}  latency p50 "
                  f"{1000 * statistics.median(latencies):.1f} ms, p95 "
                  f"{1000 * percentile(latencies, 0.95):.1f} ms")  # fmt: skip
    reference = runtimes[0]
    for runtime in runtimes[1:]:
        for mode in ("dense", "hybrid"):
            gap = recalls[runtime][mode] - recalls[reference][mode]
            print(
                f"{runtime} vs {reference}, {mode} recall@{args.k}: {gap:+.4f} (goal: within 0.005)"
            )


if __name__ == "__main__":
    main()
