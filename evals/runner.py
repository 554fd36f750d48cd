"""Answer every sampled question under every condition, one JSON line at a time.

Why it is built this way:
- every answer goes through `rag.orchestrator.answer` (family `eval`), the code path
  `rag ask` uses, so the eval measures the product, not a lookalike;
- the model loads once per process and the prompt templates share their fixed
  instruction prefix, so llama.cpp reuses its KV cache across questions;
- `predictions.jsonl` gets one whole line per answer as it goes (`evals.jsonl`: a failed
  append is cut back off), so an interrupted run resumes where it stopped; one run at a
  time writes into a folder (`lock_run`);
- `manifest.json` (replaced atomically) pins what the numbers depend on (including
  which generation of each local index answered) and refuses to mix runs whose
  settings or indexes differ;
- with a model server (`openai:`), `--concurrency N` answers N (question, condition)
  items at once, each on its own thread (retrieval, prompt, generation, scoring), and
  writes them in the order one at a time would (`in_order`), so resume is unchanged;
  a model in this process answers one at a time;
- throughput is timed over the answering loop only: the model load, opening the
  indexes and one untimed warm-up query per local index (which loads the embedder)
  come before the clock starts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.benchmarks import Question, load_benchmark, sample_questions
from evals.conditions import Condition, EvidenceSource, Snapshot, snapshot_record_problem
from evals.config import DEFAULT_MAX_TOKENS, EvalConfig
from evals.jsonl import append_line, bad_line, read_jsonl, repair_tail
from evals.manifest import MANIFEST, build_manifest, index_fingerprint, reconcile_manifest
from evals.metrics import score_answer
from evals.predictions import (
    PREDICTIONS,
    PREDICTIONS_FIX,
    Predictions,
    cut_short_message,
    load_predictions,
    read_predictions,
    row_problem,
)
from evals.report import write_reports
from rag.core.config import Settings
from rag.core.errors import PromptTooLong, RagError, UsageError
from rag.core.files import storage_error
from rag.generators import Generator, load_generator
from rag.generators.base import serves_concurrently
from rag.orchestrator import Answer, Retrieved
from rag.orchestrator import answer as answer_from
from rag.sources import Retriever, build_retriever

#: Held by the run writing into a folder; never read by `rag eval report`.
LOCK = ".run.lock"
__all__ = [
    "LOCK",
    "MANIFEST",
    "PREDICTIONS",
    "DEFAULT_MAX_TOKENS",
    "EvalConfig",
    "PREDICTIONS_FIX",
    "Predictions",
    "RunBusy",
    "RunOutcome",
    "cut_short_message",
    "load_predictions",
    "read_predictions",
    "row_problem",
    "run_eval",
]

Progress = Callable[[int, int, str], None]


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


def check_gold(questions: list[Question], path: Path) -> None:
    """The `oracle` condition answers from each question's gold passages: every sampled
    question needs them, or its oracle answer would silently be a closed-book one."""
    missing = [q for q in questions if not q.gold]
    if missing:
        raise UsageError(
            f"The oracle condition needs gold passages, but {len(missing)} of the "
            f"{len(questions)} questions sampled from {path} have none (e.g. "
            f"{missing[0].question!r}). Give each row `gold_passages` (texts, or objects with "
            "`title` and `text`) or `ctxs` marked `isgold`, or drop `oracle` from --conditions."
        )


def unanswered(question: str, generator: Generator, exc: PromptTooLong) -> Answer:
    """The record of a question whose prompt cannot fit the model's context even without
    evidence: an empty answer (scored wrong) with the reason, so the run goes on and a
    resume does not stop at the same question again."""
    timings = {"retrieval_s": 0.0, "prompt_tokens": exc.prompt_tokens, "ttft_s": 0.0,
               "completion_tokens": 0, "tokens_per_s": 0.0, "total_s": 0.0}  # fmt: skip
    return Answer(question, "", generator.model_name, [], timings, [f"not answered: {exc}"])


def score(question: Question, condition: Condition, answer: Any, retrieval_s: float) -> dict:
    """One predictions.jsonl line: the answer, its scores, and what it cost."""
    t = answer.timings
    passages = None if condition.closed else [s.shown for s in answer.sources]
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
                "rerank_score": s.rerank_score,
                "text": s.shown,  # what the model read, so hit@k counts only that
            }
            for s in answer.sources
        ],
        "latency_s": round(float(t["total_s"]) + retrieval_s, 4),
        "retrieval_s": round(retrieval_s, 4),
        "prompt_tokens": t["prompt_tokens"],
        "cached_prompt_tokens": t.get("cached_prompt_tokens", 0),
        "ttft_s": round(float(t.get("ttft_s", 0.0)), 4),
        "selection_s": round(float(t.get("selection_s", 0.0)), 4),
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
    warn: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run (or resume) an eval into `config.out_dir` and write its reports.

    Warnings (skipped benchmark rows, a repaired last line) go to `warn` as they happen,
    so a user sees them even if the run fails later, and into `RunOutcome.warnings`.
    """
    warnings: list[str] = []

    def note(message: str) -> None:
        warnings.append(message)
        if warn:
            warn(message)

    if config.snapshot and config.replay:
        raise UsageError("Use --snapshot or --replay, not both: a replay does not search.")
    check_paths(config)
    settings = settings.with_overrides(max_tokens=config.max_tokens, temperature=0.0)
    bench = load_benchmark(config.benchmark, settings)
    if bench.skipped:
        note(
            f"{bench.skipped} of {bench.skipped + len(bench.questions)} rows of {bench.path} "
            "were skipped: they have no question or no gold answer."
        )
    questions = sample_questions(bench.questions, config.n, config.seed)
    replay = Snapshot.load(config.replay) if config.replay else None
    if replay is not None:
        replay.check(config.conditions, [q.question for q in questions])
    if any(c.oracle for c in config.conditions):
        check_gold(questions, bench.path)
    evidence = EvidenceSource(
        config.conditions,
        settings=settings,
        build=retriever_factory or (lambda spec: build_retriever(spec, settings)),
        replay=replay,
        snapshot_path=config.snapshot,
        gold={q.question: q.gold for q in questions},
    )
    indexes = {
        spec: index_fingerprint(spec, settings, retriever)
        for spec, retriever in evidence.retrievers.items()
        if spec.startswith("index:")
    }
    try:
        config.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(config.out_dir, exc, "create the folder") from None
    with lock_run(config.out_dir):
        found = load_predictions(config.out_dir)  # a damaged line stops the run before any write
        manifest = reconcile_manifest(
            config.out_dir, build_manifest(config, settings, bench, questions, indexes)
        )
        for path in (found.path, config.snapshot):
            cut = repair_tail(path) if path is not None else None
            if cut is not None:
                note(cut_short_message(path, cut, "it was removed, and its answer is asked again."))
        done = {(r["condition"], r["qid"]) for r in found.rows}
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
            workers = settings.concurrency
            if workers > 1 and not serves_concurrently(generator):
                note(
                    f"--concurrency {workers} applies to model servers (openai:URL#MODEL); "
                    f"{generator.model_name} answers one question at a time in this process, "
                    "so this run uses 1."
                )
                workers = 1
            warmup = evidence.warm_up(todo[0][0].question, {s for _, c in todo for s in c.sources})
            abandoned = threading.Event()

            def stop_if_abandoned(_: str) -> None:
                if abandoned.is_set():  # the run stopped (Ctrl-C, another answer's error):
                    raise _Abandoned  # stop reading this answer, which frees the server

            def answer_one(item: tuple[Question, Condition]) -> tuple[Retrieved, dict]:
                question, condition = item
                got = evidence.retrieve(condition, question.question, record=False)
                try:
                    answer = answer_from(
                        question.question,
                        got,
                        generator,
                        condition.settings(settings),
                        family="eval",
                        on_text=stop_if_abandoned if workers > 1 else None,
                    )
                except PromptTooLong as exc:  # this question alone does not fit: it is
                    answer = unanswered(question.question, generator, exc)  # scored wrong
                return got, score(question, condition, answer, got.seconds)

            started = time.perf_counter()
            for (question, condition), (got, row) in in_order(todo, answer_one, workers, abandoned):
                evidence.record(condition, question.question, got)
                append_line(found.path, row)
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
        warnings=warnings,
    )


