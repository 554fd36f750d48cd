"""One `rag eval run` at a time per run folder: a second one refuses at once (exit 1) instead
of answering the same questions again and interleaving duplicate lines."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import FakeGenerator
from test_eval_runner import FactRetriever, _config, reader
from typer.testing import CliRunner

from evals.conditions import parse_conditions
from evals.runner import LOCK, RunBusy, read_predictions, run_eval
from rag.cli.app import app
from rag.core.config import load_settings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
NQ = str(FIXTURES / "nq_open.jsonl")


def cli(*args: str):  # noqa: ANN201 - click Result
    return CliRunner().invoke(app, list(args))


def test_a_second_run_into_the_same_folder_refuses_while_the_first_answers(
    tmp_path: Path, fake_model: FakeGenerator
) -> None:
    settings = load_settings(model="fake:")
    config = _config(tmp_path, conditions=parse_conditions("closed"))
    answering, go_on = threading.Event(), threading.Event()

    def slow(messages) -> str:
        answering.set()
        assert go_on.wait(timeout=60), "the test never let the first run finish"
        return reader(messages)

    first = threading.Thread(
        target=run_eval, args=(config, settings), kwargs={"generator": FakeGenerator(reply=slow)}
    )
    first.start()
    try:
        assert answering.wait(timeout=60)  # the first run holds the folder and is answering
        result = cli("eval", "run", "-b", NQ, "-m", "fake:", "--out", str(config.out_dir))
        assert result.exit_code == 1, result.output
        [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert "Another `rag eval run` is writing into" in error and str(config.out_dir) in error
        assert "The run stopped" not in result.output  # the other run goes on
        assert fake_model.calls == []
    finally:
        go_on.set()
        first.join(timeout=60)
    rows = read_predictions(config.out_dir)
    assert len(rows) == 5 and len({r["qid"] for r in rows}) == 5


def test_the_lock_of_another_process_refuses_and_does_not_confuse_the_report(
    tmp_path: Path, fake_model: FakeGenerator
) -> None:
    run = tmp_path / "run"
    args = ["eval", "run", "-b", NQ, "-c", "closed", "-m", "fake:", "--out", str(run)]
    assert cli(*args).exit_code == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from filelock import FileLock; lock = FileLock(sys.argv[1]); "
            "lock.acquire(); print('held', flush=True); sys.stdin.read()",
            str(run / LOCK),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy, match=f"writing into {run}"):
            run_eval(
                _config(tmp_path), load_settings(model="fake:"), retriever_factory=FactRetriever
            )
        refused = cli(*args)
        assert refused.exit_code == 1 and "Another `rag eval run`" in refused.stderr
        report = cli("eval", "report", str(run), "--json")  # readers are never blocked
        assert report.exit_code == 0, report.output
        assert json.loads(report.stdout)["conditions"]["closed"]["n"] == 5
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert cli(*args).exit_code == 0  # the lock died with its holder
