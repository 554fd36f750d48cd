"""File -> documents (text + title + anchor). One reader per format; any failure is a LoadError.

A file can hold several documents: a PDF gives one per page (citations name the
page), a JSONL file one per record (citations name the line). Text is decoded
whatever its encoding: UTF-8 (with or without BOM), UTF-16 with a BOM, else
cp1252/latin-1, which never fail, so a legacy file is read rather than rejected.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

TEXT_FIELDS = ("text", "contents", "content", "body")
TITLE_FIELDS = ("title", "name")


class LoadError(Exception):
    """This file cannot be indexed; the message is the skip reason shown to the user."""


@dataclass
class Document:
    """`anchor` locates the document inside its file (`page3`, `L12`, or "" for the whole file)."""

    text: str
    title: str
    anchor: str = ""
    headings: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Loaded:
    documents: list[Document]
    warnings: list[str] = field(default_factory=list)


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


def load_file(path: Path) -> Loaded:
    """Read one file into documents; raises LoadError with a short reason."""
    name = path.name.lower()
    reader = _reader_for(name)
    try:
        loaded = reader(path)
    except LoadError:
        raise
    except (OSError, ValueError, UnicodeError, EOFError) as exc:
        raise LoadError(f"unreadable: {type(exc).__name__}: {exc}") from None
    loaded.documents = [d for d in loaded.documents if d.text.strip()]
    if not loaded.documents:
        raise LoadError("no text")
    return loaded


def _reader_for(name: str) -> Callable[[Path], Loaded]:
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


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.lower().endswith(".gz") else data


def load_text(path: Path) -> Loaded:
    """Plain text and source code, read as-is; the title is the file name."""
    return Loaded([Document(_clean(decode(path.read_bytes())), path.name)])


_MD_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_MD_SETEXT = re.compile(r"^([^\n]*\S[^\n]*)\n(=+|-+)[ \t]*$", re.MULTILINE)
_RST_HEADING = re.compile(r"^([^\n]*\w[^\n]*)\n([=\-~^\"'`#*+<>:.]{3,})[ \t]*$", re.MULTILINE)


def _headed(path: Path, patterns: list[re.Pattern[str]]) -> Loaded:
    text = _clean(decode(path.read_bytes()))
    headings = sorted(
        (m.start(), m.group(2 if p is _MD_ATX else 1).strip())
        for p in patterns
        for m in p.finditer(text)
    )
    title = headings[0][1] if headings else path.name
    return Loaded([Document(text, title, headings=headings)])


def load_markdown(path: Path) -> Loaded:
    """Markdown: each chunk is titled by the nearest heading above it."""
    return _headed(path, [_MD_ATX, _MD_SETEXT])


def load_rst(path: Path) -> Loaded:
    return _headed(path, [_RST_HEADING])


class _TextOnly(HTMLParser):
    """Fallback HTML -> text when trafilatura finds no main content (tiny pages)."""

    SKIP = {"script", "style", "nav", "header", "footer", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self._skip += 1
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        if tag in {"p", "div", "br", "li", "h1", "h2", "h3", "tr", "title"}:
            self.parts.append("\n")
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif not self._skip:
            self.parts.append(data)


def load_html(path: Path) -> Loaded:
    """HTML: main text only (trafilatura drops menus, footers, scripts)."""
    html = decode(path.read_bytes())
    fallback = _TextOnly()
    fallback.feed(html)
    title = fallback.title or path.name
    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    text = trafilatura.extract(html, include_comments=False, include_tables=True)
    if not text or not text.strip():
        text = re.sub(r"\n\s*\n+", "\n\n", "".join(fallback.parts))
    return Loaded([Document(_clean(text).strip(), title)])


def load_pdf(path: Path) -> Loaded:
    """PDF: one document per page with text, so a citation can name the page."""
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF")
        title = ""
        meta = reader.metadata
        if meta is not None and meta.title:
            title = str(meta.title).strip()
        title = title or path.name
        docs = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            if text.strip():
                docs.append(Document(_clean(text), title, anchor=f"page{number}"))
    except LoadError:
        raise
    except (PyPdfError, KeyError, TypeError, AttributeError, ValueError, OSError) as exc:
        raise LoadError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    if not docs:
        raise LoadError("PDF has no extractable text (scanned?)")
    return Loaded(docs)


def record_document(record: Any, fallback_title: str, anchor: str) -> Document | None:
    """A JSON object with a text field -> a document; anything else -> None."""
    if not isinstance(record, dict):
        return None
    text = next((record[f] for f in TEXT_FIELDS if isinstance(record.get(f), str)), None)
    if not text or not text.strip():
        return None
    title = next((record[f] for f in TITLE_FIELDS if isinstance(record.get(f), str)), "")
    return Document(_clean(text), title.strip() or fallback_title, anchor=anchor)


def load_jsonl(path: Path) -> Loaded:
    """JSON Lines (optionally gzipped): each record with a text field is its own document."""
    docs: list[Document] = []
    bad = 0
    for number, line in enumerate(decode(_read_bytes(path)).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        doc = record_document(record, f"{path.name} line {number}", f"L{number}")
        if doc is None:
            bad += 1
        else:
            docs.append(doc)
    if not docs:
        raise LoadError(f"no records with a text field ({'/'.join(TEXT_FIELDS)})")
    warnings = [f"{bad} record(s) without a text field or not JSON"] if bad else []
    return Loaded(docs, warnings)


def load_json(path: Path) -> Loaded:
    """A JSON object with a text field, or a list of such objects."""
    try:
        data = json.loads(decode(_read_bytes(path)))
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON ({exc})") from None
    records = data if isinstance(data, list) else [data]
    docs = []
    for i, record in enumerate(records):
        anchor = f"item{i}" if isinstance(data, list) else ""
        doc = record_document(record, path.name, anchor)
        if doc is not None:
            docs.append(doc)
    if not docs:
        raise LoadError(f"no text field ({'/'.join(TEXT_FIELDS)})")
    skipped = len(records) - len(docs)
    return Loaded(docs, [f"{skipped} item(s) without a text field"] if skipped else [])
