"""A damaged run folder: reports never rewrite their inputs, a bad line is named with its
number, and only a last line cut short by an interrupted write is ever dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeGenerator
from test_eval_report import _line, _write_run
from test_eval_runner import FactRetriever, _config, reader
from typer.testing import CliRunner

from evals.runner import load_predictions, read_predictions, run_eval
from rag.cli.app import app
from rag.core.config import load_settings
from rag.core.errors import UsageError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
NQ = str(FIXTURES / "nq_open.jsonl")


def cli(*args: str):  # noqa: ANN201 - click Result
    return CliRunner().invoke(app, list(args))


def _no_traceback(result) -> None:  # noqa: ANN001 - click Result
    """The user sees one `Error:` line, never a Python traceback or click's `Aborted!`."""
    assert "Traceback" not in result.output and "Aborted!" not in result.output
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)


def _run(tmp_path: Path) -> Path:
    """A report-ready run folder with two answers per condition."""
    rows = [
        _line("q0", "closed", "London", ["London"]),
        _line("q1", "closed", "nobody", ["Jane Austen"]),
    ]
    run = tmp_path / "run"
    _write_run(run, rows, ["closed"])
    return run


def _snapshot(run: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in run.iterdir()
        if p.name in ("manifest.json", "predictions.jsonl")
    }


def test_report_names_a_damaged_line_and_never_rewrites_its_inputs(tmp_path: Path) -> None:
    run = _run(tmp_path)
    path = run / "predictions.jsonl"
    good = path.read_text().splitlines()
    path.write_text(good[0] + "\n" + '{"qid": "q1", "condi\n' + good[1] + "\n")
    before = _snapshot(run)

    result = cli("eval", "report", str(run))

    assert result.exit_code == 2, result.output
    assert f"{path} line 2 is not JSON" in result.output
    assert "Fix or delete that line" in result.output
    _no_traceback(result)
    assert _snapshot(run) == before  # the damaged line is still there for the user to see
    assert not (run / "results.json").exists()


def test_report_does_not_count_a_cut_short_last_line_and_says_which(tmp_path: Path) -> None:
    run = _run(tmp_path)
    path = run / "predictions.jsonl"
    with path.open("a") as fh:
        fh.write('{"qid": "q2", "condition": "clo')  # a run killed mid-write
    before = _snapshot(run)

    result = cli("eval", "report", str(run), "--json")

    assert result.exit_code == 0, result.output
    assert f"{path} line 3 was cut short" in result.stderr and "not counted" in result.stderr
    assert _snapshot(run) == before
    results = json.loads(result.stdout)
    assert results["conditions"]["closed"]["n"] == 2
    assert any("line 3 was cut short" in note for note in results["notes"])
    assert "line 3 was cut short" in (run / "report.md").read_text()


@pytest.fixture
def settings(fake_model):
    return load_settings(model="fake:")


def _factory(spec: str) -> FactRetriever:
    return FactRetriever("index:facts")


def test_resume_refuses_a_damaged_line_in_the_middle_and_keeps_it(tmp_path, settings) -> None:
    config = _config(tmp_path, n=2)
    run_eval(config, settings, generator=FakeGenerator(reply=reader), retriever_factory=_factory)
    path = config.out_dir / "predictions.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:40] + "\n"  # damaged, but not by an interrupted write: it has its newline
    path.write_text("".join(lines))
    before = path.read_bytes()
    generator = FakeGenerator(reply=reader)

    with pytest.raises(UsageError, match=r"predictions.jsonl line 2 is not JSON"):
        run_eval(config, settings, generator=generator, retriever_factory=_factory)

    assert path.read_bytes() == before and generator.calls == []


def test_resume_drops_only_a_cut_short_last_line_and_says_so(tmp_path, settings) -> None:
    config = _config(tmp_path, n=2)
    run_eval(config, settings, generator=FakeGenerator(reply=reader), retriever_factory=_factory)
    path = config.out_dir / "predictions.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][:50])  # line 4 was cut short mid-write
    warned: list[str] = []

    outcome = run_eval(
        config,
        settings,
        generator=FakeGenerator(reply=reader),
        retriever_factory=_factory,
        warn=warned.append,
    )

    assert outcome.resumed == 3 and outcome.answered == 1  # only the cut-short answer again
    assert warned == outcome.warnings and len(warned) == 1
    assert f"{path} line 4 was cut short" in warned[0] and "asked again" in warned[0]
    assert path.read_text().splitlines(keepends=True)[:3] == lines[:3]
    assert len(read_predictions(config.out_dir)) == 4


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path, settings) -> None:
    config = _config(tmp_path, n=2)
    run_eval(config, settings, generator=FakeGenerator(reply=reader), retriever_factory=_factory)
    path = config.out_dir / "predictions.jsonl"
    path.write_text(path.read_text().rstrip("\n"))
    assert load_predictions(config.out_dir).cut_short is None
    again = run_eval(
        config, settings, generator=FakeGenerator(reply=reader), retriever_factory=_factory
    )
    assert again.answered == 0 and again.warnings == []
    assert path.read_text().endswith("}\n") and len(read_predictions(config.out_dir)) == 4


