"""Symlinked files in an indexed folder, through `rag index` and `rag search` in real
processes: a link out of the folder is never read (`ln -s ~/.bash_history notes/h.txt`
indexed and served the history), a link to a file in the folder is not read twice, and a
file or folder swapped for a link after the walk is not followed when read. A symlink
named on the command line is still followed: the user named it."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from index_fixtures import HERE, child_env, run_child

SECRET = "Zanzibar"  # a word only the file out of the folder holds
LINK_OUTSIDE = "symlink outside the folder"
LINK_READ = "symlink within the folder (its target is read as itself)"
LINK_SKIPPED = "symlink within the folder (its target is skipped)"


def rag(*argv: str) -> subprocess.CompletedProcess[str]:
    """`rag ARGV` in a real process, with the fake embedder registered."""
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


def _indexed(*argv: str) -> dict[str, Any]:
    done = rag("index", *argv, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _found(word: str, name: str = "x") -> list[dict[str, Any]]:
    """The search results holding `word` (a search always returns the nearest passages)."""
    done = rag("search", word, "--index", name, "--json", "--k", "20")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    return [r for r in results if word.lower() in json.dumps(r).lower()]


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """docs/ with two notes, and a private file beside it (not in it)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "garden.md").write_text("# Garden\n\nTomatoes need sun and water every day.")
    (docs / "kitchen.txt").write_text("Soup of the day is lentil with cumin.")
    private = tmp_path / "private"
    private.mkdir()
    (private / "diary.txt").write_text(f"My bank PIN is hidden in {SECRET} under the floor.")
    return docs, private / "diary.txt"


def test_a_link_out_of_the_folder_is_skipped_and_never_served(tmp_path: Path) -> None:
    """Before: docs/x.txt -> a file outside was read, stored and served by `rag search`."""
    docs, outside = _tree(tmp_path)
    (docs / "x.txt").symlink_to(outside)
    (docs / "sub").mkdir()
    (docs / "sub" / "deep.txt").symlink_to(Path("../..") / "private" / "diary.txt")  # relative
    data = _indexed(str(docs), "--name", "x")
    assert data["files_read"] == 2
    skipped = {s["path"]: s["reason"] for s in data["skipped"]}
    assert skipped == {str(docs / "x.txt"): LINK_OUTSIDE, str(docs / "sub/deep.txt"): LINK_OUTSIDE}
    assert _found(SECRET) == []
    human = rag("index", str(docs), "--name", "x", "--rebuild")
    assert human.returncode == 0, human.stderr
    assert "Skipped 2: 2 symlink outside the folder." in human.stdout
    assert _found(SECRET) == []


def test_a_link_named_on_the_command_line_is_still_followed(tmp_path: Path) -> None:
    docs, outside = _tree(tmp_path)
    (docs / "x.txt").symlink_to(outside)
    data = _indexed(str(docs / "x.txt"), "--name", "x")
    assert data["files_read"] == 1 and data["skipped"] == []
    assert len(_found(SECRET)) == 1


def test_a_link_within_the_folder_is_read_once_as_its_target(tmp_path: Path) -> None:
    """Before: a link to a note in the same folder indexed the note twice, and a link to a
    file the walk skips (an excluded folder, a hidden one) read it anyway."""
    docs, _ = _tree(tmp_path)
    (docs / "today.md").symlink_to("garden.md")
    (docs / "drafts").mkdir()
    (docs / "drafts" / "plan.txt").write_text(f"Draft: move to {SECRET} next spring.")
    (docs / "plan.txt").symlink_to(docs / "drafts" / "plan.txt")
    (docs / ".hidden").mkdir()
    (docs / ".hidden" / "wish.txt").write_text(f"A {SECRET} wish list.")
    (docs / "wish.txt").symlink_to(docs / ".hidden" / "wish.txt")
    data = _indexed(str(docs), "--name", "x", "--exclude", "drafts")
    assert data["files_read"] == 2
    skipped = {s["path"]: s["reason"] for s in data["skipped"]}
    assert skipped[str(docs / "today.md")] == LINK_READ
    assert skipped[str(docs / "plan.txt")] == LINK_SKIPPED
    assert skipped[str(docs / "wish.txt")] == LINK_SKIPPED
    assert _found(SECRET) == []
    found = _found("tomatoes")
    assert [r["location"] for r in found] == [f"{docs}/garden.md#chunk0"]


