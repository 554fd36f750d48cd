"""Bad files and paths given to `rag eval run`: one clear line (exit 2), before any model time
is spent, never a traceback or click's `Aborted!`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import FakeGenerator
from typer.testing import CliRunner

from evals.benchmarks import load_benchmark
from rag.cli.app import app
from rag.core.config import load_settings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
NQ = FIXTURES / "nq_open.jsonl"
ROW = {"question": "who wrote emma", "answers": ["Jane Austen"]}
RECORD = {
    "condition": "web",
    "question": "who wrote the novel emma",
    "k": 3,
    "seconds": 0.1,
    "warnings": [],
    "passages": [{"text": "Emma is by Jane Austen.", "score": 1.0}],
}


def cli(*args: str):  # noqa: ANN201 - click Result
    return CliRunner().invoke(app, list(args))


def _no_traceback(result) -> None:  # noqa: ANN001 - click Result
    assert "Traceback" not in result.output and "Aborted!" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _truncated_gzip() -> bytes:
    return gzip.compress(NQ.read_bytes())[:-20]


# Each case: files to make (name -> content, None for a folder), options, the message.
CASES = {
    "benchmark not UTF-8": (
        {"b.jsonl": b'{"question": "caf\xe9?", "answers": ["x"]}\n'},
        ["-b", "{b.jsonl}"],
        "is not UTF-8 text (an invalid byte on line 1)",
    ),
    "csv not UTF-8": (
        {"b.csv": b"problem,answer\ncaf\xe9,x\n"},
        ["-b", "{b.csv}"],
        "is not UTF-8 text (an invalid byte on line 2)",
    ),
    "gzip cut short": (
        {"b.jsonl.gz": _truncated_gzip()},
        ["-b", "{b.jsonl.gz}"],
        "is not a readable gzip file",
    ),
    "gzip that is not gzip": (
        {"b.jsonl.gz": b"plain text, not gzip\n"},
        ["-b", "{b.jsonl.gz}"],
        "is not a readable gzip file",
    ),
    "benchmark nested too deeply": (
        {"b.json": "[" * 100_000},
        ["-b", "{b.json}"],
        "nested too deeply",
    ),
    "benchmark is a folder": ({"bench": None}, ["-b", "{bench}"], "is a folder"),
    "snapshot in a missing folder": (
        {},
        ["--snapshot", "{missing/snap.jsonl}"],
        "the folder {missing} does not exist",
    ),
    "snapshot is a folder": ({"snaps": None}, ["--snapshot", "{snaps}"], "is a folder"),
    "out is a file": ({"out.txt": "notes\n"}, ["--out", "{out.txt}"], "is a file, not a folder"),
    "out inside a file": (
        {"out.txt": "notes\n"},
        ["--out", "{out.txt/run}"],
        "is a file, not a folder: ",
    ),
    "replay is a folder": ({"snaps": None}, ["--replay", "{snaps}"], "is a folder"),
    "snapshot is a text file": (
        {"notes.txt": "my notes\nthe last line, no newline"},
        ["--snapshot", "{notes.txt}"],
        "notes.txt line 1 is not JSON",
    ),
    "snapshot is one line of text": (
        {"notes.txt": "one line, no newline"},
        ["--snapshot", "{notes.txt}"],
        "holds no snapshot record",
    ),
    "snapshot is JSON lines of something else": (
        {"other.jsonl": '{"question": "q", "answers": ["a"]}\n'},
        ["--snapshot", "{other.jsonl}"],
        "other.jsonl line 1 is not a snapshot record",
    ),
    "snapshot is the benchmark": (
        {"b.jsonl": json.dumps(ROW) + "\n"},
        ["-b", "{b.jsonl}", "--snapshot", "{b.jsonl}"],
        "is the benchmark file",
    ),
    "snapshot is the run's manifest": (
        {"run": None},
        ["--snapshot", "{run/manifest.json}"],
        "is a file the run itself writes",
    ),
    "snapshot is the run's predictions": (
        {"run": None},
        ["--snapshot", "{run/predictions.jsonl}"],
        "is a file the run itself writes",
    ),
    "out holds someone's report": (
        {"run/report.md": "# my own report\n"},
        [],
        "already holds report.md but no manifest.json",
    ),
    "replay not UTF-8": (
        {"snap.jsonl": b'{"condition": "\xff"}\n'},
        ["--replay", "{snap.jsonl}"],
        "snap.jsonl line 1 is not UTF-8",
    ),
    "replay not JSON": (
        {"snap.jsonl": "condition,question\nweb,who\n"},
        ["--replay", "{snap.jsonl}"],
        "snap.jsonl line 1 is not JSON",
    ),
    "replay with nothing but a cut-short line": (
        {"snap.jsonl": '{"condition": "web", "quest'},
        ["--replay", "{snap.jsonl}"],
        "holds no snapshot records",
    ),
    "replay record with a bad passage": (
        {
            "snap.jsonl": json.dumps(RECORD)
            + "\n"
            + json.dumps({**RECORD, "passages": [{"text": "x", "score": "high"}]})
            + "\n"
        },
        ["--replay", "{snap.jsonl}"],
        "snap.jsonl line 2 is not a snapshot record",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_run_inputs_are_one_clear_line(
    case: str, tmp_path: Path, fake_model: FakeGenerator
) -> None:
    files, options, message = CASES[case]
    for name, content in files.items():
        if content is None:
            (tmp_path / name).mkdir()
        else:
            _write(tmp_path / name, content)
    given = {"-b": str(NQ), "-c": "closed", "--out": str(tmp_path / "run")}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        given[flag] = str(tmp_path / value.strip("{}"))
    result = cli("eval", "run", "-m", "fake:", *[x for kv in given.items() for x in kv])
    assert result.exit_code == 2, result.output
    expected = message.replace("{missing}", str(tmp_path / "missing"))
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert expected in error
    _no_traceback(result)
    assert fake_model.calls == []
    for name, content in files.items():  # the files given are left exactly as they were
        if content is not None:
            data = content if isinstance(content, bytes) else content.encode()
            assert (tmp_path / name).read_bytes() == data, name


def test_rows_without_answers_are_counted_and_the_run_goes_on(
    tmp_path: Path, fake_model: FakeGenerator
) -> None:
    bench = _write(
        tmp_path / "b.jsonl",
        "".join(
            json.dumps(r) + "\n"
            for r in [ROW, {"question": "no answer", "answers": []}, {"text": "no question"}]
        ),
    )
    result = cli("eval", "run", "-b", str(bench), "-m", "fake:", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert f"Warning: 2 of 3 rows of {bench} were skipped" in result.stderr
    assert "no question or no gold answer" in result.stderr
    assert len(fake_model.calls) == 1


def test_repeated_ids_stay_distinct_after_deduplication(tmp_path: Path) -> None:
    rows = [{"id": i, **ROW} for i in ("a", "a", "a#1", "a#1")]
    bench = _write(tmp_path / "b.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    ids = [q.id for q in load_benchmark(str(bench), load_settings()).questions]
    # two questions under one id would be one prediction, and a resume would skip the other
    assert len(set(ids)) == 4 and ids[:3] == ["a", "a#2", "a#1"]


def test_a_corrupt_parquet_file_is_a_usage_error(tmp_path: Path, fake_model: FakeGenerator) -> None:
    pytest.importorskip("pyarrow")
    bench = _write(tmp_path / "b.parquet", b"PAR1 not really parquet")
    result = cli("eval", "run", "-b", str(bench), "-m", "fake:", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "is not a readable parquet file" in result.output


def test_eval_max_tokens_has_the_same_bounds_as_everywhere(fake_model) -> None:
    from typer.testing import CliRunner

    from rag.cli.app import app

    result = CliRunner().invoke(
        app,
        ["eval", "run", "--benchmark", "nq_open", "--model", "fake:", "--max-tokens", "99999999"],
    )
    assert result.exit_code == 2 and "max_tokens must be between 1 and 32768" in result.stderr


def test_a_gzip_bomb_benchmark_is_refused(
    tmp_path: Path, fake_model: FakeGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `gzip.decompress` inflated the whole file in memory (1 MB of zeros is 1 GB;
    a 10 MB bomb was out of memory)."""
    import zlib

    from evals import benchmarks

    monkeypatch.setattr(benchmarks, "MAX_DECOMPRESSED", 1024 * 1024)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(b"\0" * (1 << 20)) for _ in range(8)) + packer.flush()
    path = _write(tmp_path / "b.jsonl.gz", bomb)
    result = cli("eval", "run", "-m", "fake:", "-b", str(path), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "decompresses to more than 1 MiB" in result.stderr
    _no_traceback(result)
    assert fake_model.calls == []
    _write(tmp_path / "ok.jsonl.gz", gzip.compress(NQ.read_bytes()))
    assert load_benchmark(str(tmp_path / "ok.jsonl.gz"), load_settings()).questions