def test_resume_with_a_snapshot_cut_short_does_not_glue_the_next_record(tmp_path, settings):
    snap = tmp_path / "snapshot.jsonl"
    config = _config(tmp_path, n=2, snapshot=snap)
    run_eval(config, settings, generator=FakeGenerator(reply=reader), retriever_factory=_factory)
    path = config.out_dir / "predictions.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])["qid"]
    path.write_text("".join(line for line in lines if json.loads(line)["qid"] != last))
    snap.write_text(snap.read_text().splitlines(keepends=True)[0] + '{"condition": "index:f')

    resumed = run_eval(
        config, settings, generator=FakeGenerator(reply=reader), retriever_factory=_factory
    )

    assert resumed.answered == 2 and any("snapshot.jsonl line 2" in w for w in resumed.warnings)
    replay = _config(tmp_path, n=2, replay=snap)
    replay.out_dir = tmp_path / "replayed"
    replayed = run_eval(replay, settings, generator=FakeGenerator(reply=reader))
    assert replayed.answered == 4


def test_names_with_dollar_signs_are_text_not_tex(tmp_path: Path) -> None:
    rows = [_line("q0", "$\\frac{$", "London", ["London"])]
    run = tmp_path / "run"
    _write_run(run, rows, ["$\\frac{$"])
    result = cli("eval", "report", str(run), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["conditions"]["$\\frac{$"]["accuracy"] == 1.0
    assert (run / "report.png").read_bytes()[:4] == b"\x89PNG"


# --- bad input: one clear line, never a traceback ------------------------------------------

BAD_ROWS = {
    "no qid": ('{"condition": "closed", "prediction": "x"}\n', "line 3 has no `qid`"),
    "no condition": ('{"qid": "q2", "prediction": "x"}\n', "line 3 has no `condition`"),
    "not an object": ('["q2", "closed"]\n', "line 3 is not a JSON object"),
    "invalid UTF-8": (b'{"qid": "q2\xff"}\n', "line 3 is not UTF-8"),
    "nested too deeply": ("[" * 100_000 + "\n", "line 3 is not JSON"),
    "latency text": (
        json.dumps(_line("q2", "closed", "x", ["y"], latency_s="slow")) + "\n",
        "line 3 has no `latency_s` number",
    ),
    "sources not objects": (
        json.dumps(_line("q2", "closed", "x", ["y"], sources=["a"])) + "\n",
        "line 3 has a `sources` value",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_report_on_a_bad_predictions_row_is_a_usage_error(case: str, tmp_path: Path) -> None:
    run = _run(tmp_path)
    line, message = BAD_ROWS[case]
    with (run / "predictions.jsonl").open("ab") as fh:
        fh.write(line if isinstance(line, bytes) else line.encode())
    before = _snapshot(run)
    result = cli("eval", "report", str(run))
    assert result.exit_code == 2, result.output
    assert message in result.output and "predictions.jsonl" in result.output
    _no_traceback(result)
    assert _snapshot(run) == before


BAD_MANIFESTS = {
    "empty": (b"", "manifest.json is empty"),
    "invalid JSON": (b'{"benchmark": ', "manifest.json is not JSON"),
    "invalid UTF-8": (b'{"benchmark": "\xff"}', "manifest.json is not UTF-8"),
    "a list": (b"[1, 2]", "manifest.json is not a JSON object"),
    "no question_ids": (
        json.dumps({"benchmark": "b", "model": "m", "conditions": ["closed"]}).encode(),
        "manifest.json has no `question_ids`",
    ),
    "conditions not strings": (
        json.dumps(
            {"benchmark": "b", "model": "m", "conditions": [["closed"]], "question_ids": []}
        ).encode(),
        "manifest.json has a `conditions` list that is not all strings",
    ),
    "prompts not an object": (
        json.dumps(
            {
                "benchmark": "b",
                "model": "m",
                "conditions": ["closed"],
                "question_ids": ["q0"],
                "prompts": ["x"],
            }
        ).encode(),
        "manifest.json has a `prompts` value",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_a_damaged_manifest_is_named_by_report_and_resume(
    case: str, tmp_path: Path, fake_model: FakeGenerator
) -> None:
    run = _run(tmp_path)
    data, message = BAD_MANIFESTS[case]
    (run / "manifest.json").write_bytes(data)
    before = _snapshot(run)
    result = cli("eval", "report", str(run))
    assert result.exit_code == 2, result.output
    assert message in result.output and "new --out folder" in result.output
    _no_traceback(result)
    resumed = cli("eval", "run", "-b", NQ, "-c", "closed", "-m", "fake:", "--out", str(run))
    assert resumed.exit_code == 2 and message in resumed.output, resumed.output
    _no_traceback(resumed)
    assert _snapshot(run) == before and fake_model.calls == []
