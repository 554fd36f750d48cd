"""Discovery on hostile trees: secrets under any name, names that are not UTF-8, special
files, unreadable and symlinked folders, very deep trees, paths given twice. Each odd
entry is skipped with a reason that says what it is; nothing hangs, nothing crashes."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from index_fixtures import discover_in_child, docs, modes, run_child  # noqa: F401 - fixtures

from indexers.discovery import discover, is_secret


def _reasons(found) -> dict[str, str]:  # noqa: ANN001 - a Discovery
    return {s.path: s.reason for s in found.skipped}


SECRETS = [
    "credentials-prod.json", "credentials.json", "credentials", "credentials.csv",
    "secrets.txt", "secrets.py", "secrets.yaml", "secrets", ".env", ".env.local", "prod.env",
    "server.pem", "tls.key", "putty.ppk", "id_rsa", "id_ed25519", "id_ecdsa_sk", "id_work",
    "cluster.kubeconfig", "kubeconfig", "kubeconfig.yaml", "service-account-prod.json",
    "client_secret_123.apps.googleusercontent.com.json", "token.json", "github_token.json",
    "slack-token.json", ".netrc", ".pgpass", ".git-credentials", ".vault-token", "vault.kdbx",
    "http.keytab", "cert.p12",
]  # fmt: skip
NOT_SECRETS = [
    "id_rsa.pub", "id_ed25519.pub", "notes.md", "id_card.txt", "tokenizer.json",
    "tokenizer_config.json", "added_tokens.json", "special_tokens_map.json",
    "credentials_howto.md", "keys.md", "secret-garden.txt", "environment.md",
]  # fmt: skip


@pytest.mark.parametrize("name", SECRETS)
def test_likely_secrets_are_recognised(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", NOT_SECRETS)
def test_ordinary_files_and_public_keys_are_not_secrets(name: str) -> None:
    assert not is_secret(name)


def test_secret_files_are_skipped_in_a_walk_and_through_links(tmp_path: Path) -> None:
    """The README's `credentials*.json` and `secrets.*` were exact names, so these were indexed."""
    root = tmp_path / "notes"
    root.mkdir()
    for name in ("credentials-prod.json", "secrets.txt", "secrets.py", "id_rsa", "id_rsa.pub"):
        (root / name).write_text("AKIA-not-a-real-key")
    (root / "notes.md").write_text("# Garden\n\nTomatoes.")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "id_work").write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    (root / "innocent.txt").symlink_to(keys / "id_work")  # a harmless name for a key
    found = discover([root])
    assert sorted(p.name for p in found.files) == ["id_rsa.pub", "notes.md"]
    reasons = _reasons(found)
    for name in ("credentials-prod.json", "secrets.txt", "secrets.py", "id_rsa"):
        assert reasons[str(root / name)] == "likely secret", name
    assert reasons[str(root / "innocent.txt")].startswith("likely secret (link to ")


def test_a_secret_folder_named_explicitly_yields_only_public_keys(tmp_path: Path) -> None:
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    for name in ("config", "known_hosts", "id_work", "id_work.pub"):
        (ssh / name).write_text("Host example\n  IdentityFile ~/.ssh/id_work\n")
    found = discover([ssh])
    assert [p.name for p in found.files] == ["id_work.pub"]
    assert _reasons(found)[str(ssh / "config")] == "likely secret (in .ssh/)"


def test_non_utf8_names_are_skipped_with_a_printable_reason(tmp_path: Path) -> None:
    """A name with bytes that are not UTF-8 cannot be stored as SQLite text: before, it was
    returned as a file to read, and the build crashed on it."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.txt").write_text("plain text")
    raw = os.fsencode(root)
    with open(os.path.join(raw, b"bad\xff.txt"), "wb") as handle:
        handle.write(b"text under a bad name")
    os.mkdir(os.path.join(raw, b"dir\xfe"))
    with open(os.path.join(raw, b"dir\xfe", b"inner.txt"), "wb") as handle:
        handle.write(b"text in a folder with a bad name")
    found = discover([root])
    assert [p.name for p in found.files] == ["good.txt"]
    reasons = _reasons(found)
    assert reasons[f"{root}/bad\\xff.txt"] == "file name is not valid UTF-8"
    assert reasons[f"{root}/dir\\xfe/"] == "folder name is not valid UTF-8"
    for path in reasons:
        path.encode("utf-8")  # every reported path is valid UTF-8


def test_a_non_utf8_folder_named_explicitly_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    bad = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    os.mkdir(bad)
    with open(os.path.join(bad, b"menu.txt"), "wb") as handle:
        handle.write(b"soup of the day")
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.txt").write_text("plain text")
    found = discover([os.fsdecode(bad), good])
    assert [p.name for p in found.files] == ["a.txt"]
    assert _reasons(found) == {f"{tmp_path}/caf\\xe9/": "folder name is not valid UTF-8"}


def test_special_files_are_named_and_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a FIFO was "empty", a link to /dev/null or /dev/zero a "broken link", and a
    socket or device named on the command line silently gave nothing."""
    root = tmp_path / "d"
    root.mkdir()
    (root / "ok.txt").write_text("plain text")
    os.mkfifo(root / "pipe")
    (root / "null.txt").symlink_to("/dev/null")
    (root / "zero.txt").symlink_to("/dev/zero")
    (root / "gone.txt").symlink_to(root / "missing")
    (root / "self.txt").symlink_to(root / "self.txt")  # a link loop
    monkeypatch.chdir(root)  # an AF_UNIX path is limited to about 100 bytes
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock")
    try:
        found = discover_in_child([root])  # in a child: a blocking read fails, not hangs
        explicit = discover_in_child([root / "pipe", "/dev/zero", root / "sock"])
    finally:
        sock.close()
    assert found["files"] == [str(root / "ok.txt")]
    assert found["skipped"] == {
        str(root / "gone.txt"): "broken link",
        str(root / "null.txt"): "not a regular file (link to a character device)",
        str(root / "pipe"): "not a regular file (FIFO)",
        str(root / "self.txt"): "broken link (symlink loop)",
        str(root / "sock"): "not a regular file (socket)",
        str(root / "zero.txt"): "not a regular file (link to a character device)",
    }
    assert explicit["files"] == []
    assert explicit["skipped"] == {
        str(root / "pipe"): "not a regular file (FIFO)",
        "/dev/zero": "not a regular file (character device)",
        str(root / "sock"): "not a regular file (socket)",
    }