def test_link_loops_are_broken_links(tmp_path: Path) -> None:
    docs, _ = _tree(tmp_path)
    (docs / "a.txt").symlink_to("b.txt")
    (docs / "b.txt").symlink_to("a.txt")
    data = _indexed(str(docs), "--name", "x")
    skipped = {s["path"]: s["reason"] for s in data["skipped"]}
    assert skipped == {
        str(docs / "a.txt"): "broken link (symlink loop)",
        str(docs / "b.txt"): "broken link (symlink loop)",
    }


# A build in a child whose files are swapped after discovery: the race a user cannot time
# from the command line, run at the moment it matters (as tests/test_adversarial_index.py).
_SWAP = """
import os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from index_fixtures import register_fake
register_fake("fake")
import indexers.build as build
from rag.core.config import load_settings

docs, outside, kind = Path({docs!r}), Path({outside!r}), {kind!r}
real_discover = build.discover

def discover(roots, exclude):
    found = real_discover(roots, exclude)
    if kind == "file":  # the note becomes a link to the private file
        (docs / "kitchen.txt").unlink()
        (docs / "kitchen.txt").symlink_to(outside)
    else:  # the folder becomes a link to the private folder, which holds a same-named file
        os.rename(docs / "sub", docs / "sub.old")
        (docs / "sub").symlink_to(outside.parent)
    return found

build.discover = discover
report = build.build_index([str(docs)], "x", load_settings(embedder="fake"))
print(json.dumps({{s.path: s.reason for s in report.skipped}}))
"""


def _swapped(tmp_path: Path, kind: str) -> tuple[Path, dict[str, str]]:
    docs, outside = _tree(tmp_path)
    (docs / "sub").mkdir()
    (docs / "sub" / "diary.txt").write_text("An ordinary diary: rain again.")
    code = _SWAP.format(tests=str(HERE), docs=str(docs), outside=str(outside), kind=kind)
    return docs, run_child(code, timeout=60)


def test_a_file_swapped_for_a_link_after_the_walk_is_not_followed(tmp_path: Path) -> None:
    docs, skipped = _swapped(tmp_path, "file")
    assert skipped == {str(docs / "kitchen.txt"): "unreadable (replaced by a symlink while read)"}
    assert _found(SECRET) == []


def test_a_folder_swapped_for_a_link_after_the_walk_is_not_followed(tmp_path: Path) -> None:
    docs, skipped = _swapped(tmp_path, "folder")
    assert skipped == {
        str(docs / "sub/diary.txt"): f"unreadable ({docs}/sub replaced by a symlink while read)"
    }
    assert _found(SECRET) == []


def test_a_file_swapped_for_a_fifo_after_the_walk_is_skipped(tmp_path: Path) -> None:
    """The open without links keeps refusing what is not a regular file, without blocking."""
    docs, _ = _tree(tmp_path)
    code = f"""
import os
from pathlib import Path
from indexers.loaders import load_file
path = Path({str(docs / "kitchen.txt")!r})
path.unlink()
os.mkfifo(path)
try:
    load_file(path)
except Exception as exc:
    print(json.dumps(str(exc)))
"""
    assert (
        run_child(code, timeout=60)
        == "unreadable: OSError: [Errno 22] replaced by a FIFO while read"
    )


def test_a_folder_without_read_permission_on_the_way_is_no_obstacle(tmp_path: Path) -> None:
    """Each folder of the path is opened to look names up in it (O_PATH), which needs no
    read permission on it, as a plain open does not: a home folder at 0o711."""
    docs, _ = _tree(tmp_path)
    inner = docs / "inner"
    inner.mkdir()
    (inner / "note.txt").write_text("A note behind a folder that cannot be listed.")
    os.chmod(docs, 0o311)
    try:
        code = f"""
from pathlib import Path
from indexers.loaders import load_file
print(json.dumps(load_file(Path({str(inner / "note.txt")!r})).documents[0].text))
"""
        assert run_child(code, unprivileged=True) == "A note behind a folder that cannot be listed."
    finally:
        os.chmod(docs, 0o755)
