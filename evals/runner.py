"""Answer every sampled question under every condition, one JSON line at a time.

Why it is built this way:
- every answer goes through `rag.orchestrator.ask` (family `eval`), the code path
  `rag ask` uses, so the eval measures the product, not a lookalike;
- the model loads once per process and the prompt templates share their fixed
  instruction prefix, so llama.cpp reuses its KV cache across questions;
- `predictions.jsonl` is appended and flushed per answer, so an interrupted run
  resumes where it stopped; `manifest.json` pins what the numbers depend on and
  refuses to mix runs whose settings differ.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import prompts
from evals.benchmarks import Benchmark, Question, load_benchmark, sample_questions
from evals.conditions import Condition, EvidenceSource, Snapshot
from evals.metrics import answer_in_passages, contains_answer, exact_match, token_f1
from rag.config import Settings
from rag.errors import UsageError
from rag.generators import Generator, load_generator
from rag.retrieval import Retriever, build_retriever

PREDICTIONS = "predictions.jsonl"
MANIFEST = "manifest.json"
PROMPTS = ("eval_closed_book", "eval_with_sources")
PACKAGES = (
    "pocketrag",
    "llama-cpp-python",
    "sentence-transformers",
    "faiss-cpu",
    "bm25s",
    "ddgs",
    "numpy",
    "torch",
)
#: Manifest keys that must match for a run to resume into an existing --out folder.
PINNED = (
    "benchmark_sha256",
    "model",
    "model_sha256",
    "seed",
    "n",
    "k",
    "max_tokens",
    "temperature",
    "prompts",
    "question_ids",
)
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
    seconds: float  # wall time of the answering loop, model load excluded
    warnings: list[str] = field(default_factory=list)

    @property
    def per_minute(self) -> float:
        return 60.0 * self.answered / self.seconds if self.seconds > 0 else 0.0


def file_sha256(path: Path, settings: Settings) -> str:
    """SHA-256 of a (possibly multi-GB) model file, cached by path, size and mtime."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    cache = settings.cache_dir / "file-hashes" / key
    if cache.is_file():
        return cache.read_text().strip()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(digest.hexdigest())
    return digest.hexdigest()


def model_file(spec: str) -> Path | None:
    """The GGUF file behind a model spec, or None for a remote/registered backend."""
    from rag.generators.base import REGISTRY

    prefix, sep, _ = spec.partition(":")
    if sep and prefix in REGISTRY:
        return None
    from rag.models import resolve_model

    return resolve_model(spec).locate()


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_manifest(
    config: EvalConfig, settings: Settings, bench: Benchmark, questions: list[Question]
) -> dict[str, Any]:
    path = model_file(settings.model)
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "benchmark": bench.name,
        "benchmark_file": str(bench.path),
        "benchmark_sha256": bench.sha256,
        "benchmark_size": len(bench.questions),
        "model": settings.model,
        "model_file": str(path) if path else None,
        "model_sha256": file_sha256(path, settings) if path else None,
        "conditions": [c.name for c in config.conditions],
        "n": len(questions),
        "seed": config.seed,
        "k": settings.k,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "context_cap": settings.context_cap,
        "prompts": {name: prompts.load(name).sha256 for name in PROMPTS},
        "packages": package_versions(),
        "snapshot": str(config.snapshot) if config.snapshot else None,
        "replay": str(config.replay) if config.replay else None,
        "question_ids": [q.id for q in questions],
    }


def reconcile_manifest(out_dir: Path, fresh: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest, or check that an existing run in `out_dir` can be resumed."""
    path = out_dir / MANIFEST
    if not path.is_file():
        path.write_text(json.dumps(fresh, indent=2) + "\n", encoding="utf-8")
        return fresh
    old = json.loads(path.read_text(encoding="utf-8"))
    differ = [key for key in PINNED if old.get(key) != fresh.get(key)]
    if differ:
        raise UsageError(
            f"{out_dir} holds a run with different settings ({', '.join(differ)} differ), so "
            "its answers cannot be mixed with these. Resume with the same options, or use a "
            "new --out folder."
        )
    merged = dict(old)
    merged["conditions"] = old["conditions"] + [
        c for c in fresh["conditions"] if c not in old["conditions"]
    ]
    merged["resumed"] = fresh["created"]
    path.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    return merged


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
    return {
        "qid": question.id,
        "condition": condition.name,
        "question": question.question,
        "answers": list(question.answers),
        "prediction": answer.answer,
        "correct": contains_answer(answer.answer, question.answers),
        "em": exact_match(answer.answer, question.answers),
        "f1": round(token_f1(answer.answer, question.answers), 4),
        "hit": None
        if condition.closed
        else answer_in_passages([s.text for s in answer.sources], question.answers),
        "n_sources": len(answer.sources),
        "sources": [
            {
                "id": s.id,
                "title": s.title,
                "location": s.location,
                "origin": s.origin,
                "score": s.score,
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
    config.out_dir.mkdir(parents=True, exist_ok=True)
    manifest = reconcile_manifest(
        config.out_dir, build_manifest(config, settings, bench, questions)
    )
    done = {(r["condition"], r["qid"]) for r in read_predictions(config.out_dir)}
    todo = [(q, c) for q in questions for c in config.conditions if (c.name, q.id) not in done]
    total = len(questions) * len(config.conditions)
    resumed = total - len(todo)
    if progress:
        progress(resumed, total, "")

    answered, seconds = 0, 0.0
    if todo:
        generator = generator or load_generator(settings)
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
    return RunOutcome(config.out_dir, results, answered, resumed, seconds)
