"""`rag index` on hostile input, through the real CLI: file names that are not UTF-8 or hold
control characters, special files named on the command line, read-only or foreign index
folders, unreachable paths. Each gives a clear line and the right exit code, or is skipped
with a reason while the rest is indexed; never a traceback, never invalid UTF-8 output."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from index_fixtures import (  # noqa: F401 - fixtures
    HERE,
    child_env,
    cli,
    cli_in_child,
    docs,
    fake_embedder,
    modes,
    read_only,
    settings,
)


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes, to show that a failed run changed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _one_error_line(result) -> str:  # noqa: ANN001 - click Result
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_a_non_utf8_file_name_is_skipped_and_every_other_file_indexed(
    docs: Path, fake_embedder
) -> None:
    """Before: the name reached SQLite, UnicodeEncodeError, and nothing was indexed."""
    with open(os.path.join(os.fsencode(docs), b"bad\xff.txt"), "wb") as handle:
        handle.write(b"Lake Baikal under a name that is not UTF-8")
    result = cli("index", str(docs), "--name", "notes", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout_bytes.decode("utf-8"))
    assert data["files_read"] == 6  # the same six as without the odd file
    skip = {"path": f"{docs}/bad\\xff.txt", "reason": "file name is not valid UTF-8"}
    assert skip in data["skipped"]
    human = cli("index", str(docs), "--name", "notes", "--rebuild")
    assert "1 file name is not valid UTF-8" in human.stdout
    assert cli("search", "Lake Baikal", "--index", "notes").exit_code == 0


def test_a_non_utf8_folder_on_the_command_line_in_a_real_process(
    tmp_path: Path, docs: Path
) -> None:
    """Real argv bytes and a real stdout: `--json` must be valid UTF-8 and the good folder
    indexed. Before: a traceback, and no index."""
    bad = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    os.mkdir(bad)
    with open(os.path.join(bad, b"menu.txt"), "wb") as handle:
        handle.write(b"Soup of the day")
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
        "from index_fixtures import register_fake\n"
        "register_fake('fake')\n"
        "from rag.cli.app import app\n"
        "app(sys.argv[1:], prog_name='rag')\n"
    )
    argv = ["index", bad, os.fsencode(docs), b"--name", b"notes", b"--json"]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], env=child_env(RAG_EMBEDDER="fake"), capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    data = json.loads(done.stdout.decode("utf-8"))
    assert data["files_read"] == 6
    skip = {"path": f"{tmp_path}/caf\\xe9/", "reason": "folder name is not valid UTF-8"}
    assert skip in data["skipped"]


def test_a_non_utf8_index_folder_is_refused_before_anything_is_written(
    tmp_path: Path, docs: Path, fake_embedder
) -> None:
    """Before: the build ran, then FAISS raised a TypeError on the path, leaving files behind."""
    target = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"idx\xff"))
    result = cli("index", str(docs), "--name", target)
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert f"{tmp_path}/idx\\xff has a name that is not valid UTF-8" in line
    assert not os.path.exists(target)


def test_a_fifo_named_on_the_command_line_says_what_it_is(tmp_path: Path, fake_embedder) -> None:
    """Before: a FIFO given explicitly was walked as a folder and reported "(empty)"."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = cli("index", str(fifo), "--name", "x")
    assert result.exit_code == 2
    assert "(1 not a regular file)" in _one_error_line(result)


