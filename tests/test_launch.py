"""The `rag` entry point: the model starts loading before the CLI is imported, and nothing
about a command's outcome (its output, its message, its exit code) changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli.launch import model_flag
from rag.core.config import load_settings
from rag.generators import load_generator, prefetch

REPO = Path(__file__).resolve().parents[1]


def launch(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`rag ARGS` through the installed entry point's function, in a fresh process."""
    code = "import sys; from rag.cli.launch import main; sys.argv = ['rag', *sys.argv[1:]]; main()"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=300,
    )


def test_model_flag_is_read_as_click_reads_it() -> None:
    assert model_flag(["ask", "q", "--model", "smollm2-135m"]) == "smollm2-135m"
    assert model_flag(["ask", "--model=gemma3-270m", "q"]) == "gemma3-270m"
    assert model_flag(["ask", "q"]) is None
    assert model_flag(["ask", "--", "--model", "x"]) is None  # a question, not an option
    assert model_flag(["ask", "q", "--model"]) is None
    assert model_flag(["ask", "q", "-m", "smollm2-135m"]) == "smollm2-135m"
    assert model_flag(["ask", "q", "-mgemma3-270m"]) == "gemma3-270m"
    assert model_flag(["ask", "--model", "a", "q", "-m", "b"]) == "b"  # click: the last wins


def test_prefetch_never_downloads() -> None:
    assert prefetch("phi-3-mini") is None  # not in this machine's cache: left to the command
    assert prefetch("no-such-alias") is None  # the command reports the bad name


def test_a_prefetched_model_is_loaded_once() -> None:
    thread = prefetch("smollm2-135m")
    assert thread is not None
    first = load_generator(load_settings(model="smollm2-135m"))  # waits for the prefetch
    thread.join()
    assert load_generator(load_settings(model="smollm2-135m")) is first


@pytest.mark.slow
def test_closed_book_answer_through_the_entry_point() -> None:
    result = launch("ask", "What is the capital of France?", "--model", "smollm2-135m")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "prompt tokens" in result.stderr and "Traceback" not in result.stderr


def test_errors_keep_their_message_and_exit_code() -> None:
    empty = launch("ask", "   ", "--model", "smollm2-135m")  # the prefetch is still loading
    assert empty.returncode == 2 and "question is empty" in empty.stderr.lower()
    missing = launch("ask", "hi", "--model", "/nowhere/model.gguf")
    assert missing.returncode != 0 and "/nowhere/model.gguf" in missing.stderr
    for result in (empty, missing):
        assert "Traceback" not in result.stderr
    usage = launch("ask")  # click's own usage error
    assert usage.returncode == 2 and "Missing argument" in usage.stderr


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_an_output_that_cannot_be_written_is_one_line_not_a_traceback() -> None:
    code = "import sys; from rag.cli.launch import main; sys.argv = ['rag', *sys.argv[1:]]; main()"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    ask = [
        sys.executable,
        "-c",
        code,
        "ask",
        "What is the capital of France?",
        "-m",
        "smollm2-135m",
    ]
    with open("/dev/full", "w") as full:
        done = subprocess.run(ask, stdout=full, stderr=subprocess.PIPE, text=True, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Cannot write the output: No space left on device" in done.stderr
    closed = subprocess.run(ask, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env, pass_fds=(), preexec_fn=lambda: os.close(1))  # fmt: skip
    assert closed.returncode == 0 and "Traceback" not in closed.stderr
