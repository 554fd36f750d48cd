"""Hostile benchmark and run files met by `rag eval run` / `rag eval report` in a subprocess:
one line and exit 2 (or, for data, the run going on), never a traceback or a hang.

- a lone surrogate (a JSON escape such as `\\ud800`) in a row's question, answers or id is
  refused naming the file and line: they are what is asked and how it is scored, and no
  UTF-8 writer takes them (before: a UnicodeEncodeError traceback from predictions.jsonl);
- one in a gold passage is data: kept as U+FFFD (before: a traceback from the tokenizer
  under the `oracle` condition);
- an integer past Python's 4300-digit limit, as a JSON number or inside an answers string
  `"[999...]"` (before: a ValueError traceback);
- predictions.jsonl or manifest.json replaced by a FIFO (before: `rag eval report` and a
  resumed run blocked for ever on the open).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_environ
from native import fail_if_crashed
from throwaway_plugins import GENERATOR, plugin_package

REPO = Path(__file__).resolve().parents[1]
#: A generator `fixed:NAME` that answers "Madrid" and, like llama.cpp's tokenizer, encodes
#: its prompt as UTF-8 to count it (so a lone surrogate in a prompt fails as it would there).
PLUGIN = (
    'ANSWER = "Madrid"\n'
    + GENERATOR
    + """

class Encoding(FixedGenerator):
    def count_prompt_tokens(self, messages):
        return sum(len(m.content.encode("utf-8").split()) + 4 for m in messages)


def register(registry):
    registry.register(
        registry.Part("generator", "fixed", lambda argument, settings, options: Encoding(argument))
    )
"""
)
GOOD = {"question": "What is the capital of Spain?", "answers": ["Madrid"]}


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return plugin_package(tmp_path / "plugin", "fixed", PLUGIN)


def rag(home: Path, plugin: Path, *args: str) -> subprocess.CompletedProcess:
    """`rag ARGS` in a child process, with the `fixed:` generator plugin. A hang fails on
    the timeout."""
    env = child_environ()
    env.update(RAG_HOME=str(home), PYTHONPATH=os.pathsep.join(map(str, (plugin, REPO))))
    done = subprocess.run(
        [sys.executable, "-m", "rag.cli.launch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    fail_if_crashed(done.returncode, "rag " + " ".join(args[:2]), done.stderr)
    return done


def run(home: Path, plugin: Path, bench: Path, out: Path, conditions: str = "closed"):  # noqa: ANN201
    return rag(
        home, plugin, "eval", "run", "-b", str(bench), "-c", conditions, "-m", "fixed:x",
        "--out", str(out),
    )  # fmt: skip


def one_error(done: subprocess.CompletedProcess) -> str:
    """The one `Error:` line of a failed command (exit 2), with no traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    return error


SPAIN = '"question": "What is the capital of Spain?"'
SURROGATES = {
    "answer": ("{" + SPAIN + ', "answers": ["Mad\\udc80rid"]}', "an answer"),
    "id": ('{"id": "x\\ud800", ' + SPAIN + ', "answers": ["Madrid"]}', "an id"),
    "question": ('{"question": "capital \\ud800 of Spain?", "answers": ["Madrid"]}', "a question"),
}


@pytest.mark.parametrize("field", list(SURROGATES))
def test_a_lone_surrogate_in_a_question_answer_or_id_is_refused_naming_the_line(
    rag_home: Path, plugin: Path, tmp_path: Path, field: str
) -> None:
    line, what = SURROGATES[field]
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    out = tmp_path / "run"
    error = one_error(run(rag_home, plugin, bench, out))
    assert f"{bench} line 2 has {what} that is not valid text (a lone surrogate" in error
    assert not (out / "predictions.jsonl").exists()  # refused before any answer


def test_a_lone_surrogate_in_a_gold_passage_is_kept_as_a_replacement_character(
    rag_home: Path, plugin: Path, tmp_path: Path
) -> None:
    bench = tmp_path / "b.jsonl"
    row = (
        '{"question": "What is the capital of Spain?", "answers": ["Madrid"], "gold_passages": '
        '[{"title": "T\\ud800", "text": "Madrid \\udfff is the capital."}]}\n'
    )
    bench.write_text(row)
    out = tmp_path / "run"
    done = run(rag_home, plugin, bench, out, "closed,oracle")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    [oracle] = [r for r in rows if r["condition"] == "oracle"]
    assert oracle["sources"][0]["title"] == "T\ufffd"
    assert "Madrid \ufffd is the capital." in oracle["sources"][0]["text"]


BIG = "9" * 5000
BIG_NUMBERS = {
    "a JSON number": '{"question": "What is big?", "answers": [' + BIG + "]}",
    "an answers string": json.dumps({"question": "What is big?", "answers": f"[{BIG}]"}),
}


@pytest.mark.parametrize("case", list(BIG_NUMBERS))
def test_a_number_past_the_digit_limit_is_one_line(
    rag_home: Path, plugin: Path, tmp_path: Path, case: str
) -> None:
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps(GOOD) + "\n" + BIG_NUMBERS[case] + "\n")
    error = one_error(run(rag_home, plugin, bench, tmp_path / "run"))
    assert f"{bench} line 2 " in error
    assert "a number too long to read (over 4300 digits)" in error


def test_a_json_benchmark_with_a_huge_number_is_one_line(
    rag_home: Path, plugin: Path, tmp_path: Path
) -> None:
    bench = tmp_path / "b.json"
    bench.write_text('[{"question": "What is big?", "answers": [' + BIG + "]}]")
    error = one_error(run(rag_home, plugin, bench, tmp_path / "run"))
    assert f"{bench} holds a number too long to read" in error


@pytest.mark.parametrize("name", ["predictions.jsonl", "manifest.json"])
def test_a_run_file_replaced_by_a_fifo_is_one_line_not_a_hang(
    rag_home: Path, plugin: Path, tmp_path: Path, name: str
) -> None:
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps(GOOD) + "\n")
    out = tmp_path / "run"
    assert run(rag_home, plugin, bench, out).returncode == 0
    (out / name).unlink()
    os.mkfifo(out / name)
    report = rag(rag_home, plugin, "eval", "report", str(out))
    for done in (report, run(rag_home, plugin, bench, out)):
        error = one_error(done)
        assert f"{out / name} is a FIFO (named pipe), not a file pocketrag reads" in error
    assert (out / name).is_fifo()  # left as it was
