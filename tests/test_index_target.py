"""`rag index --name PATH` never harms a folder it did not create: refused up front when it
overlaps the indexed paths or holds other files, and a failed or interrupted run removes
only what it made itself."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

from pathlib import Path

import pytest
from index_fixtures import FakeEmbedder, cli, docs, fake_embedder, settings  # noqa: F401 - fixtures

from indexers.build import build_index
from indexers.stores import local_layout, target
from rag.core.errors import UsageError


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "u"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("precious")
    (folder / "sub" / "b.md").write_text("also precious")
    return folder


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def _intact(folder: Path) -> None:
    assert (folder / "a.txt").read_text() == "precious"
    assert (folder / "sub" / "b.md").read_text() == "also precious"


def test_user_folder_as_name_is_refused_and_kept(user_folder: Path, empty: Path) -> None:
    result = cli("index", str(empty), "--name", str(user_folder))
    assert result.exit_code == 2, result.output
    assert "not a pocketrag index" in result.stderr
    _intact(user_folder)
    assert sorted(p.name for p in user_folder.iterdir()) == ["a.txt", "sub"]


def test_indexing_a_folder_into_itself_is_refused(
    user_folder: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    for name, words in (
        (user_folder, "the very path being indexed"),
        (user_folder / "idx", "lies inside"),
        (tmp_path, "contains"),
    ):
        result = cli("index", str(user_folder), "--name", str(name))
        assert result.exit_code == 2, (name, result.output)
        assert words in result.stderr and "Traceback" not in result.output
        _intact(user_folder)
    assert not (user_folder / "idx").exists() and not (user_folder / "write.lock").exists()
    with pytest.raises(UsageError, match="lies inside"):  # a single file as the root too
        build_index([user_folder / "a.txt"], str(user_folder / "a.txt" / "x"), settings())
    _intact(user_folder)


def test_a_file_as_name_is_refused(user_folder: Path, empty: Path) -> None:
    result = cli("index", str(empty), "--name", str(user_folder / "a.txt"))
    assert result.exit_code == 2 and "is a file, not a folder" in result.stderr
    _intact(user_folder)


def test_failure_removes_only_what_the_run_created(
    user_folder: Path, empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if the up-front check let a user folder through, the cleanup keeps its files."""
    monkeypatch.setattr(target, "check_target", lambda *a: None)
    with pytest.raises(UsageError, match="No indexable files"):
        build_index([empty], str(user_folder), settings())
    _intact(user_folder)
    assert sorted(p.name for p in user_folder.iterdir()) == ["a.txt", "sub"]


def test_failed_first_build_into_existing_empty_folder_keeps_the_folder(
    tmp_path: Path, empty: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    result = cli("index", str(empty), "--name", str(mine))
    assert result.exit_code == 2 and "No indexable files" in result.stderr
    assert mine.is_dir() and list(mine.iterdir()) == []  # its own write.lock is gone


def test_failed_first_build_into_new_path_leaves_nothing(tmp_path: Path, empty: Path) -> None:
    result = cli("index", str(empty), "--name", str(tmp_path / "new" / "deep" / "idx"))
    assert result.exit_code == 2
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("where", ["embed", "commit"])
def test_ctrl_c_removes_only_what_the_run_created(
    where: str,
    tmp_path: Path,
    docs: Path,
    fake_embedder: FakeEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    if where == "embed":
        monkeypatch.setattr(fake_embedder, "embed", interrupt)
    else:  # the new generation is fully written in gen-000001.tmp by now
        monkeypatch.setattr(local_layout, "commit_generation", interrupt)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "write.lock").touch()  # left by an earlier run: not this run's to remove
    with pytest.raises(KeyboardInterrupt):
        build_index([docs], str(mine), settings())
    assert [p.name for p in mine.iterdir()] == ["write.lock"]
    with pytest.raises(KeyboardInterrupt):
        build_index([docs], str(tmp_path / "fresh" / "idx"), settings())
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(KeyboardInterrupt):
        build_index([docs], "named", settings())
    assert not (settings().indexes_dir / "named").exists()


def test_ctrl_c_while_updating_keeps_the_live_index(
    tmp_path: Path, docs: Path, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    idx = tmp_path / "idx"
    build_index([docs], str(idx), settings())
    (docs / "notes.md").write_text("# Changed\n\nNew words to embed.")

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    real_commit = local_layout.commit_generation
    monkeypatch.setattr(local_layout, "commit_generation", interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_index([docs], str(idx), settings())
    assert sorted(p.name for p in idx.iterdir()) == [
        "CURRENT", "gen-000001", "pocketrag-index.json", "write.lock",
    ]  # fmt: skip
    monkeypatch.setattr(local_layout, "commit_generation", real_commit)
    assert build_index([docs], str(idx), settings()).files_embedded == 1


def test_existing_index_folder_and_a_killed_first_run_are_accepted(
    tmp_path: Path, docs: Path, fake_embedder: FakeEmbedder
) -> None:
    idx = tmp_path / "idx"
    assert build_index([docs], str(idx), settings()).created
    again = build_index([docs], str(idx), settings())
    assert not again.changed and not again.created
    killed = tmp_path / "killed"  # what SIGKILL leaves in a first run's folder
    (killed / "gen-000001.tmp").mkdir(parents=True)
    (killed / "write.lock").touch()
    report = build_index([docs], str(killed), settings())
    assert report.created and (killed / "CURRENT").is_file()
    assert not (killed / "gen-000001.tmp").exists()
