"""File -> documents (text + title + anchor). One reader per format; any failure is a LoadError.

A file can hold several documents: a PDF gives one per page (citations name the
page), a JSONL file one per record (citations name the line; a record is read as
`indexers.formats.structured` reads any JSON value). Text is decoded
whatever its encoding: UTF-8 (with or without BOM), UTF-16 with a BOM, else
cp1252/latin-1, which never fail, so a legacy file is read rather than rejected.

Readers stream: `iter_documents` yields documents as it reads, and a long text file
comes as consecutive parts of one document (each with its offset), so reading a file
never holds more than a part of it in memory. Formats that must be parsed whole (JSON,
HTML) are refused above `WHOLE_FILE_LIMIT` with a reason, rather than exhaust memory.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from indexers.discovery import MAX_FILE_BYTES, open_regular
from indexers.documents import (
    Document,
    Heading,
    LoadError,
    Section,
    clean,
    decode,
    is_prose,
    reads_as_title,
    section_after,
)
from indexers.formats.containers import read_whole
from indexers.formats.structured import Budget, record_document, value_documents
from indexers.pdf_scans import PdfScans
from rag.core.html_text import parse_html

#: Text is read this many bytes at a time and handed on in parts of about this size.
READ_BYTES = 1 << 20
#: JSON and HTML are parsed whole (json.loads, trafilatura): above this size they would
#: take gigabytes, so such a file is skipped with its reason instead.
WHOLE_FILE_LIMIT = 32 * 1024 * 1024
#: A JSON Lines record longer than this is skipped (counted in the file's warning).
MAX_RECORD_BYTES = 16 * 1024 * 1024
#: A `.jsonl.gz` is read up to this many bytes once decompressed, the size limit of any
#: file: a gzip bomb (1 MB of zeros inflates to 1 GB) is skipped, not inflated for hours.
MAX_DECOMPRESSED_BYTES = MAX_FILE_BYTES


@dataclass
class Loaded:
    documents: list[Document]
    warnings: list[str] = field(default_factory=list)


def iter_documents(path: Path, warnings: list[str]) -> Iterator[Document]:
    """The documents of one file as they are read; `warnings` collects what was skipped
    inside it. Raises LoadError (also part-way through) with a short reason."""
    reader = _reader_for(path.name.lower())
    found = False
    try:
        for doc in reader(path, warnings):
            if doc.text.strip():
                found = True
                yield doc
    except LoadError:
        raise
    except (OSError, ValueError, UnicodeError, EOFError) as exc:
        raise LoadError(f"unreadable: {type(exc).__name__}: {exc}") from None
    if not found:
        raise LoadError("no text")


def load_file(path: Path) -> Loaded:
    """Read one whole file into documents (small files, tests); see `iter_documents`."""
    warnings: list[str] = []
    return Loaded(list(iter_documents(path, warnings)), warnings)


Reader = Callable[[Path, list[str]], Iterator[Document]]


def _reader_for(name: str) -> Reader:
    from indexers.formats import reader_for

    found = reader_for(name)
    if found is not None:
        return found
    if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
        return load_jsonl
    if name.endswith((".json", ".json.gz")):
        return load_json
    if name.endswith((".md", ".markdown")):
        return load_markdown
    if name.endswith(".rst"):
        return load_rst
    if name.endswith((".html", ".htm", ".xhtml")):
        return load_html
    if name.endswith(".pdf"):
        return load_pdf
    if name.endswith(".gz"):
        raise LoadError("compressed file of unknown type")
    return load_text


@contextlib.contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    """A file being indexed (decompressed if `.gz`), opened only if it is still a regular
    file: one swapped for a FIFO or a device since discovery raises OSError (`open_regular`)."""
    with open_regular(path) as raw:
        if path.name.lower().endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped
        else:
            yield raw


def _read_whole(path: Path) -> bytes:
    """A file that must be parsed at once (`.gz` decompressed), refused above the limit."""
    return read_whole(path, WHOLE_FILE_LIMIT, opener=_open)


def text_encoding(path: Path) -> str:
    """The codec for a text file, decided from all of it but read a block at a time: UTF-8
    when every byte is valid UTF-8, else cp1252, else latin-1 (which never fails)."""
    with open_regular(path) as handle:
        head = handle.read(4)
        if head.startswith(b"\xef\xbb\xbf"):
            return "utf-8-sig"
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return "utf-16"
        for encoding in ("utf-8", "cp1252"):
            handle.seek(0)
            decoder = codecs.getincrementaldecoder(encoding)()
            try:
                while block := handle.read(READ_BYTES):
                    decoder.decode(block)
                decoder.decode(b"", final=True)
                return encoding
            except UnicodeDecodeError:
                continue
    return "latin-1"


def stream_text(path: Path) -> Iterator[tuple[int, str]]:
    """(offset, text) parts of a text file, cleaned, each ending at a line break when it can."""
    decoder = codecs.getincrementaldecoder(text_encoding(path))(errors="replace")
    offset, carry = 0, ""
    with open_regular(path) as handle:
        while True:
            block = handle.read(READ_BYTES)
            text = carry + decoder.decode(block, final=not block)
            if block and text.endswith("\r"):  # a \r\n may straddle the blocks
                text, carry = text[:-1], "\r"
            else:
                carry = ""
            text = clean(text)
            if block:
                cut = text.rfind("\n") + 1 or len(text)
                if cut < len(text) // 2:  # no line break worth waiting for
                    cut = len(text)
                text, carry = text[:cut], text[cut:] + carry
            if text:
                yield offset, text
                offset += len(text)
            if not block:
                return


def load_text(path: Path, warnings: list[str]) -> Iterator[Document]:
    """Plain text and source code, read as-is; titled by a first line that reads as a
    title (an article's name), else the file name."""
    prose = is_prose(path.name)
    title = ""
    for offset, text in stream_text(path):
        title = title or (reads_as_title(text) if prose else "") or path.name
        yield Document(text, title, offset=offset)


# Linear in the line's length: a line is matched whole and its content checked by a
# lookahead, never split two ways (`[^\n]*\S[^\n]*`, `(.+?)[ \t#]*$`), which backtracks
# quadratically: a 100 KB line (an inline base64 image) took a minute, a 1 MB one hours.
_MD_ATX = re.compile(r"^(#{1,6})[ \t]+([^\n]+)$", re.MULTILINE)
_MD_SETEXT = re.compile(r"^(?=[^\n]*\S)([^\n]+)\n(=+|-+)[ \t]*$", re.MULTILINE)
_RST_HEADING = re.compile(r"^(?=[^\n]*\w)([^\n]+)\n([=\-~^\"'`#*+<>:.]{3,})[ \t]*$", re.MULTILINE)


def _heading(pattern: re.Pattern[str], match: re.Match[str], underlines: list[str]) -> Heading:
    """(offset, level, text). ATX: level by its hashes; setext: `=` 1, `-` 2; reST: by the
    order its underline characters first appear in the file, as reST itself decides."""
    if pattern is _MD_ATX:
        text = match.group(2)  # closing hashes and spaces are not part of an ATX heading
        return match.start(), len(match.group(1)), (text.rstrip(" \t#") or text[:1]).strip()
    if pattern is _MD_SETEXT:
        return match.start(), 1 if match.group(2).startswith("=") else 2, match.group(1).strip()
    mark = match.group(2)[0]
    if mark not in underlines:
        underlines.append(mark)
    return match.start(), min(underlines.index(mark) + 1, 6), match.group(1).strip()


def _headed(path: Path, patterns: list[re.Pattern[str]]) -> Iterator[Document]:
    """A text with headings: titled by its first heading (else the file name); each part
    knows the section it starts in, so every chunk gets its section path."""
    title = ""
    section: Section = ()
    underlines: list[str] = []
    for offset, text in stream_text(path):
        headings = sorted(_heading(p, m, underlines) for p in patterns for m in p.finditer(text))
        if not title:
            title = headings[0][2] if headings else reads_as_title(text) or path.name
        yield Document(text, title, headings=headings, offset=offset, section=section)
        section = section_after(section, headings)


def load_markdown(path: Path, warnings: list[str]) -> Iterator[Document]:
    """Markdown: each chunk is titled by the nearest heading above it."""
    return _headed(path, [_MD_ATX, _MD_SETEXT])


def load_rst(path: Path, warnings: list[str]) -> Iterator[Document]:
    return _headed(path, [_RST_HEADING])


def load_html(path: Path, warnings: list[str]) -> Iterator[Document]:
    """HTML: main text only (trafilatura drops menus, footers, scripts)."""
    html = decode(_read_whole(path))
    fallback = parse_html(html, skip_boilerplate=True)  # the title, and the text if need be
    title = fallback.title or path.name
    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    text = trafilatura.extract(html, include_comments=False, include_tables=True)
    if not text or not text.strip():
        text = fallback.text
    yield Document(clean(text).strip(), title)


#: pypdf keeps every object it has read, decoded page contents included (about 4.5 KB a
#: page of text: 9 MB more by page 2,000); they are let go every this many pages, and
#: read again from the file if a later page shares them (fonts).
PDF_CACHE_PAGES = 64


def _forget_objects(reader: Any) -> None:
    cache = getattr(reader, "resolved_objects", None)
    if isinstance(cache, dict):
        cache.clear()


def _forget_page(reader: Any, index: int) -> None:
    """Let go of a page read: pypdf keeps every page object it made, with what reading it
    cached (about 4 KB a page: 80 MB by page 20,000). Pages are read in order, once."""
    pages = getattr(reader, "flattened_pages", None)
    if isinstance(pages, list) and index < len(pages):
        pages[index] = None


def load_pdf(path: Path, warnings: list[str]) -> Iterator[Document]:
    """PDF: one document per page with text, so a citation can name the page; a page with
    no text layer is read by OCR (`indexers.pdf_scans`)."""
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    found = False
    scans = PdfScans(path)  # pages with no text layer, read by OCR
    try:
        with open_regular(path) as handle:  # pypdf reads pages from it lazily
            reader = PdfReader(handle)
            if reader.is_encrypted and not reader.decrypt(""):
                raise LoadError("encrypted PDF")
            title = ""
            meta = reader.metadata
            if meta is not None and meta.title:
                title = str(meta.title).strip()
            title = title or path.name
            for number, page in enumerate(reader.pages, start=1):
                if number % PDF_CACHE_PAGES == 0:
                    _forget_objects(reader)
                text = page.extract_text() or ""
                _forget_page(reader, number - 1)
                del page
                if not text.strip():
                    text = scans.text(number)
                if text.strip():
                    found = True
                    yield Document(clean(text), title, anchor=f"page={number}")
    except LoadError:
        raise
    except (PyPdfError, KeyError, TypeError, AttributeError, ValueError, OSError) as exc:
        raise LoadError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    finally:
        scans.close()
    scans.finish(found, warnings)
    if not found:
        raise LoadError("PDF has no extractable text")


def _lines(handle: IO[bytes]) -> Iterator[bytes | None]:
    """The lines of a binary stream; None for a line longer than MAX_RECORD_BYTES (skipped
    without ever holding it whole). LoadError past MAX_DECOMPRESSED_BYTES."""

    def read(size: int) -> bytes:
        if handle.tell() > MAX_DECOMPRESSED_BYTES:
            limit = MAX_DECOMPRESSED_BYTES // (1024 * 1024)
            raise LoadError(f"too large once decompressed (over {limit} MiB)")
        return handle.readline(size)

    while True:
        line = read(MAX_RECORD_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_RECORD_BYTES and not line.endswith(b"\n"):
            while (rest := read(READ_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def load_jsonl(path: Path, warnings: list[str]) -> Iterator[Document]:
    """JSON Lines (optionally gzipped): each record is its own document (its text field,
    else all its values with their keys), read one line at a time."""
    bad = good = empty = long = number = 0
    damaged = ""
    with _open(path) as raw:
        handle: Any = raw
        if raw.peek(2)[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 (PowerShell's Out-File):
            # read as UTF-8 lines; a bad unit is U+FFFD, so one record at most goes bad
            handle = codecs.EncodedFile(raw, "utf-8", "utf-16", errors="replace")
        lines = enumerate(_lines(handle), start=1)
        while True:
            try:
                number, line = next(lines)
            except StopIteration:
                break
            except gzip.BadGzipFile as exc:  # bytes after the last member that are no
                if not str(exc).startswith("Not a gzipped file") or not good:  # member:
                    raise
                damaged = f"{type(exc).__name__}: {exc}"  # the records read are kept
                break
            if line is None:
                long += 1
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(decode(line))
                doc = record_document(
                    record, f"{path.name} line {number}", f"L{number}", Budget(len(line))
                )
            except (ValueError, RecursionError, LoadError):  # one bad record (a 5000-digit
                bad += 1  # number too), not a bad file
                continue
            if doc is None:
                empty += 1
            else:
                good += 1
                yield doc
    if not good:
        raise LoadError("no JSON records with text")
    if damaged:
        warnings.append(f"bytes after the gzip data (after line {number}) ignored ({damaged})")
    if bad:
        warnings.append(f"{bad} record(s) not JSON (or nested too deeply)")
    if empty:
        warnings.append(f"{empty} record(s) with no text")
    if long:
        limit = MAX_RECORD_BYTES // (1024 * 1024)
        warnings.append(f"{long} record(s) longer than {limit} MiB skipped")


def load_json(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A JSON document: a record with a text field is that text, anything else all its
    values with their keys; a list of objects one document per item (`item=N`)."""
    text = decode(_read_whole(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON ({exc})") from None
    except RecursionError:
        raise LoadError("invalid JSON (nested too deeply to read)") from None
    yield from value_documents(data, path.name, len(text))
