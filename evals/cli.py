"""`rag eval run` and `rag eval report`: measure how much evidence buys on a benchmark.

The command only parses options, shows progress on stderr and prints the
table; the work is `evals.runner.run_eval` and `evals.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rag.cli import output
from rag.cli.options import ModelOption, question_flag

KOption = question_flag("k")

app = typer.Typer(
    help="Measure answer accuracy with and without retrieval on knowledge benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command("run")
def run(
    benchmark: Annotated[
        str,
        typer.Option(
            "--benchmark",
            "-b",
            help="nq_open, triviaqa, popqa, simpleqa, or a path to a JSONL/CSV/TSV/JSON file.",
        ),
    ],
    conditions: Annotated[
        str,
        typer.Option(
            "--conditions",
            "-c",
            help="Comma-separated: closed, oracle, web, index:NAME, or combinations like "
            "web+index:NAME; [k=N] after one gives it its own k (index:wiki[k=1]).",
        ),
    ] = "closed",
    n: Annotated[
        int | None,
        typer.Option("--n", min=1, help="Sample this many questions (default: all)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the question sample.")] = 0,
    model: ModelOption = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder (resumes if it exists).")
    ] = Path("eval-run"),
    snapshot: Annotated[
        Path | None,
        typer.Option("--snapshot", help="Record every retrieval result to this JSONL file."),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay", help="Reuse the retrieval results recorded in this file; no searching."
        ),
    ] = None,
    k: KOption = None,
    max_tokens: Annotated[
        int,
        typer.Option(
            "--max-tokens", help="Longest answer, in tokens (short answers are expected)."
        ),
    ] = 32,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            help="Questions sent to a model server (openai:URL#MODEL) at once, 1-64; a model "
            "in this process answers one at a time. Env: RAG_CONCURRENCY.",
        ),
    ] = None,
) -> None:
    """Answer a benchmark under each condition and score it; writes predictions.jsonl,
    results.json, report.md and report.png to --out."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from evals.conditions import parse_conditions
    from evals.runner import EvalConfig, RunBusy, run_eval
    from rag.core.config import load_settings
    from rag.core.errors import RagError

    # range-checked there
    settings = load_settings(model=model, k=k, max_tokens=max_tokens, concurrency=concurrency)
    config = EvalConfig(
        benchmark=benchmark,
        conditions=parse_conditions(conditions),
        out_dir=out,
        n=n,
        seed=seed,
        max_tokens=max_tokens,
        snapshot=snapshot,
        replay=replay,
    )
    bar = Progress(
        TextColumn("[bold]eval[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=output.err,
        transient=False,
    )
    task = bar.add_task("", total=None)

    def progress(done: int, total: int, condition: str) -> None:
        bar.update(task, completed=done, total=total, description=condition)

    try:
        with bar:
            outcome = run_eval(config, settings, progress=progress, warn=output.warn)
    except KeyboardInterrupt:
        output.warn(f"Interrupted. Run the same command again to resume into {out}.")
        raise typer.Exit(130) from None
    except RagError as exc:
        busy = isinstance(exc, RunBusy)  # the other run goes on: nothing stopped
        if exc.exit_code != 2 and not busy and (out / "predictions.jsonl").is_file():
            output.warn(
                f"The run stopped; its answers so far are in {out}. Run the same "
                "command again to resume once the problem is fixed."
            )
        raise
    _print_table(outcome.results)
    if outcome.resumed:
        output.err.print(f"Resumed: {outcome.resumed} answers were already in {out}.", markup=False)
    output.err.print(throughput(outcome), markup=False)
    output.err.print(
        f"Wrote {out}/predictions.jsonl, results.json, report.md, report.png", markup=False
    )


@app.command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(help="A folder written by `rag eval run`.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print results.json on stdout.")
    ] = False,
) -> None:
    """Re-score a run folder and rewrite results.json, report.md and report.png."""
    from evals.report import write_reports

    results = write_reports(run_dir, warn=output.warn)
    if json_output:
        output.print_json(results)
    else:
        _print_table(results)


def throughput(outcome) -> str:  # noqa: ANN001 - evals.runner.RunOutcome, imported lazily
    """Questions and answers per minute of answering, and what that time includes."""
    if not outcome.answered:
        return "Nothing to answer: every question was already answered under every condition."
    conditions = f"{outcome.conditions} condition{'s' if outcome.conditions != 1 else ''}"
    warmup = f" ({outcome.warmup_seconds:.1f}s)" if outcome.warmup_seconds else ""
    return (
        f"{outcome.answered} answers, {outcome.questions} questions answered under all "
        f"{conditions}, in {outcome.seconds:.1f}s of answering: "
        f"{outcome.questions_per_minute:.1f} questions/minute, "
        f"{outcome.answers_per_minute:.1f} answers/minute. Answering time covers retrieval, "
        "prompt, generation and scoring; the model load, opening indexes and the embedder "
        f"warm-up{warmup} are not included."
    )


def _print_table(results: dict) -> None:
    """The results table on stdout; piped output gets a fixed width instead of 80 columns."""
    from rich.console import Console

    from evals.report import rich_table

    console = output.out if output.out.is_terminal else Console(highlight=False, width=120)
    console.print(rich_table(results))
