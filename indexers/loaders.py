"""File -> documents (text + title + anchor). One reader per format; any failure is a LoadError.

A file can hold several documents: a PDF gives one per page (citations name the
page), a JSONL file one per record (citations name the line). Text is decoded
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
from rag.core.html_text import parse_html
from rag.core.safe_text import replace_surrogates

TEXT_FIELDS = ("text", "contents", "content", "body")
TITLE_FIELDS = ("title", "name")
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


class LoadError(Exception):
    """This file cannot be indexed; the message is the skip reason shown to the user."""


@dataclass
class Document:
    """`anchor` locates the document inside its file (`page3`, `L12`, or "" for the whole file)."""

    text: str
    title: str
    anchor: str = ""
    headings: list[tuple[int, str]] = field(default_factory=list)
    offset: int = 0  # where `text` starts in the whole document (a part of a long file)

    def __post_init__(self) -> None:
        # A JSON `"\ud800"` (or any reader's lone surrogate) would fail SQLite, the
        # tokenizer and every reply that carries the chunk: data keeps U+FFFD instead.
        self.text = replace_surrogates(self.text)
        self.title = replace_surrogates(self.title)
        self.headings = [(level, replace_surrogates(h)) for level, h in self.headings]


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
    """A file that must be parsed at once, refused when it is too large for that."""
    size = path.stat().st_size
    if size > WHOLE_FILE_LIMIT:
        raise LoadError(
            f"too large to parse whole ({size // (1024 * 1024)} MiB; the limit for this "
            f"format is {WHOLE_FILE_LIMIT // (1024 * 1024)} MiB)"
        )
    with _open(path) as handle:
        data = handle.read(WHOLE_FILE_LIMIT + 1)
    if len(data) > WHOLE_FILE_LIMIT:
        raise LoadError("too large to parse whole once decompressed")
    return data


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
            text = _clean(text)
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


def decode(data: bytes) -> str:
    """Bytes -> str without ever failing on a legacy encoding."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def load_text(path: Path, warnings: list[str]) -> Iterator[Document]:
    """Plain text and source code, read as-is; the title is the file name."""
    for offset, text in stream_text(path):
        yield Document(text, path.name, offset=offset)


# Linear in the line's length: a line is matched whole and its content checked by a
# lookahead, never split two ways (`[^\n]*\S[^\n]*`, `(.+?)[ \t#]*$`), which backtracks
# quadratically: a 100 KB line (an inline base64 image) took a minute, a 1 MB one hours.
_MD_ATX = re.compile(r"^(#{1,6})[ \t]+([^\n]+)$", re.MULTILINE)
_MD_SETEXT = re.compile(r"^(?=[^\n]*\S)([^\n]+)\n(=+|-+)[ \t]*$", re.MULTILINE)
_RST_HEADING = re.compile(r"^(?=[^\n]*\w)([^\n]+)\n([=\-~^\"'`#*+<>:.]{3,})[ \t]*$", re.MULTILINE)


def _heading(pattern: re.Pattern[str], match: re.Match[str]) -> str:
    if pattern is not _MD_ATX:
        return match.group(1).strip()
    text = match.group(2)  # closing hashes and spaces are not part of an ATX heading
    return (text.rstrip(" \t#") or text[:1]).strip()


def _headed(path: Path, patterns: list[re.Pattern[str]]) -> Iterator[Document]:
    """Each part titled by the nearest heading above it (the first heading, before any)."""
    title = ""
    for offset, text in stream_text(path):
        headings = sorted((m.start(), _heading(p, m)) for p in patterns for m in p.finditer(text))
        if not title:
            title = headings[0][1] if headings else path.name
        yield Document(text, title, headings=headings, offset=offset)
        if headings:
            title = headings[-1][1]


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
    yield Document(_clean(text).strip(), title)


def load_pdf(path: Path, warnings: list[str]) -> Iterator[Document]:
    """PDF: one document per page with text, so a citation can name the page."""
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    found = False
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
                text = page.extract_text() or ""
                if text.strip():
                    found = True
                    yield Document(_clean(text), title, anchor=f"page{number}")
    except LoadError:
        raise
    except (PyPdfError, KeyError, TypeError, AttributeError, ValueError, OSError) as exc:
        raise LoadError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    if not found:
        raise LoadError("PDF has no extractable text (scanned?)")


def record_document(record: Any, fallback_title: str, anchor: str) -> Document | None:
    """A JSON object with a text field -> a document; anything else -> None."""
    if not isinstance(record, dict):
        return None
    text = next((record[f] for f in TEXT_FIELDS if isinstance(record.get(f), str)), None)
    if not text or not text.strip():
        return None
    title = next((record[f] for f in TITLE_FIELDS if isinstance(record.get(f), str)), "")
    return Document(_clean(text), title.strip() or fallback_title, anchor=anchor)


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
    """JSON Lines (optionally gzipped): each record with a text field is its own document,
    read one line at a time."""
    bad = good = long = 0
    with _open(path) as raw:
        handle: Any = raw
        if raw.peek(2)[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 (PowerShell's Out-File):
            handle = codecs.EncodedFile(raw, "utf-8", "utf-16")  # read as UTF-8 lines
        for number, line in enumerate(_lines(handle), start=1):
            if line is None:
                long += 1
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(decode(line))
            except (json.JSONDecodeError, RecursionError):  # one bad record, not a bad file
                bad += 1
                continue
            doc = record_document(record, f"{path.name} line {number}", f"L{number}")
            if doc is None:
                bad += 1
            else:
                good += 1
                yield doc
    if not good:
        raise LoadError(f"no records with a text field ({'/'.join(TEXT_FIELDS)})")
    if bad:
        warnings.append(f"{bad} record(s) without a text field or not JSON")
    if long:
        limit = MAX_RECORD_BYTES // (1024 * 1024)
        warnings.append(f"{long} record(s) longer than {limit} MiB skipped")


def load_json(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A JSON object with a text field, or a list of such objects."""
    try:
        data = json.loads(decode(_read_whole(path)))
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON ({exc})") from None
    except RecursionError:
        raise LoadError("invalid JSON (nested too deeply to read)") from None
    records = data if isinstance(data, list) else [data]
    found = 0
    for i, record in enumerate(records):
        anchor = f"item{i}" if isinstance(data, list) else ""
        doc = record_document(record, path.name, anchor)
        if doc is not None:
            found += 1
            yield doc
    if not found:
        raise LoadError(f"no text field ({'/'.join(TEXT_FIELDS)})")
    if found < len(records):
        warnings.append(f"{len(records) - found} item(s) without a text field")
