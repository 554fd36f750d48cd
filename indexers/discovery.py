"""Which files to index: walk the given paths and skip what a user would not want embedded.

Skipped by default, each with a reason the summary reports: hidden files and
folders, editors' and downloads' temporary files (`~$x.docx`, `*.swp`, `*.tmp`),
likely secrets (`.env`, private keys, `*.pem`, credential and token files,
anything in `.ssh`, `.gnupg`, ...), binary files, files over a size cap, anything
that is not a regular file (FIFO, socket, device), folders that cannot be listed,
symlinked folders and symlinked files met while walking (never followed, so a walk
cannot loop or leave the tree: a link to a file in the tree is a duplicate of that
file, a link out of it would index what the user never pointed at), file names that
are not valid UTF-8 (the index stores paths as UTF-8 text), and anything matching
`--exclude GLOB`. Secrets are skipped even when named explicitly, because an index is
easy to share; a symlink named explicitly is followed (its target is what was named).

Nothing here opens a file that is not a regular file (a FIFO would block forever,
a device never ends), the walk is iterative (no recursion limit on deep trees),
and one odd entry never stops the walk: it becomes a skip with its reason. Every
path handed on is a real path (no symlink anywhere in it), and `open_regular` opens
it without following one, so a file or folder swapped for a link after the walk
cannot lead the read out of the tree either.
"""

from __future__ import annotations

import errno
import fnmatch
import io
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from indexers.formats import BINARY as FORMATS_BINARY
from rag.core.config import expand_path
from rag.core.errors import UsageError

MAX_FILE_BYTES = 200 * 1024 * 1024

# Matched against the lower-cased file name (or a symlink's target name).
SECRET_NAMES = {
    ".env", ".netrc", "_netrc", ".pgpass", ".my.cnf", ".npmrc", ".pypirc",
    ".git-credentials", ".htpasswd", ".vault-token", ".dockercfg",
    "credentials", "secrets", "kubeconfig", "token.json",
}  # fmt: skip
SECRET_GLOBS = (
    ".env.*", "*.env",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.ppk", "*.jks", "*.keystore", "*.keytab",
    "*.kdbx", "*.gpg", "*.asc", "*.kubeconfig", "kubeconfig.*",
    "secrets.*", "credentials*.json", "credentials*.yaml", "credentials*.yml",
    "credentials*.toml", "credentials*.ini", "credentials*.csv", "credentials*.xml",
    "credentials*.txt", "service-account*.json", "client_secret*.json",
    "*-token.json", "*_token.json",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
)  # fmt: skip
# Every file inside these folders is a key, a token or a login (public keys aside).
SECRET_DIRS = {".ssh", ".gnupg", ".aws", ".kube", ".docker", ".password-store"}
PUBLIC_KEY_SUFFIX = ".pub"
# Formats that are binary on disk but that a loader reads.
BINARY_READABLE = (".pdf", ".gz", *sorted(FORMATS_BINARY))  # indexers.formats reads these
BINARY_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".tif", ".tiff",
    ".zip", ".tar", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst",
    ".exe", ".dll", ".so", ".dylib", ".o", ".a", ".class", ".jar", ".pyc", ".whl",
    ".mp3", ".mp4", ".wav", ".flac", ".ogg", ".mov", ".avi", ".mkv",
    ".sqlite", ".db", ".faiss", ".npy", ".npz", ".pt", ".bin", ".gguf", ".safetensors",
    ".docx", ".xlsx", ".pptx", ".odt", ".woff", ".woff2", ".ttf", ".otf",
}  # fmt: skip
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}
#: Files that stand for another one while it is edited or downloaded, matched against the
#: lower-cased name of a file met while walking: Office's owner file (`~$report.docx`),
#: editor swap, lock and backup files, temporary files and unfinished downloads. Hidden
#: ones (`.#x`, `.x.swp`, `.DS_Store`) are skipped as hidden already.
TEMPORARY_GLOBS = (
    "~$*", ".#*", "*.swp", "*.swo", "*~", "*.tmp", "*.temp", ".ds_store",
    "*.crdownload", "*.part", "*.partial",
)  # fmt: skip
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Skip:
    """A path not indexed and why; `path` is always valid UTF-8 (see `shown`), folders end in /."""

    path: str
    reason: str


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


