"""Eval run folders as the research desk shows them: which runs a folder holds, each run's
summary, and a run's results with the questions the evidence helped and hurt.

Read-only, and scored only by `evals.report` (`recompute`, `rescored`, `paired`), so the
page shows exactly what `rag eval report` would write and count; a damaged folder fails
with the same one line (a UsageError naming the file and line). HTTP is `evals.run_routes`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from evals.manifest import MANIFEST, read_manifest
from evals.predictions import PREDICTIONS
from evals.report import PLOT, ByCondition, paired, recompute, rescored
from rag.core.errors import UsageError
from rag.core.files import storage_error

__all__ = ["PLOT", "check_name", "discordant", "find_runs", "run_detail", "summary"]


def check_name(name: str) -> None:
    """A run is named by its folder's name, never by a path: no separators, `.` or `..`
    (the name is only ever looked up among the folders `find_runs` lists)."""
    if name in ("", ".", "..") or any(c in name for c in "/\\\x00"):
        raise UsageError(
            f"{name!r} is not a run's name: give a run folder's name as GET /v1/runs lists "
            "it, not a path."
        )


def find_runs(root: Path) -> dict[str, Path]:
    """The run folders of `rag serve --runs ROOT` by name: ROOT itself when it is a run (it
    has a manifest.json), else its subfolders that have one. Read again on every call, so a
    run started while the server runs shows up."""
    if (root / MANIFEST).is_file():
        return {root.resolve().name: root}
    try:
        children = sorted(root.iterdir())
    except OSError as exc:
        raise storage_error(root, exc, "read") from None
    # A symlinked folder is not a run of ROOT's: following it would serve files from elsewhere.
    return {
        c.name: c
        for c in children
        if not c.is_symlink() and c.is_dir() and (c / MANIFEST).is_file()
    }


def summary(name: str, folder: Path) -> dict[str, Any]:
    """One row of GET /v1/runs, from the run's manifest alone (a UsageError when damaged)."""
    manifest = read_manifest(folder)
    if manifest is None:  # removed since it was listed
        raise UsageError(f"{folder} is not an eval run folder (no {MANIFEST}).")
    n, created = manifest.get("n"), manifest.get("created")
    return {
        "name": name,
        "benchmark": manifest["benchmark"],
        "model": manifest["model"],
        "conditions": manifest["conditions"],
        "n": n if type(n) is int else len(manifest["question_ids"]),
        "created": created if isinstance(created, str) else None,
    }


def discordant(by_condition: ByCondition) -> tuple[list[dict], list[dict]]:
    """The questions each condition answers right and its baseline wrong (helped), and the
    reverse (hurt): the pairs `rag eval report` counts as helped/hurt, one item each."""
    helped: list[dict] = []
    hurt: list[dict] = []
    for name, baseline, shared in paired(by_condition):
        for qid in shared:
            base, row = by_condition[baseline][qid], by_condition[name][qid]
            if row["correct"] and not base["correct"]:
                helped.append(_item(row, base))
            elif base["correct"] and not row["correct"]:
                hurt.append(_item(row, base))
    return helped, hurt


def _item(row: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """A question, its gold answers, both answers, and the evidence the model read (the
    text of each source as it went into the prompt; null for a line written before
    predictions.jsonl recorded it)."""
    return {
        "qid": row["qid"],
        "question": row.get("question"),
        "answers": row["answers"],
        "condition": row["condition"],
        "baseline": base["condition"],
        "closed_answer": base.get("prediction"),
        "answer": row.get("prediction"),
        "evidence": [
            {"title": s.get("title"), "location": s.get("location"), "text": s.get("text")}
            for s in row.get("sources") or []
        ],
    }


#: Recent details by folder and the state of its files: a report's bootstrap intervals take
#: a moment on a big run, and a page asks for the same run again and again.
_CACHE: dict[tuple[Any, ...], dict[str, Any]] = {}
_CACHE_SIZE = 8
_LOCK = threading.Lock()


def _state(folder: Path) -> tuple[Any, ...]:
    stats = []
    for name in (MANIFEST, PREDICTIONS):
        try:
            stat = (folder / name).stat()
            stats.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        except OSError:
            stats.append(None)
    return (str(folder.resolve()), *stats)


def run_detail(folder: Path) -> dict[str, Any]:
    """{"results", "helped", "hurt"} of the run in `folder`, recomputed as `rag eval report`
    would (nothing is written); a UsageError naming the damaged file and line."""
    key = _state(folder)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    manifest, predictions, results = recompute(folder)
    helped, hurt = discordant(rescored(manifest, predictions)[0])
    detail = {"results": results, "helped": helped, "hurt": hurt}
    with _LOCK:
        _CACHE[key] = detail
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return detail
