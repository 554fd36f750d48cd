"""`rag eval run` / `rag eval report` through the CLI: exit codes, outputs, and a real end-to-end
run (SmolLM2 answering from a small index built with `rag index`, then replayed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeGenerator
from typer.testing import CliRunner

from rag.cli.app import app

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
NQ = str(FIXTURES / "nq_open.jsonl")
OUTPUTS = {"predictions.jsonl", "results.json", "report.md", "report.png"}
CONDITION_KEYS = {
    "n",
    "accuracy",
    "accuracy_ci",
    "em",
    "f1",
    "hit_at_k",
    "mean_latency_s",
    "mean_prompt_tokens",
    "mean_ttft_s",
    "mean_selection_s",
}


def cli(*args: str):  # noqa: ANN201 - click Result
    return CliRunner().invoke(app, list(args))


def _check_outputs(run: Path, conditions: list[str]) -> dict:
    assert {p.name for p in run.iterdir()} >= OUTPUTS
    assert (run / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((run / "results.json").read_text())
    assert {"benchmark", "model", "n", "conditions", "comparisons"} <= set(results)
    assert list(results["conditions"]) == conditions
    for metrics in results["conditions"].values():
        assert set(metrics) == CONDITION_KEYS
    report = (run / "report.md").read_text()
    assert all(f"| {name} |" in report for name in conditions)
    return results


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--conditions", "closed,bing"], "Unknown condition part 'bing'"),
        (["--benchmark", "missing/file.jsonl"], "No benchmark file"),
        (["--benchmark", "mmlu"], "Unknown benchmark"),
        (["--replay", "no-such-snapshot.jsonl"], "No snapshot file"),
    ],
)
def test_usage_errors_exit_2(args, message, fake_model: FakeGenerator, tmp_path: Path) -> None:
    base = {"--benchmark": NQ, "--conditions": "closed", "--out": str(tmp_path / "run")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = cli("eval", "run", "--model", "fake:", *[x for kv in base.items() for x in kv])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert fake_model.calls == []


def test_report_on_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    result = cli("eval", "report", str(tmp_path))
    assert result.exit_code == 2 and "not an eval run folder" in result.output


def test_closed_book_run_with_fake_model(fake_model: FakeGenerator, tmp_path: Path) -> None:
    fake_model.reply = lambda messages: "Jane Austen" if "emma" in messages[-1].content else "?"
    run = tmp_path / "run"
    result = cli("eval", "run", "-b", NQ, "-c", "closed", "-m", "fake:", "--out", str(run))
    assert result.exit_code == 0, result.output
    assert "questions/minute" in result.stderr and "ETA" in result.stderr
    assert "5 answers, 5 questions answered under all 1 condition," in result.stderr
    assert "answers/minute" in result.stderr and "model load" in result.stderr
    assert "closed" in result.stdout and "20.0" in result.stdout  # 1 of 5 correct
    results = _check_outputs(run, ["closed"])
    assert results["conditions"]["closed"]["accuracy"] == pytest.approx(0.2)
    assert results["conditions"]["closed"]["em"] == pytest.approx(0.2)
    again = cli("eval", "report", str(run), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout) == results


@pytest.mark.slow
def test_end_to_end_smollm2_with_a_real_index_then_replay(tmp_path: Path, smollm2_path) -> None:
    built = cli("index", str(FIXTURES / "corpus.jsonl"), "--name", "tiny")
    assert built.exit_code == 0, built.output
    run, snap = tmp_path / "run", tmp_path / "snapshot.jsonl"
    common = [
        "-b",
        NQ,
        "-c",
        "closed,index:tiny",
        "--n",
        "3",
        "--seed",
        "0",
        "-k",
        "2",
        "-m",
        "smollm2-135m",
        "--max-tokens",
        "16",
    ]
    result = cli("eval", "run", *common, "--out", str(run), "--snapshot", str(snap))
    assert result.exit_code == 0, result.output
    assert "questions/minute" in result.stderr
    results = _check_outputs(run, ["closed", "index:tiny"])
    assert results["model"] == "smollm2-135m" and results["n"] == 3
    # every sampled question's answer is in the corpus, and hybrid retrieval finds it
    assert results["conditions"]["index:tiny"]["hit_at_k"] == 1.0
    assert results["conditions"]["closed"]["hit_at_k"] is None
    assert results["comparisons"][0]["condition"] == "index:tiny"
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(manifest["model_sha256"]) == 64 and manifest["model_file"] == str(smollm2_path)
    tiny = manifest["indexes"]["index:tiny"]  # the generation the retriever opened
    assert tiny["generation"].startswith("gen-") and len(tiny["params_sha256"]) == 64
    assert tiny["embedder"] == manifest["embedder"]
    assert "embedder warm-up (" in result.stderr  # the embedder load is timed apart
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["prediction"] for r in rows)
    assert rows[1]["cached_prompt_tokens"] > 0  # the fixed instruction prefix was reused

    replayed = tmp_path / "replayed"
    again = cli("eval", "run", *common, "--out", str(replayed), "--replay", str(snap))
    assert again.exit_code == 0, again.output
    _check_outputs(replayed, ["closed", "index:tiny"])
    rows2 = [json.loads(line) for line in (replayed / "predictions.jsonl").read_text().splitlines()]
    for first, second in zip(rows, rows2, strict=True):
        assert first["sources"] == second["sources"]
        assert first["prediction"] == second["prediction"]  # greedy, same evidence


def test_search_outage_stops_with_exit_1_and_resumes(
    fake_model: FakeGenerator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import FakeRetriever

    import evals.runner
    from rag.core.errors import SearchUnavailable
    from rag.core.types import Passage

    down = FakeRetriever("web", error=SearchUnavailable("The web search engine is unreachable."))
    monkeypatch.setattr(evals.runner, "build_retriever", lambda spec, settings: down)
    run = tmp_path / "run"
    args = ["eval", "run", "-b", NQ, "-c", "closed,web", "-m", "fake:", "--out", str(run)]
    result = cli(*args)
    assert result.exit_code == 1
    assert "unreachable" in result.output and "again to resume" in result.output
    assert len((run / "predictions.jsonl").read_text().splitlines()) == 1  # q0 closed

    up = FakeRetriever("web", [Passage("Jane Austen wrote Emma.", "Emma", "https://x", "web")])
    monkeypatch.setattr(evals.runner, "build_retriever", lambda spec, settings: up)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "Resumed: 1 answers" in result.stderr
    # q0 was half answered before the outage: 4 questions answered under both conditions now
    assert "9 answers, 4 questions answered under all 2 conditions" in result.stderr
    _check_outputs(run, ["closed", "web"])
    assert len((run / "predictions.jsonl").read_text().splitlines()) == 10
