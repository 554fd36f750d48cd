"""Opening the files the format readers read, and refusing hostile ones before any
library sees them.

Office Open XML, OpenDocument and EPUB files are zip archives of XML, so each is checked
here first (`open_zip`): a zip bomb (too many members, too much once inflated, a member
that inflates more than 100:1, Apache POI's rule), an encrypted member, or an XML part
that declares entities (billion laughs: no Office, ODF or EPUB writer declares any) is
one skip reason, never a hang or a gigabyte of memory. Python's zipfile also stops each
member at its declared size, so a member cannot inflate past what was checked. An Office
file saved with a password is not a zip at all but an OLE compound file holding
`EncryptionInfo` (`ole_streams` tells).

`open_file` opens a path the way `indexers.discovery.open_regular` does (only a regular
file, never through a symlink); it lives here because discovery imports this package.
"""

from __future__ import annotations

import contextlib
import errno
import io
import mmap
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from indexers.documents import LoadError

MiB = 1024 * 1024
#: The most members a zip may hold (an .xlsx has tens, an EPUB hundreds).
MAX_MEMBERS = 10_000
#: The most a zip may inflate to, in all, for a reader that parses parts whole.
MAX_TOTAL = 512 * MiB
#: ... and for one that streams (spreadsheets: a 200 MB .xlsx is 1-2 GB of XML).
MAX_TOTAL_STREAMED = 4 * 1024 * MiB
#: A member over RATIO_FLOOR that inflates more than MAX_RATIO times is a bomb.
MAX_RATIO = 100
RATIO_FLOOR = 1 * MiB
#: How much of each XML part is searched for entity declarations (they come first).
PROLOG_BYTES = 64 * 1024
XML_SUFFIXES = (".xml", ".rels", ".opf", ".ncx", ".xhtml", ".html", ".htm", ".svg")
_ENTITY = tuple("<!ENTITY".encode(codec) for codec in ("ascii", "utf-16-le", "utf-16-be"))
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK"


def open_file(path: Path) -> BinaryIO:
    """`path` opened for reading, only if it is a regular file reached without a symlink:
    O_NOFOLLOW guards its last name and, on Linux, the descriptor's own path must be
    `path` itself, so a folder swapped for a link since discovery is refused too."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | os.O_CLOEXEC
    path = Path(os.path.abspath(path))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "replaced by a symlink while read") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "replaced by a special file while read")
        with contextlib.suppress(OSError):  # /proc may be absent: O_NOFOLLOW alone then
            if os.readlink(f"/proc/self/fd/{fd}") != str(path):
                raise LoadError("a folder in its path was replaced by a symlink while read")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_whole(
    path: Path,
    limit: int,
    what: str = "this format",
    opener: Callable[[Path], contextlib.AbstractContextManager[BinaryIO]] | None = None,
) -> bytes:
    """A file that must be parsed at once (JSON, YAML, a notebook, HTML), refused with a
    reason above `limit` bytes, on disk or once decompressed, rather than exhaust memory."""
    size = path.stat().st_size
    if size > limit:
        raise LoadError(
            f"too large to parse whole ({size // MiB} MiB; the limit for {what} is "
            f"{limit // MiB} MiB)"
        )
    with (opener or open_file)(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise LoadError("too large to parse whole once decompressed")
    return data


def magic(handle: BinaryIO) -> bytes:
    """The first 8 bytes of an open file, its position left at the start."""
    head = handle.read(8)
    handle.seek(0)
    return head


def ole_streams(handle: BinaryIO) -> list[str]:
    """The names in an OLE compound file's directory (mapped, never read whole)."""
    import xlrd.compdoc

    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mem:
        try:
            doc = xlrd.compdoc.CompDoc(mem, logfile=io.StringIO())
        except Exception as exc:  # CompDocError and the struct errors of a torn file
            raise LoadError(f"corrupt: not a readable OLE file ({exc})") from None
        return [entry.name for entry in doc.dirlist]


def refuse_ole(handle: BinaryIO, legacy: str) -> None:
    """For an Office Open XML suffix: an OLE file is a password-protected one (it holds
    `EncryptionInfo`), else a legacy binary file renamed (`legacy`: .doc, .xls, .ppt)."""
    if magic(handle) != OLE_MAGIC:
        return
    names = ole_streams(handle)
    if "EncryptionInfo" in names or "EncryptedPackage" in names:
        raise LoadError("encrypted (password-protected)")
    raise LoadError(f"not an Office Open XML file (a legacy {legacy} file renamed?)")


