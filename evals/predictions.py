"""predictions.jsonl: one checked record per answer, read without ever changing the file.

Shared by `evals.runner` (which appends to it and resumes from it) and `evals.report`
(which re-scores it), so both read it the same way; imports go one way: runner -> report
-> manifest -> predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.jsonl import bad_line, read_jsonl

PREDICTIONS = "predictions.jsonl"
PREDICTIONS_FIX = (
    "Fix or delete that line (a deleted answer is asked again when the run resumes), or start "
    "over with a new --out folder."
)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def row_problem(row: Any) -> str | None:
    """Why a predictions.jsonl value cannot be counted, or None. Checked on every read, so a
    damaged or hand-edited line is named with its number instead of failing deep inside the
    report."""
    if not isinstance(row, dict):
        return "is not a JSON object"
    for key in ("qid", "condition"):
        if not isinstance(row.get(key), str) or not row[key]:
            return f"has no `{key}` (a non-empty string)"
    if not isinstance(row.get("answers"), list):
        return "has no `answers` list"
    sources = row.get("sources")
    if sources is not None and not (
        isinstance(sources, list) and all(isinstance(s, dict) for s in sources)
    ):
        return "has a `sources` value that is not a list of objects"
    for key in ("latency_s", "prompt_tokens"):
        if not _number(row.get(key)):
            return f"has no `{key}` number"
    if row.get("hit") is not None and not _number(row["hit"]):
        return "has a `hit` value that is not a number"
    return None


@dataclass
class Predictions:
    """The complete answers in predictions.jsonl, and a last line cut short (not counted)."""

    path: Path
    rows: list[dict[str, Any]]
    cut_short: int | None = None


def load_predictions(out_dir: Path) -> Predictions:
    """Every answer written so far, checked; the file is never changed.

    A damaged line is a UsageError naming the file and line: silently skipping it would
    change the numbers, and rewriting the file would destroy the evidence. Only a last
    line cut short by an interrupted write is set apart (see `evals.jsonl`).
    """
    path = out_dir / PREDICTIONS
    found = read_jsonl(path, PREDICTIONS_FIX)
    for number, row in found.rows:
        problem = row_problem(row)
        if problem:
            raise bad_line(path, number, problem, PREDICTIONS_FIX)
    return Predictions(path, [row for _, row in found.rows], found.cut_short)


def read_predictions(out_dir: Path) -> list[dict[str, Any]]:
    """The complete answers written so far, without changing the file."""
    return load_predictions(out_dir).rows


def cut_short_message(path: Path, number: int, action: str) -> str:
    return (
        f"{path} line {number} was cut short by an interrupted write and holds no complete "
        f"record; {action}"
    )
