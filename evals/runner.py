"""Answer every sampled question under every condition, one JSON line at a time.

Why it is built this way:
- every answer goes through `rag.orchestrator.ask` (family `eval`), the code path
  `rag ask` uses, so the eval measures the product, not a lookalike;
- the model loads once per process and the prompt templates share their fixed
  instruction prefix, so llama.cpp reuses its KV cache across questions;
- `predictions.jsonl` is appended and flushed per answer, so an interrupted run
  resumes where it stopped; `manifest.json` pins what the numbers depend on (including
  which generation of each local index answered) and refuses to mix runs whose
  settings or indexes differ;
- throughput is timed over the answering loop only: the model load, opening the
  indexes and one untimed warm-up query per local index (which loads the embedder)
  come before the clock starts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.benchmarks import Question, load_benchmark, sample_questions
from evals.conditions import Condition, EvidenceSource, Snapshot
from evals.manifest import MANIFEST, build_manifest, index_fingerprint, reconcile_manifest
from evals.metrics import score_answer
from rag.config import Settings
from rag.errors import UsageError
from rag.generators import Generator, load_generator
from rag.retrieval import Retriever, build_retriever

PREDICTIONS = "predictions.jsonl"
__all__ = ["MANIFEST", "PREDICTIONS", "EvalConfig", "RunOutcome", "read_predictions", "run_eval"]
DEFAULT_MAX_TOKENS = 32

Progress = Callable[[int, int, str], None]


@dataclass
class EvalConfig:
    benchmark: str
    conditions: list[Condition]
    out_dir: Path
    n: int | None = None
    seed: int = 0
    max_tokens: int = DEFAULT_MAX_TOKENS
    snapshot: Path | None = None
    replay: Path | None = None


@dataclass
class RunOutcome:
    out_dir: Path
    results: dict[str, Any]
    answered: int  # answers produced by this process (not the resumed ones)
    resumed: int
    seconds: float  # wall time of the answering loop: retrieval, generation, scoring, writing
    questions: int = 0  # questions this process answered under every condition
    conditions: int = 1
    warmup_seconds: float = 0.0  # untimed index warm-up (embedder load), not in `seconds`
    warnings: list[str] = field(default_factory=list)

    @property
    def answers_per_minute(self) -> float:
        return 60.0 * self.answered / self.seconds if self.seconds > 0 else 0.0

    @property
    def questions_per_minute(self) -> float:
        return 60.0 * self.questions / self.seconds if self.seconds > 0 else 0.0


def read_predictions(out_dir: Path) -> list[dict[str, Any]]:
    """The answers already written. A line cut short by an interruption is dropped (and the
    file rewritten without it) so appending the next answer cannot glue onto it."""
    path = out_dir / PREDICTIONS
    if not path.is_file():
        return []
    rows, broken = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            broken = True
    if broken or not path.read_text(encoding="utf-8").endswith("\n"):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        path.write_text(text, encoding="utf-8")
    return rows


def score(question: Question, condition: Condition, answer: Any, retrieval_s: float) -> dict:
    """One predictions.jsonl line: the answer, its scores, and what it cost."""
    t = answer.timings
    passages = None if condition.closed else [s.text for s in answer.sources]
    return {
        "qid": question.id,
        "condition": condition.name,
        "question": question.question,
        "answers": list(question.answers),
        "prediction": answer.answer,
        **score_answer(answer.answer, question.answers, passages),
        "n_sources": len(answer.sources),
        # the texts too, so `rag eval report` can recompute hit@k
        "sources": [
            {
                "id": s.id,
                "title": s.title,
                "location": s.location,
                "origin": s.origin,
                "score": s.score,
                "text": s.text,
            }
            for s in answer.sources
        ],
        "latency_s": round(float(t["total_s"]) + retrieval_s, 4),
        "retrieval_s": round(retrieval_s, 4),
        "prompt_tokens": t["prompt_tokens"],
        "cached_prompt_tokens": t.get("cached_prompt_tokens", 0),
        "completion_tokens": t["completion_tokens"],
        "warnings": answer.warnings,
    }


def run_eval(
    config: EvalConfig,
    settings: Settings,
    *,
    generator: Generator | None = None,
    retriever_factory: Callable[[str], Retriever] | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    """Run (or resume) an eval into `config.out_dir` and write its reports."""
    from evals.report import write_reports
    from rag.orchestrator import ask

    if config.snapshot and config.replay:
        raise UsageError("Use --snapshot or --replay, not both: a replay does not search.")
    settings = settings.with_overrides(max_tokens=config.max_tokens, temperature=0.0)
    bench = load_benchmark(config.benchmark, settings)
    questions = sample_questions(bench.questions, config.n, config.seed)
    replay = Snapshot.load(config.replay) if config.replay else None
    if replay is not None:
        replay.check(config.conditions, [q.question for q in questions])
    evidence = EvidenceSource(
        config.conditions,
        k=settings.k,
        build=retriever_factory or (lambda spec: build_retriever(spec, settings)),
        replay=replay,
        snapshot_path=config.snapshot,
    )
    indexes = {
        spec: index_fingerprint(spec, settings, retriever)
        for spec, retriever in evidence.retrievers.items()
        if spec.startswith("index:")
    }
    config.out_dir.mkdir(parents=True, exist_ok=True)
    manifest = reconcile_manifest(
        config.out_dir, build_manifest(config, settings, bench, questions, indexes)
    )
    done = {(r["condition"], r["qid"]) for r in read_predictions(config.out_dir)}
    todo = [(q, c) for q in questions for c in config.conditions if (c.name, q.id) not in done]
    total = len(questions) * len(config.conditions)
    resumed = total - len(todo)
    if progress:
        progress(resumed, total, "")

    answered, seconds, warmup = 0, 0.0, 0.0
    left = {q.id: 0 for q in questions}  # answers this process gives per question
    for question, _ in todo:
        left[question.id] += 1
    full = {qid for qid, count in left.items() if count == len(config.conditions)}
    if todo:
        generator = generator or load_generator(settings)
        warmup = evidence.warm_up(todo[0][0].question, {s for _, c in todo for s in c.sources})
        started = time.perf_counter()
        with (config.out_dir / PREDICTIONS).open("a", encoding="utf-8") as out:
            for question, condition in todo:
                got = evidence.retrieve(condition, question.question)
                answer = ask(
                    question.question,
                    settings=settings,
                    sources=condition.sources,
                    generator=generator,
                    family="eval",
                    retrieved=got,
                )
                row = score(question, condition, answer, got.seconds)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                answered += 1
                if progress:
                    progress(resumed + answered, total, condition.name)
        seconds = time.perf_counter() - started
    results = write_reports(config.out_dir, manifest=manifest)
    return RunOutcome(
        config.out_dir,
        results,
        answered,
        resumed,
        seconds,
        questions=len(full),
        conditions=len(config.conditions),
        warmup_seconds=warmup,
    )