def check_zip(
    archive: zipfile.ZipFile,
    max_total: int = MAX_TOTAL,
    before: Callable[[zipfile.ZipFile], None] | None = None,
) -> None:
    """LoadError for a zip bomb, an encrypted member or XML that declares entities;
    `before` runs once the sizes are known safe and before any member is read (an
    OpenDocument file's own encryption is told by its manifest)."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise LoadError(f"zip bomb: {len(members):,} members (the limit is {MAX_MEMBERS:,})")
    total = 0
    for info in members:
        if info.flag_bits & 0x1:
            raise LoadError("encrypted (password-protected)")
        total += info.file_size
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            raise LoadError(
                f"zip bomb: {info.filename} inflates {ratio:,}:1 (the limit is {MAX_RATIO}:1)"
            )
    if total > max_total:
        raise LoadError(
            f"zip bomb: {total // MiB:,} MiB once inflated (the limit is {max_total // MiB:,} MiB)"
        )
    if before is not None:
        before(archive)
    refuse_entities(archive)


def refuse_entities(archive: zipfile.ZipFile) -> None:
    """LoadError for an XML part that declares entities (they would come first in it)."""
    for info in archive.infolist():
        if info.filename.lower().endswith(XML_SUFFIXES):
            try:
                with archive.open(info) as member:
                    head = member.read(PROLOG_BYTES)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise LoadError(f"corrupt: {info.filename} ({exc})") from None
            if any(mark in head for mark in _ENTITY):
                raise LoadError(f"XML entity declarations (refused, in {info.filename})")


@contextlib.contextmanager
def open_zip(
    path: Path,
    max_total: int = MAX_TOTAL,
    legacy: str = "",
    before: Callable[[zipfile.ZipFile], None] | None = None,
) -> Iterator[zipfile.ZipFile]:
    """`path` as a checked zip archive (`check_zip`); a file that is no zip is corrupt.
    `legacy`: the Office Open XML family's old suffix, to tell an OLE file (`refuse_ole`)."""
    with open_file(path) as handle:
        if legacy:
            refuse_ole(handle, legacy)
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise LoadError(f"corrupt: not a zip archive ({exc})") from None
        with archive:
            check_zip(archive, max_total, before)
            yield archive


def read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """One member, whole: LoadError when it is missing or larger than `limit`."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise LoadError(f"corrupt: {name} is missing") from None
    if info.file_size > limit:
        raise LoadError(
            f"too large to parse whole ({name} is {info.file_size // MiB:,} MiB once inflated; "
            f"the limit is {limit // MiB:,} MiB)"
        )
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise LoadError(f"corrupt: {name} ({exc})") from None


def xml_only(archive: zipfile.ZipFile, limit: int) -> io.BytesIO:
    """A copy of `archive` with every non-XML member emptied (images, video, embedded
    objects, macros), for python-docx and python-pptx, which read every part into memory:
    memory then follows the text, not the media, and nothing but XML leaves the zip. Any
    XML part over `limit` is refused (it is parsed whole)."""
    copy = io.BytesIO()
    with zipfile.ZipFile(copy, "w", zipfile.ZIP_STORED) as out:
        for info in archive.infolist():
            xml = info.filename.lower().endswith(XML_SUFFIXES) or info.filename.startswith("[")
            out.writestr(info.filename, read_member(archive, info.filename, limit) if xml else b"")
    copy.seek(0)
    return copy


@contextlib.contextmanager
def as_corrupt(kind: str) -> Iterator[None]:
    """Whatever a library raises on a malformed file (KeyError for a missing part, lxml's
    syntax errors, AttributeError deep inside) becomes one skip reason: `corrupt: ...`.
    An OSError is the disk's, not the file's: it goes on as it is (`unreadable: ...`)."""
    try:
        yield
    except (LoadError, MemoryError, OSError):
        raise
    except RecursionError:
        raise LoadError(f"corrupt: not a readable {kind} (nested too deeply)") from None
    except Exception as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise LoadError(f"corrupt: not a readable {kind} ({detail})") from None