def test_names_with_newlines_and_escapes_are_indexed_and_warned_on_one_line(
    docs: Path, fake_embedder
) -> None:
    (docs / "two\nlines.md").write_text("# Lines\n\nA note whose name holds a newline.")
    shutil.copy(docs / "broken.pdf", docs / "bro\nken.pdf")
    shutil.copy(docs / "broken.pdf", docs / "\x1b[2Jclear.pdf")
    result = cli("index", str(docs), "--name", "notes", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["files_read"] == 7
    human = cli("index", str(docs), "--name", "notes", "--rebuild")
    lines = human.stderr.splitlines()
    starts = ("Reading files", "Embedding chunks", "Writing index", "Warning: ")
    assert all(line.startswith(starts) for line in lines if line), human.stderr
    warnings = [line for line in lines if line.startswith("Warning: skipped")]
    pdfs = [w for w in warnings if ".pdf: " in w]
    assert len(pdfs) == 3, human.stderr  # broken.pdf and its two odd copies
    # and the fixtures' cut-off PNG, which images being read (OCR) now reach
    assert [w for w in warnings if w not in pdfs] == [
        w for w in warnings if "pixel.png: unreadable image" in w
    ], human.stderr
    assert any("bro\\nken.pdf" in w for w in warnings)
    assert any("\\x1b[2Jclear.pdf" in w for w in warnings)
    assert "\x1b[2J" not in human.stderr


def test_a_read_only_index_folder_is_one_line_exit_1_and_left_intact(
    docs: Path, fake_embedder
) -> None:
    """Before: PermissionError/OSError on write.lock came out as a traceback."""
    assert cli("index", str(docs), "--name", "notes").exit_code == 0
    index_dir = settings().indexes_dir / "notes"
    (docs / "notes.md").write_text("# Changed\n\nSo that the run wants to write.")
    for lock_exists in (True, False):
        if not lock_exists:
            (index_dir / "write.lock").unlink()
        before = _tree(index_dir)
        with read_only(index_dir):
            result = cli("index", str(docs), "--name", "notes")
        assert result.exit_code == 1, result.output
        line = _one_error_line(result)
        assert line.startswith(f"Error: Cannot create or open the lock file {index_dir}/write.lock")
        assert "Check that the folder is writable" in line
        assert _tree(index_dir) == before
    assert cli("search", "lake", "--index", "notes").exit_code == 0


def test_a_read_only_rag_home_is_a_storage_error(rag_home: Path, docs: Path, fake_embedder) -> None:
    """Before: exit 2, as if the user had typed something wrong."""
    with read_only(rag_home):
        result = cli("index", str(docs), "--name", "notes")
    assert result.exit_code == 1, result.output
    line = _one_error_line(result)
    assert f"Cannot create the index folder {rag_home}/indexes/notes" in line
    assert "Check that the folder is writable" in line


def test_an_index_folder_without_write_permission(docs: Path, fake_embedder) -> None:
    """The report: `rag index` by a user who may not write the index folder. Before: a
    PermissionError traceback on write.lock. Run without root's capabilities, so the modes
    apply."""
    assert cli("index", str(docs), "--name", "notes").exit_code == 0
    index_dir = settings().indexes_dir / "notes"
    (docs / "notes.md").write_text("# Changed\n\nSo that the run wants to write.")
    before = _tree(index_dir)
    with modes(index_dir, 0o555, files=0o444):
        out = cli_in_child("index", str(docs), "--name", "notes", unprivileged=True)
    assert out["exit_code"] == 1, out
    assert out["stderr"] == (
        f"Error: Cannot create or open the lock file {index_dir}/write.lock: Permission denied. "
        "Check that the folder is writable (permissions, read-only mount).\n"
    )
    assert _tree(index_dir) == before


def test_a_path_behind_a_closed_folder_is_a_usage_error(tmp_path: Path) -> None:
    """Before: Path.exists() raised PermissionError, shown as a traceback."""
    closed = tmp_path / "closed"
    (closed / "docs").mkdir(parents=True)
    with modes(closed, 0o600):  # no search permission
        out = cli_in_child("index", str(closed / "docs"), "--name", "notes", unprivileged=True)
    assert out["exit_code"] == 2, out
    assert out["stderr"] == (
        f"Error: Cannot read {closed}/docs: Permission denied. "
        "Check the path and its permissions.\n"
    )


def test_indexes_list_names_a_folder_it_may_not_look_into(docs: Path, fake_embedder) -> None:
    """Before: one unreadable folder under $RAG_HOME/indexes made `rag indexes list` a
    PermissionError traceback, hiding every other index."""
    assert cli("index", str(docs), "--name", "notes").exit_code == 0
    closed = settings().indexes_dir / "closed"
    closed.mkdir()
    with modes(closed, 0):
        out = cli_in_child("indexes", "list", unprivileged=True)
    assert out["exit_code"] == 0, out
    assert (
        out["stdout"].startswith("closed  (damaged: Cannot read")
        and "Permission denied" in out["stdout"]
    )
    assert "\nnotes  " in out["stdout"] and "Traceback" not in out["stderr"]
    with modes(settings().indexes_dir, 0):
        out = cli_in_child("indexes", "list", unprivileged=True)
    assert out["exit_code"] == 1 and out["stderr"].startswith("Error: Cannot list"), out


def _rag_process(*argv: str) -> subprocess.CompletedProcess[str]:
    """`rag ARGV` in a real process (the fake embedder registered): its exit code and
    streams as a user sees them."""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
        "from index_fixtures import register_fake\n"
        "register_fake('fake')\n"
        "from rag.cli.app import main\n"
        "sys.argv = ['rag', *sys.argv[1:]]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        env=child_env(RAG_EMBEDDER="fake"),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("wait", ["nan", "inf", "-inf", "-1", "1e9"])
def test_a_wait_that_is_not_a_sane_number_of_seconds_is_one_usage_line(
    docs: Path, wait: str
) -> None:
    """Before: nan and inf reached filelock (a ValueError/OverflowError traceback, exit 1)
    after the index folder was made; -1 printed click's usage block."""
    done = _rag_process("index", str(docs), "--name", "notes", "--wait", wait)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "Error: --wait: wait must be a finite number between 0 and 86400.\n"
        if wait in ("nan", "inf", "-inf")
        else f"Error: --wait: wait must be between 0 and 86400, got {float(wait)!r}.\n"
    )
    assert not (settings().indexes_dir / "notes").exists()
    assert _rag_process("index", str(docs), "--name", "notes", "--wait", "0.5").returncode == 0


def test_a_document_holding_a_lone_surrogate_is_indexed_and_served(
    docs: Path, fake_embedder
) -> None:
    """JSON's `"\\ud800"` decodes to a lone surrogate, which SQLite cannot store. Before:
    a UnicodeEncodeError traceback and no index. Data keeps U+FFFD in its place."""
    record = {"title": "Odd \\ud800 title", "text": "Lake Baikal holds odd \\udcff text."}
    (docs / "odd.json").write_text(json.dumps(record).replace("\\\\", "\\"), encoding="utf-8")
    assert "\\ud800" in (docs / "odd.json").read_text(encoding="utf-8")
    result = cli("index", str(docs), "--name", "notes", "--json")
    assert result.exit_code == 0, result.output
    found = cli("search", "Lake Baikal odd text", "--index", "notes", "--json")
    assert found.exit_code == 0, found.output
    texts = [r["text"] for r in json.loads(found.stdout)["results"]]
    assert "Lake Baikal holds odd \ufffd text." in texts
