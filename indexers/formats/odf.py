"""OpenDocument text, spreadsheets and presentations (.odt, .ods, .odp): the zip's
content.xml streamed through defusedxml's iterparse, never held whole.

Why not odfpy: it builds the whole document as Python objects before giving any text
(on a 1.3 MB .ods, 9x slower and 25x the memory, see benchmarks/formats.py), so a large
spreadsheet would cost gigabytes; iterparse hands each paragraph, cell and row over as it
ends and forgets it. defusedxml refuses entity declarations. A text document keeps its
headings (`text:h`, by outline level) and tables; a spreadsheet is one document per
sheet (`sheet=NAME`, hidden ones marked); a presentation one per slide (`slide=N`, its
title frame the section, its notes after the text). A password-protected file (the
manifest's `encryption-data`) is skipped as encrypted.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from indexers.documents import Document, LoadError
from indexers.formats.containers import (
    MAX_TOTAL_STREAMED,
    MiB,
    as_corrupt,
    open_zip,
    read_member,
)
from indexers.formats.sheets import sheet_documents
from indexers.formats.tables import TableGroups, TextBuilder, cell_text, one_line

NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
}


def q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


P, H, S, TAB, BREAK = q("text:p"), q("text:h"), q("text:s"), q("text:tab"), q("text:line-break")
TABLE, ROW, CELL = q("table:table"), q("table:table-row"), q("table:table-cell")
COVERED = q("table:covered-table-cell")
PAGE, NOTES, FRAME = q("draw:page"), q("presentation:notes"), q("draw:frame")
STYLE = q("style:style")
#: Text inside these is not the document's own: comments, deleted revisions, a table of
#: contents repeating the headings, a frame's caption text read where it stands.
NOT_TEXT = frozenset(
    q(n)
    for n in (
        "office:annotation",
        "text:tracked-changes",
        "text:table-of-content",
        "text:note-citation",
    )
)
#: The paragraph style of a document's title, read as its first heading (as in Word).
TITLE_STYLE = "Title"
#: A row or cell repeated more than this is read this many times (an .ods stores a sheet
#: of a million equal rows as one row repeated: read whole, it would never end).
MAX_REPEAT = 1000
MAX_COLUMNS = 1024


def _text(element: Any) -> str:
    """The text of a paragraph as shown: `text:s` spaces, tabs and line breaks kept, frames
    (read as their own paragraphs), notes' citations, comments and deletions left out."""
    parts = [element.text or ""]
    for child in element:
        tag = child.tag
        if tag == S:
            parts.append(" " * min(int(child.get(q("text:c"), "1") or 1), 100))
        elif tag == TAB:
            parts.append("\t")
        elif tag == BREAK:
            parts.append("\n")
        elif tag != FRAME and tag not in NOT_TEXT and tag != q("text:note"):
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _repeat(element: Any, attribute: str, limit: int) -> int:
    value = element.get(q(attribute), "1")
    return min(int(value), limit) if value.isdigit() and int(value) > 0 else 1


def _items(stream: Any) -> Iterator[tuple]:
    """content.xml as a stream of items: ("heading", level, text), ("paragraph", text,
    where) with where "title"/"notes"/"", ("table", name, hidden), ("row", cells), ("end",),
    ("page", number, hidden), ("page_end",). Each element is dropped once read."""
    from defusedxml.ElementTree import iterparse

    stack: list[Any] = []
    hidden_styles: set[str] = set()
    parents: dict[str, str] = {}  # automatic style -> the named style it is based on
    tables = 0  # open tables; only the outermost one's rows are rows
    skipped = 0  # open elements whose text is not the document's
    pages = 0
    row: list[str] = []
    for event, element in iterparse(stream, events=("start", "end")):
        tag = element.tag
        if event == "start":
            stack.append(element)
            if tag in NOT_TEXT:
                skipped += 1
            elif tag == TABLE:
                tables += 1
                if tables == 1:
                    hidden = element.get(q("table:style-name")) in hidden_styles
                    yield ("table", element.get(q("table:name"), ""), hidden)
            elif tag == PAGE:
                pages += 1
                yield ("page", pages, element.get(q("draw:style-name")) in hidden_styles)
            continue
        stack.pop()
        if tag in NOT_TEXT:
            skipped -= 1
            continue
        if skipped:
            continue
        if tag in (P, H) and not _in_cell(stack):
            style = element.get(q("text:style-name"), "")
            if tag == H:
                yield ("heading", _repeat(element, "text:outline-level", 10), _text(element))
            elif TITLE_STYLE in (style, parents.get(style)):
                yield ("heading", 1, _text(element))
            else:
                yield ("paragraph", _text(element), _where(stack))
        elif tag in (CELL, COVERED) and tables == 1:
            text = cell_text(" ".join(_text(p) for p in element.iter(P)) or _value(element))
            count = _repeat(element, "table:number-columns-repeated", MAX_COLUMNS)
            row.extend([text] * min(count, MAX_COLUMNS - len(row)))
        elif tag == ROW and tables == 1:
            if any(row):
                for _ in range(_repeat(element, "table:number-rows-repeated", MAX_REPEAT)):
                    yield ("row", row)
            row = []
        elif tag == TABLE:
            tables -= 1
            if tables:
                continue  # a table inside a cell: read as part of the cell's text
            yield ("end",)
        elif tag == PAGE:
            yield ("page_end",)
        elif tag == STYLE:
            name = element.get(q("style:name"), "")
            parents[name] = element.get(q("style:parent-style-name"), "")
            if any(_hides(props) for props in element):
                hidden_styles.add(name)
        else:
            continue
        element.clear()  # read: let it go (its parent keeps only what is still unread)
        if stack:
            stack[-1].remove(element)


