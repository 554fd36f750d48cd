"""`rag eval` on a real full disk (a tiny tmpfs): a failed write is one clear line (exit 1),
never a traceback, and leaves no half-written state file or answer line behind, so the run
folder can still be reported and resumed once there is space again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import FakeGenerator
from small_disk import fill, small_disk
from typer.testing import CliRunner

from evals import benchmarks
from evals.benchmarks import KNOWN, cached_path, fetch_known
from evals.manifest import file_sha256
from rag.cli.app import app
from rag.core.config import load_settings
from rag.core.errors import StorageError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
NQ = str(FIXTURES / "nq_open.jsonl")
LONG = "x" * 20_000  # one "token": an answer line bigger than the page a tmpfs has left


def cli(*args: str):  # noqa: ANN201 - click Result
    return CliRunner().invoke(app, list(args))


def _clean_failure(result, file: str) -> None:  # noqa: ANN001 - click Result
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Aborted!" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert file in error and "No space left on device" in error
    assert "Free some disk space" in error


def _run_args(run: Path) -> list[str]:
    return ["eval", "run", "-b", NQ, "-c", "closed", "-m", "fake:", "--out", str(run)]


def test_a_full_disk_never_leaves_an_empty_manifest(
    tmp_path: Path, fake_model: FakeGenerator
) -> None:
    with small_disk(tmp_path / "disk", 256) as disk:
        run = disk / "run"
        fill(disk)
        result = cli(*_run_args(run))
        _clean_failure(result, "manifest.json")
        assert not (run / "manifest.json").exists()  # no manifest rather than half of one
        assert fake_model.calls == []

        (disk / ".filler").unlink()
        again = cli(*_run_args(run))
        assert again.exit_code == 0, again.output
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["question_ids"] == ["q0", "q1", "q2", "q3", "q4"]


def test_a_disk_that_fills_while_answering_stops_cleanly_and_resumes(
    tmp_path: Path, fake_model: FakeGenerator
) -> None:
    with small_disk(tmp_path / "disk", 256) as disk:
        run = disk / "run"

        def fills_the_disk(messages) -> str:
            if len(fake_model.calls) == 3:  # the third answer does not fit
                fill(disk)
                return LONG
            return "Jane Austen"

        fake_model.reply = fills_the_disk
        result = cli(*_run_args(run))
        _clean_failure(result, "predictions.jsonl")
        assert "again to resume" in result.stderr
        predictions = (run / "predictions.jsonl").read_text()
        assert predictions.endswith("\n") and len(predictions.splitlines()) == 2  # no half line
        manifest = (run / "manifest.json").read_bytes()
        assert json.loads(manifest)["n"] == 5

        # still full: the report cannot write, says so, and touches nothing it read
        report = cli("eval", "report", str(run))
        _clean_failure(report, "results.json")
        # and a resume cannot rewrite the manifest, which stays whole
        resumed = cli(*_run_args(run))
        _clean_failure(resumed, "manifest.json")
        assert (run / "manifest.json").read_bytes() == manifest
        assert (run / "predictions.jsonl").read_text() == predictions

        (disk / ".filler").unlink()
        fake_model.reply = lambda messages: "Jane Austen"
        report = cli("eval", "report", str(run), "--json")
        assert report.exit_code == 0, report.output
        assert json.loads(report.stdout)["conditions"]["closed"]["n"] == 2
        resumed = cli(*_run_args(run))
        assert resumed.exit_code == 0, resumed.output
        assert "Resumed: 2 answers" in resumed.stderr
        rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
        assert [r["qid"] for r in rows] == ["q0", "q1", "q2", "q3", "q4"]


def test_a_full_disk_while_caching_a_benchmark_leaves_no_truncated_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    download = tmp_path / "hf-cache-file.parquet"
    download.write_bytes(b"PAR1" + b"\0" * 300_000)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **kw: str(download))
    settings = load_settings()
    target = cached_path(KNOWN["triviaqa"], settings)
    with small_disk(target.parent, 64):
        with pytest.raises(StorageError, match="No space left on device"):
            fetch_known(KNOWN["triviaqa"], settings)
        # a truncated copy would be read as the benchmark by every later run
        assert list(target.parent.iterdir()) == []
    assert fetch_known(KNOWN["triviaqa"], settings) == target
    assert target.read_bytes() == download.read_bytes()


def test_an_interrupted_download_leaves_nothing_in_the_cache(monkeypatch) -> None:
    import httpx

    class Response:
        def __enter__(self):  # noqa: ANN204 - a stand-in for httpx's streamed response
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def raise_for_status(self) -> None:
            pass

        def iter_bytes(self):  # noqa: ANN202
            yield b"problem,answer\n"
            raise httpx.ReadError("connection reset")

    monkeypatch.setattr(httpx, "stream", lambda *a, **kw: Response())
    settings = load_settings()
    with pytest.raises(benchmarks.UsageError, match="could not be downloaded"):
        fetch_known(KNOWN["simpleqa"], settings)
    assert list(cached_path(KNOWN["simpleqa"], settings).parent.iterdir()) == []


def test_an_empty_hash_cache_entry_is_hashed_again(tmp_path: Path) -> None:
    settings = load_settings()
    model = tmp_path / "model.gguf"
    model.write_bytes(b"weights" * 1000)
    expected = hashlib.sha256(model.read_bytes()).hexdigest()
    assert file_sha256(model, settings) == expected
    [entry] = (settings.cache_dir / "file-hashes").iterdir()
    entry.write_text("")  # what a full disk left with the old, non-atomic write
    assert file_sha256(model, settings) == expected
    assert entry.read_text() == expected