def shown(path: str | Path) -> str:
    """`path` as valid UTF-8 text: bytes of a name that are not UTF-8 appear as `\\xff`.

    Python keeps such bytes as lone surrogates, which cannot be encoded, printed as
    UTF-8 or stored in SQLite; a report must never carry them.
    """

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _SURROGATE.sub(escape, str(path))


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(path: str | Path) -> str:
    """`path` for a one-line message: `shown`, and control characters (a newline, a
    terminal escape) written as `\\n`, `\\x1b`, so a name cannot break the line or drive
    the terminal."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), shown(path))


def is_utf8(text: str) -> bool:
    """False when `text` holds bytes that are not UTF-8 (surrogate escapes)."""
    return _SURROGATE.search(text) is None


def is_secret(name: str) -> bool:
    """True for a file name that very likely holds a key, token or password."""
    lowered = name.lower()
    if lowered.endswith(PUBLIC_KEY_SUFFIX):  # public keys are meant to be shared
        return False
    if lowered in SECRET_NAMES or any(fnmatch.fnmatch(lowered, g) for g in SECRET_GLOBS):
        return True
    return lowered.startswith("id_") and "." not in lowered  # an SSH key named id_work


def is_temporary(name: str) -> bool:
    """True for an editor's, Office's or a download's stand-in file (`TEMPORARY_GLOBS`)."""
    lowered = name.lower()
    return any(fnmatch.fnmatch(lowered, g) for g in TEMPORARY_GLOBS)


def skipped_by_name(path: Path, root: Path, exclude: Sequence[str] = ()) -> bool:
    """Whether a walk of `root` skips `path` for its name or a folder's alone (hidden,
    tool, excluded, temporary, likely secret), without looking at the file: a change
    there cannot change what `discover` finds (`rag index --watch` ignores it)."""
    if path == root:
        return False
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    folder = root
    for name in parts[:-1]:
        folder = folder / name
        if _folder_reason(folder, root, exclude):
            return True
    name = path.name
    return (
        (name.startswith(".") and not is_secret(name))
        or is_temporary(name)
        or _excluded(path, root, exclude)
        or _secret_reason(path) is not None
    )


def _secret_reason(path: Path) -> str | None:
    """The skip reason for a secret name or a file in a secret folder such as `.ssh`, or None."""
    if is_secret(path.name):
        return "likely secret"
    if path.name.lower().endswith(PUBLIC_KEY_SUFFIX):
        return None
    folder = next((p for p in path.parent.parts if p.lower() in SECRET_DIRS), None)
    return f"likely secret (in {folder}/)" if folder else None


def _kind(mode: int) -> str:
    """What a non-regular file is, in a user's words."""
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISDIR(mode):
        return "folder"
    return "special file"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


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


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# O_PATH (Linux) opens a folder only to look names up in it: like a path lookup it needs
# search permission, not the read permission a plain open would (a home at mode 0o711).
_FOLDER = getattr(os, "O_PATH", 0) | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading in binary, only if it is (still) a regular file reached
    without a symlink, and read only up to the size it has when opened.

    Opened non-blocking and checked with fstat, so a file swapped for a FIFO or a
    device since it was looked at raises OSError instead of blocking or never ending;
    opened one folder at a time without following links (`_open_no_links`), so a file
    or a folder swapped for a symlink since the walk raises OSError instead of reading
    what the link leads to. Every read of a file being indexed (sniff, hash, load)
    goes through here, and discovery only hands on paths without links.

    A file that grows while it is read (an active log) ends, for this reader, where it
    ended when it was opened, and never past MAX_FILE_BYTES: the size cap discovery
    checked holds however the file grows (`rag index` then warns that it changed).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
    fd = _open_no_links(Path(os.path.abspath(path)), flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"replaced by a {_kind(info.st_mode)} while read")
        os.set_blocking(fd, True)  # a regular file: plain reads from here on
        raw = _Bounded(fd, min(info.st_size, MAX_FILE_BYTES))
    except BaseException:
        os.close(fd)
        raise
    return io.BufferedReader(raw, buffer_size=1 << 16)  # type: ignore[return-value]


class _Bounded(io.RawIOBase):
    """The first `limit` bytes of the file open at `fd`, seekable, read with pread: what
    is appended later is past its end."""

    def __init__(self, fd: int, limit: int) -> None:
        super().__init__()
        self._fd, self._limit, self._pos = fd, limit, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._limit - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._limit}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, "seek before the start of the file")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