def test_sniffing_a_file_swapped_for_a_fifo_fails_instead_of_blocking(tmp_path: Path) -> None:
    """A file can become a FIFO between the look and the read: the sniff must not block."""
    os.mkfifo(tmp_path / "pipe")
    code = f"""
from pathlib import Path
from indexers.discovery import sniff_binary
try:
    sniff_binary(Path({str(tmp_path / "pipe")!r}))
except OSError as exc:
    print(json.dumps(exc.strerror))
"""
    assert run_child(code) == "replaced by a FIFO while read"


def test_walking_dev_reads_no_device() -> None:
    found = discover_in_child(["/dev"])
    assert found["skipped"]["/dev/null"] == "not a regular file (character device)"
    assert found["skipped"]["/dev/zero"] == "not a regular file (character device)"


def test_symlinked_folders_are_listed_not_followed(tmp_path: Path) -> None:
    """Before: a link to a folder out of the tree (or back up into it) vanished silently."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("not part of the indexed tree")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("inside")
    (root / "out").symlink_to(outside)
    (root / "sub" / "up").symlink_to(root)  # a loop
    found = discover([root])
    assert [p.name for p in found.files] == ["a.txt"]
    reasons = _reasons(found)
    assert reasons[f"{root}/out/"] == "symlinked folder (not followed)"
    assert reasons[f"{root}/sub/up/"] == "symlinked folder (not followed)"


def test_unreadable_folders_are_listed(tmp_path: Path) -> None:
    """Before: os.walk dropped a folder it could not list without a word. Run without root's
    capabilities so the folder's mode applies (root reads anything)."""
    root = tmp_path / "docs"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "diary.txt").write_text("private")
    (root / "ok.txt").write_text("plain text")
    with modes(root / "locked", 0):
        found = discover_in_child([root], unprivileged=True)
    assert found["files"] == [str(root / "ok.txt")]
    assert found["skipped"] == {f"{root}/locked/": "unreadable folder (Permission denied)"}
    closed = tmp_path / "closed"
    (closed / "inner").mkdir(parents=True)
    with modes(closed, 0o600):  # no search permission: the path inside cannot be reached
        result = discover_in_child([closed / "inner"], unprivileged=True)
    assert result == {"error": f"Cannot read {closed}/inner: Permission denied. "
                      "Check the path and its permissions."}  # fmt: skip


def _nest(top: Path, name: str, levels: int, leaf: str) -> None:
    """`top/name/name/.../leaf`, made one level at a time relative to the last (no recursion,
    no path length limit)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf_fd = os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf_fd, b"at the bottom")
        os.close(leaf_fd)
    finally:
        os.close(fd)


def test_a_very_deep_tree_is_walked_and_too_long_paths_are_listed(tmp_path: Path) -> None:
    """Python 3.11's os.walk recursed once per level: 1100 levels raised RecursionError."""
    deep, long = tmp_path / "deep", tmp_path / "long"
    _nest(deep, "d", 1100, "bottom.txt")
    _nest(long, "x" * 60, 80, "lost.txt")  # 80 * 61 bytes: past PATH_MAX (4096)
    try:
        found = discover([deep, long])
    finally:  # shutil.rmtree (pytest's cleanup) recurses too: take the deep tree down here
        os.remove(deep / "/".join(["d"] * 1100) / "bottom.txt")
        for level in range(1100, 0, -1):
            os.rmdir(deep / "/".join(["d"] * level))
    assert [p.name for p in found.files] == ["bottom.txt"]
    [skip] = found.skipped
    assert skip.path.startswith(str(long)) and skip.reason == (
        "unreadable folder (File name too long)"
    )


def test_paths_given_twice_or_nested_are_read_and_reported_once(docs: Path) -> None:
    once = discover([docs])
    twice = discover([docs, docs, docs / "sub", docs / "notes.md"])
    assert twice.files == once.files
    assert twice.skipped == once.skipped
    assert len({s.path for s in twice.skipped}) == len(twice.skipped)


def test_names_with_newlines_and_control_characters_are_read(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    for name in ("two\nlines.txt", "\x1b[2Jclear.txt", "tab\there.txt"):
        (root / name).write_text(f"text of {name!r}")
    found = discover([root])
    assert sorted(p.name for p in found.files) == sorted(
        ["two\nlines.txt", "\x1b[2Jclear.txt", "tab\there.txt"]
    )
