"""`rag ask` and friends through the CLI: JSON shape, exit codes, no tracebacks."""

import json
from pathlib import Path

import pytest
from conftest import FakeGenerator, child_environ
from native import run_rag
from typer.testing import CliRunner

from rag.cli.app import app

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ask", "search", "models"):
        assert command in result.stdout


def test_ask_json_with_fake_model(fake_model: FakeGenerator) -> None:
    result = runner.invoke(app, ["ask", "Who wrote Emma?", "--model", "fake:", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["answer"] == "Jane Austen wrote it [1]."
    assert payload["sources"] == [] and payload["warnings"] == []


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question_exits_2(question: str, fake_model: FakeGenerator) -> None:
    result = runner.invoke(app, ["ask", question, "--model", "fake:"])
    assert result.exit_code == 2
    assert "question is empty" in result.output
    assert fake_model.calls == []


def test_unknown_model_exits_2() -> None:
    result = runner.invoke(app, ["ask", "q", "--model", "no-such-model"])
    assert result.exit_code == 2 and "Unknown model" in result.output


def test_search_needs_a_source() -> None:
    result = runner.invoke(app, ["search", "q"])
    assert result.exit_code == 2 and "--index" in result.output


def _env(tmp_path: Path) -> dict[str, str]:
    env = child_environ()
    env["RAG_HOME"] = str(tmp_path / "home")
    return env


def test_ask_streams_a_real_answer_with_smollm2(tmp_path: Path) -> None:
    """End to end in a fresh process: the bundled model really generates tokens."""
    result = run_rag(
        [
            "ask",
            "Who wrote Pride and Prejudice?",
            "--model",
            "smollm2-135m",
            "--max-tokens",
            "32",
            "--json",
        ],
        env=_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {
        "question", "answer", "model", "sources", "dropped", "timings", "warnings", "web_engine"
    }  # fmt: skip
    assert payload["model"] == "smollm2-135m"
    assert payload["answer"].strip()
    timings = payload["timings"]
    for key in (
        "retrieval_s",
        "prompt_tokens",
        "ttft_s",
        "completion_tokens",
        "tokens_per_s",
        "total_s",
    ):
        assert key in timings
    assert 1 <= timings["completion_tokens"] <= 32 and timings["prompt_tokens"] > 10
    assert timings["tokens_per_s"] > 0


def test_ask_plain_output_streams_to_stdout_and_stats_to_stderr(tmp_path: Path) -> None:
    env = _env(tmp_path) | {"RAG_MODEL": "smollm2-135m", "RAG_MAX_TOKENS": "16"}
    result = run_rag(["ask", "Name a colour."], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "smollm2-135m:" in result.stderr and "tokens at" in result.stderr


@pytest.mark.parametrize("command", ["ask", "search"])
def test_a_question_that_is_not_utf8_is_one_line_and_exit_2(command: str, fake_model) -> None:
    question = b"Who wrote \xff?".decode("utf-8", "surrogateescape")  # as argv delivers it
    result = runner.invoke(app, [command, question, "--model" if command == "ask" else "--web",
                                 *(["fake:"] if command == "ask" else [])])  # fmt: skip
    assert result.exit_code == 2
    assert "not valid UTF-8 text (byte b'\\xff' at character 11)" in result.stderr
    assert fake_model.calls == []


def test_empty_search_query_suggests_search_not_ask() -> None:
    result = runner.invoke(app, ["search", "", "--web"])
    assert result.exit_code == 2
    assert "query is empty" in result.stderr and "rag search" in result.stderr
    assert "rag ask" not in result.stderr


def test_terminal_escapes_in_documents_are_shown_not_obeyed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, register_part
) -> None:
    """Before: a document (or a web page's title) holding ESC sequences reached the terminal
    raw through `rag search` and `rag ask`: it could clear the screen, retitle the window or
    plant a link. Also `:name:` is no longer turned into an emoji."""
    from conftest import returning
    from index_fixtures import FakeEmbedder

    register_part("embedder", "fake", returning(FakeEmbedder("fake")))
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "evil :fire:.txt").write_text("evil \x1b[2J\x1b]0;pwned\x07 lighthouse text\n")
    assert runner.invoke(app, ["index", str(docs), "--name", "n"]).exit_code == 0
    found = runner.invoke(app, ["search", "evil lighthouse", "--index", "n"])
    assert found.exit_code == 0, found.output
    assert "\x1b" not in found.stdout and "\x07" not in found.stdout
    assert "\\x1b[2J" in found.stdout and "evil :fire:.txt" in found.stdout
    fake = FakeGenerator(reply=lambda messages: "It says \x1b[2J [1].")
    register_part("generator", "fake", returning(fake), argument="ANY")
    asked = runner.invoke(app, ["ask", "What is evil?", "--index", "n", "--model", "fake:"])
    assert asked.exit_code == 0, asked.output
    assert "\x1b" not in asked.stdout and "\\x1b[2J" in asked.stdout