def _open_no_links(path: Path, flags: int) -> int:
    """`os.open(path, flags)` that fails where any part of the absolute `path` is a symlink.

    O_NOFOLLOW alone guards only the last name; each folder is opened from the one above
    it (openat), so a folder swapped for a link between the check and the open is caught
    too, with no window in between. Without O_PATH only the last name is guarded.
    """
    if not getattr(os, "O_PATH", 0) or os.open not in os.supports_dir_fd:
        return _open_last(path, flags | _NOFOLLOW, None)
    folder = os.open(path.anchor, _FOLDER)
    try:
        for depth, name in enumerate(path.parts[1:-1], start=2):
            try:
                child = os.open(name, _FOLDER, dir_fd=folder)
            except OSError:
                if _is_link(name, folder):
                    where = shown(Path(*path.parts[:depth]))
                    raise OSError(
                        errno.ELOOP, f"{where} replaced by a symlink while read"
                    ) from None
                raise
            os.close(folder)
            folder = child
        return _open_last(Path(path.name), flags | _NOFOLLOW, folder)
    finally:
        os.close(folder)


def _open_last(name: Path, flags: int, folder: int | None) -> int:
    """The open of the last name, a symlink there named by what it leads to."""
    try:
        return os.open(name, flags, dir_fd=folder)
    except OSError as exc:
        if exc.errno != errno.ELOOP or not _is_link(str(name), folder):
            raise
        try:  # only to say what the link leads to (a device, say); nothing is opened
            mode = os.stat(name, dir_fd=folder).st_mode
        except OSError:
            mode = 0
        special = mode and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)
        kind = _kind(mode) if special else "symlink"
        raise OSError(errno.ELOOP, f"replaced by a {kind} while read") from None


def _is_link(name: str, folder: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=folder).st_mode)
    except OSError:
        return False


def sniff_binary(path: Path) -> bool:
    """A NUL byte in the first 8 KiB means binary; text (except BOM-less UTF-16) has none.

    Opened with `open_regular`: a file swapped for a FIFO or a device raises OSError.
    """
    with open_regular(path) as handle:
        head = handle.read(8192)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a BOM is text
        return False
    return b"\x00" in head


def check_file(path: Path, walked: Sequence[Path] = ()) -> str | None:
    """The reason to skip a file by name, type or content, or None to read it.

    Only a regular file (or a symlink to one, outside a walk) is ever opened, and only to
    read 8 KiB. `walked`: the resolved paths being indexed, when `path` was met while walking them;
    a symlink there is never read (`LINK_INSIDE` for one to a file among them, which
    `discover` settles once it knows whether that file is read).
    """
    secret = _secret_reason(path)
    if secret:
        return secret
    if not is_utf8(path.name):
        return "file name is not valid UTF-8"
    if not is_utf8(str(path)):
        return "path is not valid UTF-8"
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"unreadable ({_why(exc)})"
    link = stat.S_ISLNK(info.st_mode)
    target = path
    if link:
        try:
            info = os.stat(path)
        except OSError as exc:
            return "broken link (symlink loop)" if exc.errno == errno.ELOOP else "broken link"
        target = Path(os.path.realpath(path))
        secret = _secret_reason(target)
        if secret:
            return f"likely secret (link to {shown(target)})"
    if stat.S_ISDIR(info.st_mode):
        return "symlinked folder (not followed)" if link else "folder"
    if not stat.S_ISREG(info.st_mode):
        kind = _kind(info.st_mode)
        return f"not a regular file (link to a {kind})" if link else f"not a regular file ({kind})"
    if link and walked:  # decided before anything is opened through the link
        inside = any(target.is_relative_to(root) for root in walked)
        return LINK_INSIDE if inside else LINK_OUTSIDE
    if path.suffix.lower() in BINARY_SUFFIXES and not path.name.lower().endswith(BINARY_READABLE):
        return "binary"
    if info.st_size > MAX_FILE_BYTES:
        return f"too large ({info.st_size // (1024 * 1024)} MiB)"
    if info.st_size == 0:
        return "empty"
    if path.name.lower().endswith(BINARY_READABLE):
        return None
    try:
        return "binary" if sniff_binary(target) else None
    except OSError as exc:
        return f"unreadable ({_why(exc)})"


#: Why a symlinked file met in a walk is not read: out of the tree it would index what the
#: user never pointed at (`ln -s ~/.bash_history notes/h.txt`); in it, the same file twice.
LINK_OUTSIDE = "symlink outside the folder"
LINK_INSIDE = "symlink within the folder"
LINK_READ = f"{LINK_INSIDE} (its target is read as itself)"
LINK_SKIPPED = f"{LINK_INSIDE} (its target is skipped)"


