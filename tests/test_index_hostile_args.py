"""What a user types for `rag index`, `rag search --index` and `rag indexes`: a `~user` that
does not exist, an empty path, control characters in a path, a `--wait` that is not a
number. Each is one line on stderr (exit 2), never a traceback or a usage block; and
what `rag indexes info` prints of a folder's name cannot drive the terminal.

Each test runs `rag` in a real process (tests/cli_process.py), as a user meets it."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_process import one_error_line, rag
from index_fixtures import docs, settings  # noqa: F401 - fixtures

NO_USER = "~pocketrag-no-such-user"


@pytest.mark.parametrize(
    "argv",
    [
        ("index", f"{NO_USER}/docs", "--name", "notes"),
        ("index", "{docs}", "--name", f"{NO_USER}/idx"),
        ("search", "lake", "--index", f"{NO_USER}/idx"),
        ("indexes", "info", f"{NO_USER}/idx"),
        ("indexes", "remove", f"{NO_USER}/idx"),
    ],
)
def test_a_tilde_of_a_user_that_does_not_exist_is_one_usage_line(
    docs: Path, argv: tuple[str, ...]
) -> None:
    """Before: RuntimeError: Could not determine home directory (a traceback, exit 1)."""
    argv = tuple(a.replace("{docs}", str(docs)) for a in argv)
    line = one_error_line(rag(*argv), 2)
    assert NO_USER in line and "no user" in line, line
    assert not settings().indexes_dir.exists()


def test_a_rag_home_under_a_user_that_does_not_exist_is_one_usage_line(docs: Path) -> None:
    line = one_error_line(rag("index", str(docs), "--name", "notes", RAG_HOME=f"{NO_USER}/home"), 2)
    assert "RAG_HOME" in line and NO_USER in line, line


def test_an_empty_path_is_a_usage_error_not_the_current_folder(docs: Path) -> None:
    """Before: `rag index "" --name x` indexed the folder it was run from."""
    line = one_error_line(rag("index", "", "--name", "x", cwd=str(docs)), 2)
    assert "empty" in line, line
    assert not (settings().indexes_dir / "x").exists()


def test_a_path_with_a_newline_is_named_on_one_line(tmp_path: Path) -> None:
    """Before: the error went on in a second line where the path's newline was."""
    line = one_error_line(rag("index", f"{tmp_path}/a\nb.txt", "--name", "x"), 2)
    assert f"{tmp_path}/a\\nb.txt" in line, line


@pytest.mark.parametrize("wait", ["5s", "0x10", "", "ten"])
def test_a_wait_that_is_not_a_number_is_one_usage_line(docs: Path, wait: str) -> None:
    """Before: click's own parse error, a four-line usage block."""
    line = one_error_line(rag("index", str(docs), "--name", "notes", "--wait", wait), 2)
    assert line.startswith("Error: --wait: ") and repr(wait) in line, line
    assert not (settings().indexes_dir / "notes").exists()


def test_indexes_info_shows_a_folder_name_without_its_control_characters(
    tmp_path: Path,
) -> None:
    """Before: the roots were printed raw: a folder named with an escape sequence and a
    newline retitled and cleared the terminal."""
    root = tmp_path / "r\x1b]0;PWNED\x07\x1b[2J\nx"
    root.mkdir()
    (root / "a.txt").write_text("some text about lakes\n")
    assert rag("index", str(root), "--name", "esc").returncode == 0
    done = rag("indexes", "info", "esc")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    (roots,) = [line for line in done.stdout.splitlines() if line.startswith("roots:")]
    assert roots.endswith("r\\x1b]0;PWNED\\x07\\x1b[2J\\nx"), roots
    row = json.loads(rag("indexes", "info", "esc", "--json").stdout)
    assert row["roots"] == [str(root)]  # the JSON keeps the name as it is
