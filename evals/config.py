"""What one `rag eval run` is asked to do: benchmark, conditions, sample, output folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evals.conditions import Condition

DEFAULT_MAX_TOKENS = 32


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