class _Abandoned(Exception):
    """Raised in a worker whose answer nobody will write: the run has stopped."""


class _Job:
    """One item answered on a worker thread: its result, or the exception it raised."""

    def __init__(self, item: Any) -> None:
        self.item = item
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


#: How often the writer wakes while it waits for an answer (Ctrl-C is handled at once anyway).
_WAIT_S = 0.25


def in_order(
    items: list[Any],
    work: Callable[[Any], Any],
    workers: int,
    abandoned: threading.Event,
) -> Iterator[tuple[Any, Any]]:
    """`(item, work(item))` for each item, in the items' order.

    With one worker, one item at a time on this thread. Otherwise up to `workers` items run
    at once, each on a daemon thread: an item that finishes early waits for those before it,
    so the caller writes answers in the order of a one-at-a-time run (and a resume finds the
    same file), and never more than `workers` items are started but not yet handed over (all
    a kill can lose). The first item to fail stops new ones from starting; its exception is
    raised here, as it would have been one at a time, once the items before it are handed
    over. When the caller stops early (that exception, Ctrl-C), `abandoned` is set and the
    items still running are left behind: nothing waits for them (a stuck server cannot hold
    up the exit), `work` is expected to stop at its next chance, and their results are
    dropped.
    """
    if workers <= 1:
        for item in items:
            yield item, work(item)
        return
    failed = threading.Event()

    def run(job: _Job) -> None:
        try:
            job.result = work(job.item)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            job.error = exc
            failed.set()
        finally:
            job.done.set()

    jobs: deque[_Job] = deque()
    pending = iter(items)

    def start_more() -> None:
        while len(jobs) < workers and not failed.is_set():
            item = next(pending, _END)
            if item is _END:
                return
            job = _Job(item)
            threading.Thread(target=run, args=(job,), name="rag-eval-answer", daemon=True).start()
            jobs.append(job)

    try:
        start_more()
        while jobs:
            job = jobs[0]
            while not job.done.wait(_WAIT_S):
                pass
            if job.error is not None:
                raise job.error
            jobs.popleft()
            yield job.item, job.result
            start_more()
    finally:
        abandoned.set()


