"""Which files to index: walk the given paths and skip what a user would not want embedded.

Skipped by default, each with a reason the summary reports: hidden files and
folders, likely secrets (`.env`, private keys, `*.pem`, credential files), binary
files, files over a size cap, and anything matching `--exclude GLOB`. Secrets
are skipped even when named explicitly, because an index is easy to share.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import UsageError

MAX_FILE_BYTES = 200 * 1024 * 1024

SECRET_NAMES = {
    ".env",
    ".netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    "credentials",
    "credentials.json",
    "secrets.json",
    "secrets.yaml",
    "secrets.yml",
    "secrets.toml",
}
SECRET_GLOBS = (
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.gpg",
    "*.asc",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
)
# Formats that are binary on disk but that a loader reads.
BINARY_READABLE = (".pdf", ".gz")
BINARY_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".tif", ".tiff",
    ".zip", ".tar", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst",
    ".exe", ".dll", ".so", ".dylib", ".o", ".a", ".class", ".jar", ".pyc", ".whl",
    ".mp3", ".mp4", ".wav", ".flac", ".ogg", ".mov", ".avi", ".mkv",
    ".sqlite", ".db", ".faiss", ".npy", ".npz", ".pt", ".bin", ".gguf", ".safetensors",
    ".docx", ".xlsx", ".pptx", ".odt", ".woff", ".woff2", ".ttf", ".otf",
}  # fmt: skip
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}


@dataclass(frozen=True)
class Skip:
    path: str
    reason: str


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_NAMES or any(fnmatch.fnmatch(lowered, g) for g in SECRET_GLOBS)


def _excluded(path: Path, root: Path, patterns: Sequence[str]) -> bool:
    """A glob matches the name, the path relative to the root, or the absolute path."""
    if not patterns:
        return False
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = path.name
    candidates = (path.name, rel, path.as_posix())
    return any(fnmatch.fnmatch(c, p.rstrip("/")) for p in patterns for c in candidates)


def sniff_binary(path: Path) -> bool:
    """A NUL byte in the first 8 KiB means binary; text (except BOM-less UTF-16) has none."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a BOM is text
        return False
    return b"\x00" in head


def check_file(path: Path) -> str | None:
    """The reason to skip a file by content/type, or None to read it."""
    name = path.name.lower()
    if is_secret(path.name):
        return "likely secret"
    if path.suffix.lower() in BINARY_SUFFIXES:
        return "binary"
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if size > MAX_FILE_BYTES:
        return f"too large ({size // (1024 * 1024)} MiB)"
    if size == 0:
        return "empty"
    if name.endswith(BINARY_READABLE):
        return None
    try:
        return "binary" if sniff_binary(path) else None
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"


def discover(paths: Iterable[str | Path], exclude: Sequence[str] = ()) -> Discovery:
    """Files under `paths` (sorted, deduplicated, absolute) and the files skipped, with reasons."""
    found = Discovery()
    seen: set[Path] = set()
    for raw in paths:
        root = Path(raw).expanduser()
        if not root.exists():
            raise UsageError(f"No such file or folder: {raw}. Check the path and try again.")
        root = root.resolve()
        if root.is_file():
            candidates: Iterable[Path] = [root]
        else:
            candidates = _walk(root, exclude, found)
        for path in candidates:
            if path in seen:
                continue
            seen.add(path)
            if _excluded(path, root, exclude) and path != Path(raw).expanduser().resolve():
                found.skipped.append(Skip(str(path), "excluded"))
                continue
            reason = check_file(path)
            if reason:
                found.skipped.append(Skip(str(path), reason))
            else:
                found.files.append(path)
    return found


def _walk(root: Path, exclude: Sequence[str], found: Discovery) -> Iterable[Path]:
    for folder, dirs, names in os.walk(root, onerror=None):
        here = Path(folder)
        keep = []
        for d in sorted(dirs):
            sub = here / d
            if d.startswith("."):
                found.skipped.append(Skip(str(sub) + "/", "hidden folder"))
            elif d in SKIP_DIRS or d.endswith(".egg-info"):
                found.skipped.append(Skip(str(sub) + "/", "tool folder"))
            elif _excluded(sub, root, exclude):
                found.skipped.append(Skip(str(sub) + "/", "excluded"))
            else:
                keep.append(d)
        dirs[:] = keep
        for n in sorted(names):
            path = here / n
            if n.startswith(".") and not is_secret(n):
                found.skipped.append(Skip(str(path), "hidden"))
                continue
            if path.is_symlink() and not path.is_file():
                found.skipped.append(Skip(str(path), "broken link"))
                continue
            yield path
