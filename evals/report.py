"""Summaries of a run: results.json (shape in the README), report.md, report.png, a table.

Everything is recomputed from predictions.jsonl and manifest.json, so `rag eval
report DIR` re-scores a run (e.g. after a metric fix) without re-running a model:
every answer's correct/EM/F1/hit is scored again from its prediction text, its gold
answers and the passage texts it was given; the values stored in each line are only
the record of what the run computed at the time.
Each condition is compared with `closed` (or, without it, the first condition) on
the questions both answered, with an exact McNemar test on the paired outcomes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals.conditions import CLOSED
from evals.manifest import MANIFEST, read_manifest
from evals.metrics import bootstrap_ci, mcnemar_exact, mean, score_answer
from evals.predictions import cut_short_message, load_predictions
from rag.core.errors import UsageError
from rag.core.files import write_atomic

ALPHA = 0.05
#: The chart `write_reports` draws into the run folder.
PLOT = "report.png"


def load_run(
    out_dir: Path, warn: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and predictions of a run folder, read without changing anything.

    UsageError when it is not a run folder or a file in it is damaged (naming the file
    and line); a last line cut short by an interrupted write is not counted, and `warn`
    is told which line that is.
    """
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise UsageError(
            f"{out_dir} is not an eval run folder (no {MANIFEST}); run `rag eval run`."
        )
    found = load_predictions(out_dir)
    if found.cut_short is not None and warn:
        warn(
            cut_short_message(
                found.path,
                found.cut_short,
                "it is not counted. If no run is writing there now, run the same "
                "`rag eval run` again to answer it.",
            )
        )
    return manifest, found.rows


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def rescore(row: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`row` with correct/em/f1/hit recomputed from its prediction, gold answers and sources.

    hit@k needs the texts of the passages given to the model, recorded in each source
    since they are part of the line; a line written before that keeps its stored hit,
    and the second value is True for it.
    """
    closed = row["condition"] == CLOSED
    texts = [s.get("text") for s in row.get("sources") or []]
    stored_hit = not closed and not all(isinstance(t, str) for t in texts)
    scores = score_answer(
        str(row.get("prediction") or ""),
        [str(a) for a in row.get("answers") or []],
        None if closed or stored_hit else texts,
    )
    if stored_hit:
        scores["hit"] = row.get("hit")
    return {**row, **scores}, stored_hit


#: Each condition's rescored answers, by question id, in the manifest's condition order.
ByCondition = dict[str, dict[str, dict[str, Any]]]


def rescored(
    manifest: dict[str, Any], predictions: Sequence[dict[str, Any]]
) -> tuple[ByCondition, int]:
    """The run's answers to its sampled questions, rescored (`rescore`), per condition; and
    how many kept their stored hit@k. What every summary of a run counts."""
    wanted = set(manifest["question_ids"])
    by_condition: ByCondition = {c: {} for c in manifest["conditions"]}
    for row in predictions:
        if row["qid"] in wanted and row["condition"] in by_condition:
            by_condition[row["condition"]][row["qid"]] = row
    stored_hits = 0
    for rows in by_condition.values():
        for qid, row in rows.items():
            rows[qid], stored = rescore(row)
            stored_hits += stored
    return by_condition, stored_hits


def baseline_of(conditions: Sequence[str]) -> str | None:
    """What every other condition is compared with: `closed`, or else the first one."""
    return CLOSED if CLOSED in conditions else (conditions[0] if conditions else None)


def paired(by_condition: ByCondition) -> list[tuple[str, str, list[str]]]:
    """(condition, baseline, the question ids both answered) for each other condition."""
    names = list(by_condition)
    baseline = baseline_of(names)
    return [
        (name, baseline, [q for q in by_condition[baseline] if q in by_condition[name]])
        for name in names
        if baseline is not None and name != baseline
    ]


def summarize(manifest: dict[str, Any], predictions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """results.json: per-condition metrics with 95% intervals, and paired comparisons."""
    by_condition, stored_hits = rescored(manifest, predictions)
    conditions: dict[str, Any] = {}
    for name, rows in by_condition.items():
        values = list(rows.values())
        correct = [float(r["correct"]) for r in values]
        hits = [float(r["hit"]) for r in values if r.get("hit") is not None]
        low, high = bootstrap_ci(correct)
        conditions[name] = {
            "n": len(values),
            "accuracy": _r(mean(correct)),
            "accuracy_ci": [_r(low), _r(high)],
            "em": _r(mean([float(r["em"]) for r in values])),
            "f1": _r(mean([float(r["f1"]) for r in values])),
            "hit_at_k": _r(mean(hits)) if hits else None,
            "mean_latency_s": _r(mean([float(r["latency_s"]) for r in values]), 3),
            "mean_prompt_tokens": _r(mean([float(r["prompt_tokens"]) for r in values]), 1),
            # lines written before time to first token was recorded have none
            "mean_ttft_s": _r(mean(ttfts), 3) if (ttfts := _numbers(values, "ttft_s")) else None,
            "mean_selection_s": (
                _r(mean(chosen), 4) if (chosen := _numbers(values, "selection_s")) else None
            ),
        }
    comparisons = []
    for name, baseline, shared in paired(by_condition):
        base = [float(by_condition[baseline][q]["correct"]) for q in shared]
        other = [float(by_condition[name][q]["correct"]) for q in shared]
        test = mcnemar_exact(base, other)
        diffs = [o - b for b, o in zip(base, other, strict=False)]
        low, high = bootstrap_ci(diffs)
        comparisons.append(
            {
                "condition": name,
                "baseline": baseline,
                "n": len(shared),
                "delta": _r(mean(diffs)),
                "delta_ci": [_r(low), _r(high)],
                "only_baseline_correct": test.b,
                "only_condition_correct": test.c,
                # the same counts, as a reader of the table asks: did the evidence help?
                "helped": test.c,
                "hurt": test.b,
                "p_value": float(f"{test.p_value:.3g}"),  # significant digits: p can be tiny
                "significant": bool(shared) and test.p_value < ALPHA,
            }
        )
    return {
        "benchmark": manifest["benchmark"],
        "model": manifest["model"],
        "n": len(manifest["question_ids"]),
        "k": manifest.get("k"),
        "seed": manifest.get("seed"),
        "conditions": conditions,
        "comparisons": comparisons,
        "notes": [
            f"hit@k of {stored_hits} answers is the value stored at run time: their lines "
            "predate recording passage texts, so it could not be recomputed."
        ]
        if stored_hits
        else [],
    }


def _numbers(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def _rows(results: dict[str, Any]) -> list[list[str]]:
    sig = {c["condition"]: c for c in results["comparisons"]}
    rows = []
    for name, m in results["conditions"].items():
        ci = m["accuracy_ci"]
        comp = sig.get(name)
        helped = "-" if comp is None else f"+{comp['helped']}/−{comp['hurt']}"
        ttft = m.get("mean_ttft_s")
        versus = (
            "baseline"
            if comp is None
            else (
                f"{'+' if (comp['delta'] or 0) >= 0 else ''}{_pct(comp['delta'])} "
                f"{_p(comp['p_value'])}{'*' if comp['significant'] else ''}"
            )
        )
        rows.append(
            [
                name,
                str(m["n"]),
                _pct(m["accuracy"]),
                f"{_pct(ci[0])}–{_pct(ci[1])}",
                _pct(m["em"]),
                _pct(m["f1"]),
                _pct(m["hit_at_k"]),
                "-" if m["mean_latency_s"] is None else f"{m['mean_latency_s']:.2f}",
                "-" if m["mean_prompt_tokens"] is None else f"{m['mean_prompt_tokens']:.0f}",
                "-" if ttft is None else f"{ttft:.2f}",
                helped,
                versus,
            ]
        )
    return rows


HEADERS = [
    "condition",
    "n",
    "acc %",
    "95% CI",
    "EM %",
    "F1 %",
    "hit@k %",
    "lat s",
    "p.tok",
    "ttft s",
    "helped/hurt",
    "vs base",
]


def rich_table(results: dict[str, Any]):  # noqa: ANN201 - rich.table.Table, imported lazily
    from rich.table import Table
    from rich.text import Text

    # Text, not markup: a condition such as `web[fetch=1]` would be read as a style tag.
    table = Table(
        padding=(0, 1),
        title=Text(f"{results['benchmark']} · {results['model']} · {results['n']} questions"),
    )
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("condition", "vs base") else "right")
    for row in _rows(results):
        table.add_row(*(Text(cell) for cell in row))
    return table


def markdown(results: dict[str, Any], manifest: dict[str, Any]) -> str:
    lines = [
        f"# Eval: {results['benchmark']} with {results['model']}",
        "",
        f"{results['n']} questions (seed {manifest.get('seed')}), k={manifest.get('k')}, "
        f"greedy decoding, at most {manifest.get('max_tokens')} answer tokens.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results)]
    lines += [
        "",
        "Accuracy is contains-answer accuracy (a normalised gold answer appears in the "
        "normalised output); the interval is a 95% bootstrap interval. EM and F1 are "
        "SQuAD-normalised, best over gold answers. hit@k: a gold answer appears in the passages "
        "given to the model. ttft: mean time to the first answer token. helped/hurt: questions "
        "this condition answers right and the baseline wrong, and the reverse. `*`: the paired "
        f"exact McNemar test against the baseline gives p < {ALPHA}.",
        "",
        "## Provenance",
        "",
        f"- benchmark file: `{manifest.get('benchmark_file')}` "
        f"(sha256 `{manifest.get('benchmark_sha256')}`)",
        f"- model file: `{manifest.get('model_file')}` (sha256 `{manifest.get('model_sha256')}`)",
        "- prompts: "
        + ", ".join(f"`{k}` {v[:12]}" for k, v in manifest.get("prompts", {}).items()),
        "- packages: "
        + ", ".join(f"{k} {v}" for k, v in manifest.get("packages", {}).items() if v),
    ]
    for spec, index in (manifest.get("indexes") or {}).items():
        if index:
            lines.append(
                f"- `{spec}`: `{index.get('index_dir')}` generation {index.get('generation')}, "
                f"embedder {index.get('embedder')}, params sha256 "
                f"`{str(index.get('params_sha256'))[:12]}`"
            )
    if manifest.get("replay"):
        lines.append(f"- retrieval replayed from `{manifest['replay']}`")
    lines += [f"- note: {note}" for note in results.get("notes", [])]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Bar chart of accuracy per condition with 95% interval whiskers, replaced atomically."""
    write_atomic(path, png(results))


def png(results: dict[str, Any]) -> bytes:
    """The chart as PNG bytes: drawn in memory, so a failed write never leaves half a file."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["conditions"])
    acc = [100 * (results["conditions"][n]["accuracy"] or 0) for n in names]
    low = [100 * (results["conditions"][n]["accuracy_ci"][0] or 0) for n in names]
    high = [100 * (results["conditions"][n]["accuracy_ci"][1] or 0) for n in names]
    err = [
        [max(a - lo, 0) for a, lo in zip(acc, low, strict=False)],
        [max(h - a, 0) for a, h in zip(acc, high, strict=False)],
    ]
    buffer = io.BytesIO()
    # names and titles are data, not TeX: a `$` in a condition or model name is a dollar sign
    with matplotlib.rc_context({"text.parse_math": False}):
        fig, ax = plt.subplots(figsize=(max(5.5, 1.8 * len(names) + 2), 4.2))
        try:
            bars = ax.bar(
                names, acc, yerr=err, capsize=6, width=0.6, color="#4c78a8", ecolor="#333333"
            )
            for bar, value in zip(bars, acc, strict=False):
                ax.annotate(
                    f"{value:.1f}",
                    (bar.get_x() + bar.get_width() / 2, value),
                    xytext=(4, 3),
                    textcoords="offset points",
                    fontsize=9,
                )
            ax.set_ylabel("contains-answer accuracy (%)")
            ax.set_ylim(0, min(100, max(high + [10]) * 1.2))
            ax.set_title(
                f"{results['benchmark']} · {results['model']}\n"
                f"n={results['n']} questions, whiskers: 95% bootstrap interval",
                fontsize=10,
            )
            fig.tight_layout()
            fig.savefig(buffer, format="png", dpi=120)
        finally:
            plt.close(fig)
    return buffer.getvalue()


def recompute(
    out_dir: Path,
    *,
    manifest: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The run's manifest, predictions and results (results.json), recomputed; nothing is
    written, so a reader (`rag serve --runs`) sees what `rag eval report` would write."""
    uncounted: list[str] = []

    def note(message: str) -> None:
        uncounted.append(message)
        if warn:
            warn(message)

    loaded_manifest, predictions = load_run(out_dir, note)
    manifest = manifest or loaded_manifest
    results = summarize(manifest, predictions)
    results["notes"] += uncounted  # the report says what it did not count
    return manifest, predictions, results


def write_reports(
    out_dir: Path,
    *,
    manifest: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Recompute and write results.json, report.md and report.png; return the results.

    Each is replaced atomically; the inputs (manifest.json, predictions.jsonl) are only read.
    """
    manifest, _, results = recompute(out_dir, manifest=manifest, warn=warn)
    write_atomic(out_dir / "results.json", json.dumps(results, indent=2) + "\n")
    write_atomic(out_dir / "report.md", markdown(results, manifest))
    plot(results, out_dir / PLOT)
    return results