def check_given(raw: str | Path) -> Path:
    """A path named on the command line, expanded; UsageError if it is empty (not the
    current folder), not there or unreachable."""
    if not str(raw):
        raise UsageError("An empty path was given: name a file or folder to index.")
    given = expand_path(raw)
    try:
        os.stat(given)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise UsageError(
                f"No such file or folder: {one_line(raw)}. Check the path and try again."
            ) from None
        raise UsageError(
            f"Cannot read {one_line(raw)}: {_why(exc)}. Check the path and its permissions."
        ) from None
    return given


def discover(paths: Iterable[str | Path], exclude: Sequence[str] = ()) -> Discovery:
    """Files under `paths` (deduplicated, absolute, real paths, in walk order) and the
    skips, with reasons.

    A path named twice, or inside another one named, is read once and skipped once; a
    symlinked file met while walking is skipped (`check_file`), never read.
    """
    found = Discovery()
    seen: set[Path] = set()
    roots = list(dict.fromkeys(check_given(raw).resolve() for raw in paths))
    links: dict[Path, Path] = {}  # a walked link to a file among the roots -> its target
    for root in roots:
        try:
            is_dir = stat.S_ISDIR(os.stat(root).st_mode)
        except OSError as exc:
            found.skipped.append(Skip(shown(root), f"unreadable ({_why(exc)})"))
            continue
        if is_dir and not is_utf8(str(root)):
            reason = "folder name" if not is_utf8(root.name) else "path"
            found.skipped.append(Skip(shown(root) + "/", f"{reason} is not valid UTF-8"))
            continue
        candidates: Iterable[Path] = _walk(root, exclude, found) if is_dir else [root]
        for path in candidates:
            if path in seen:
                continue
            seen.add(path)
            if path != root and _excluded(path, root, exclude):
                found.skipped.append(Skip(shown(path), "excluded"))
                continue
            reason = check_file(path, roots if path != root else ())
            if reason == LINK_INSIDE:
                links[path] = Path(os.path.realpath(path))
            elif reason:
                found.skipped.append(Skip(shown(path), reason))
            else:
                found.files.append(path)
    read = set(found.files)
    for link, target in links.items():  # whether the target is read is known only now
        found.skipped.append(Skip(shown(link), LINK_READ if target in read else LINK_SKIPPED))
    unique: dict[str, Skip] = {}
    for skip in found.skipped:  # a folder inside two named paths is reported once
        unique.setdefault(skip.path, skip)
    found.skipped = list(unique.values())
    return found


def _folder_reason(path: Path, root: Path, exclude: Sequence[str]) -> str | None:
    """Why not to walk into the folder `path`, or None to walk it."""
    name = path.name
    if name.startswith("."):
        return "hidden folder"
    if name in SKIP_DIRS or name.endswith(".egg-info"):
        return "tool folder"
    if _excluded(path, root, exclude):
        return "excluded"
    if not is_utf8(name):
        return "folder name is not valid UTF-8"
    return None


def _walk(root: Path, exclude: Sequence[str], found: Discovery) -> Iterator[Path]:
    """Files under `root`, top-down with sorted names; folders skipped land in `found`.

    An explicit stack, not recursion, so any depth works; symlinked folders are listed
    as skipped, never followed, so a link loop or a link out of the tree cannot be walked.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            found.skipped.append(Skip(shown(folder) + "/", f"unreadable folder ({_why(exc)})"))
            continue
        subfolders: list[Path] = []
        files: list[os.DirEntry[str]] = []
        for entry in entries:  # folders first, as os.walk reports them
            if not _is_folder(entry):
                files.append(entry)
                continue
            path = folder / entry.name
            reason = _folder_reason(path, root, exclude)
            if reason is None and entry.is_symlink():
                reason = "symlinked folder (not followed)"
            if reason:
                found.skipped.append(Skip(shown(path) + "/", reason))
            else:
                subfolders.append(path)
        for entry in files:
            path = folder / entry.name
            if entry.name.startswith(".") and not is_secret(entry.name):
                found.skipped.append(Skip(shown(path), "hidden"))
            elif is_temporary(entry.name):
                found.skipped.append(Skip(shown(path), "temporary file"))
            else:
                yield path
        stack.extend(reversed(subfolders))


def _is_folder(entry: os.DirEntry[str]) -> bool:
    """A folder, or a symlink to one; never raises (a broken link is not a folder)."""
    try:
        return entry.is_dir()
    except OSError:
        return False