_END = object()


def check_paths(config: EvalConfig) -> None:
    """Refuse paths that cannot work before any time is spent (the model load, a search)."""
    # the folder itself, or the nearest part of its path that exists, must be a folder
    existing = next((p for p in (config.out_dir, *config.out_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == config.out_dir else f": {existing} is a file"
        raise UsageError(
            f"--out {config.out_dir} is a file, not a folder{where}. Give a folder for the "
            "run (it is created if missing)."
        )
    # A new run writes these into --out: never over a file that is not from a run.
    if config.out_dir.is_dir() and not (config.out_dir / MANIFEST).exists():
        theirs = [n for n in (PREDICTIONS, *REPORT_FILES) if (config.out_dir / n).exists()]
        if theirs:
            raise UsageError(
                f"--out {config.out_dir} already holds {', '.join(theirs)} but no {MANIFEST}: "
                "not a run pocketrag can resume, and a new run would overwrite those files. "
                "Give a new or empty folder for the run."
            )
    if config.snapshot is not None:
        folder = config.snapshot.parent
        if config.snapshot.is_dir():
            raise UsageError(
                f"--snapshot {config.snapshot} is a folder. Give a file name to record the "
                f"retrieval results to, e.g. {config.snapshot / 'snapshot.jsonl'}."
            )
        if not folder.is_dir():
            raise UsageError(
                f"Cannot record the snapshot to {config.snapshot}: the folder {folder} does "
                "not exist. Create it, or choose another path for --snapshot."
            )
        _check_snapshot_target(config)


#: What `rag eval run` writes into --out besides predictions.jsonl and manifest.json.
REPORT_FILES = ("results.json", "report.md", "report.png")


def _check_snapshot_target(config: EvalConfig) -> None:
    """A snapshot is appended to, and its last line repaired: it must be a new file or an
    earlier snapshot, never the benchmark, a file of the run, or anyone else's file."""
    assert config.snapshot is not None
    snapshot = config.snapshot.resolve()
    own = {(config.out_dir / n).resolve() for n in (PREDICTIONS, MANIFEST, LOCK, *REPORT_FILES)}
    benchmark = Path(config.benchmark).expanduser()
    if snapshot in own or (benchmark.is_file() and benchmark.resolve() == snapshot):
        what = "the benchmark file" if snapshot not in own else "a file the run itself writes"
        raise UsageError(
            f"--snapshot {config.snapshot} is {what}. Give the snapshot a file of its own, "
            f"e.g. {config.out_dir / 'snapshot.jsonl'}."
        )
    try:
        if not snapshot.is_file() or snapshot.stat().st_size == 0:
            return
    except OSError as exc:
        raise storage_error(snapshot, exc, "read") from None
    fix = (
        "--snapshot adds to an earlier snapshot, so it would change this file: give a new "
        "file name to record a new snapshot."
    )
    found = read_jsonl(config.snapshot, fix)  # a line that is not JSON: a UsageError
    for number, row in found.rows:
        problem = snapshot_record_problem(row)
        if problem is not None:
            raise bad_line(config.snapshot, number, problem, fix)
    if not found.rows:
        raise UsageError(f"{config.snapshot} holds no snapshot record. {fix}")


class RunBusy(RagError):
    """Another `rag eval run` is writing into the same run folder."""


@contextmanager
def lock_run(out_dir: Path) -> Iterator[None]:
    """One writer per run folder: two runs into one folder would answer the same questions
    twice and interleave their lines. The lock is the kernel's (released when the holder
    dies, so a killed run never blocks the next); the file stays, as deleting it would
    race with a run about to lock it. `rag eval report` ignores it."""
    from filelock import FileLock, Timeout

    path = out_dir / LOCK
    lock = FileLock(str(path), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunBusy(
            f"Another `rag eval run` is writing into {out_dir} (it holds {path}). Wait for it "
            "to finish, or give this run another --out folder."
        ) from None
    except OSError as exc:
        raise storage_error(path, exc, "lock") from None
    try:
        yield
    finally:
        lock.release()