def _in_cell(stack: list[Any]) -> bool:
    return any(e.tag == CELL or e.tag == COVERED for e in stack)


def _where(stack: list[Any]) -> str:
    for element in reversed(stack):
        if element.tag == NOTES:
            return "notes"
        if element.tag == FRAME and element.get(q("presentation:class")) == "title":
            return "title"
    return ""


def _value(cell: Any) -> str:
    for name in ("office:value", "office:date-value", "office:time-value", "office:boolean-value"):
        if value := cell.get(q(name)):
            return value
    return ""


def _hides(props: Any) -> bool:
    return (
        props.get(q("table:display")) == "false"
        or props.get(q("presentation:visibility")) == "hidden"
    )


@contextlib.contextmanager
def _open(path: Path) -> Iterator[tuple[str, Any]]:
    """(title, content.xml stream) of a checked, unencrypted OpenDocument file; content.xml
    is streamed, so the zip may inflate to as much as a spreadsheet's."""
    with open_zip(path, MAX_TOTAL_STREAMED, before=_refuse_encrypted) as zf:
        title = _meta_title(zf)
        try:
            stream = zf.open("content.xml")
        except KeyError:
            raise LoadError("corrupt: content.xml is missing") from None
        with stream:
            yield title, stream


def _refuse_encrypted(archive: zipfile.ZipFile) -> None:
    from defusedxml.ElementTree import fromstring

    if "META-INF/manifest.xml" not in archive.namelist():
        return
    with as_corrupt("OpenDocument manifest"):
        manifest = fromstring(read_member(archive, "META-INF/manifest.xml", 16 * MiB))
    if any(e.tag.endswith("}encryption-data") for e in manifest.iter()):
        raise LoadError("encrypted (password-protected)")


def _meta_title(archive: zipfile.ZipFile) -> str:
    from defusedxml.ElementTree import fromstring

    if "meta.xml" not in archive.namelist():
        return ""
    with as_corrupt("OpenDocument file"):
        meta = fromstring(read_member(archive, "meta.xml", 16 * MiB))
    found = meta.find(f".//{q('dc:title')}")
    return one_line(found.text or "") if found is not None else ""


def load_odt(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A text document: paragraphs, headings by outline level, tables with their header."""
    with _open(path) as (title, stream), as_corrupt("OpenDocument text"):
        builder = TextBuilder(title, path.name)
        groups: TableGroups | None = None
        for item in _items(stream):
            kind = item[0]
            if kind == "heading" and groups is None:
                builder.heading(item[1], item[2])
            elif kind == "paragraph" and groups is None:
                builder.paragraph(item[1])
            elif kind == "table":
                groups = TableGroups()
            elif kind == "row" and groups is not None:
                if group := groups.add(item[1]):
                    builder.paragraph(group)
            elif kind == "end" and groups is not None:
                if last := groups.flush():
                    builder.paragraph(last)
                groups = None
            yield from builder.parts()
        yield from builder.parts(final=True)


def load_ods(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A spreadsheet: one document per sheet, streamed a row at a time."""
    with _open(path) as (title, stream), as_corrupt("OpenDocument spreadsheet"):
        items = _items(stream)
        for item in items:
            if item[0] == "table":
                rows = _rows_until_end(items)
                yield from sheet_documents(
                    title or path.name, path.name, item[1], rows, hidden=item[2]
                )


def _rows_until_end(items: Iterator[tuple]) -> Iterator[list[str]]:
    for item in items:
        if item[0] == "row":
            yield item[1]
        elif item[0] == "end":
            return


def load_odp(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A presentation: one document per slide, its title frame its section, notes last."""
    with _open(path) as (title, stream), as_corrupt("OpenDocument presentation"):
        slide: list[tuple] = []
        number, hidden = 0, False
        for item in _items(stream):
            if item[0] == "page":
                slide, number, hidden = [], item[1], item[2]
            elif item[0] == "page_end":
                doc = _slide(slide, number, hidden, title, path.name)
                title = title or doc.title
                yield from [doc] if doc.text.strip() else []
            else:
                slide.append(item)


def _slide(items: list[tuple], number: int, hidden: bool, title: str, name: str) -> Document:
    heading = " ".join(one_line(i[1]) for i in items if i[0] == "paragraph" and i[2] == "title")
    heading = heading.strip()
    if hidden:
        heading = f"{heading or f'Slide {number}'} (hidden slide)"
    builder = TextBuilder(
        title or one_line(heading) or name,
        name,
        anchor=f"slide={number}",
        section=((1, heading),) if heading else (),
    )
    notes: list[str] = []
    groups: TableGroups | None = None
    for item in items:
        if item[0] == "paragraph" and item[2] == "notes":
            notes.append(item[1])
        elif item[0] in ("paragraph", "heading") and groups is None:
            builder.paragraph(item[-1] if item[0] == "heading" else item[1])
        elif item[0] == "table":
            groups = TableGroups()
        elif item[0] == "row" and groups is not None:
            if group := groups.add(item[1]):
                builder.paragraph(group)
        elif item[0] == "end" and groups is not None:
            if last := groups.flush():
                builder.paragraph(last)
            groups = None
    if any(n.strip() for n in notes):
        builder.paragraph("Notes: " + "\n".join(n for n in notes if n.strip()))
    docs = list(builder.parts(final=True))
    return docs[0] if docs else Document("", builder.title or name)


SUFFIXES = {".odt": load_odt, ".ods": load_ods, ".odp": load_odp}
BINARY = frozenset(SUFFIXES)
