"""Word (.docx, .docm) and PowerPoint (.pptx, .pptm) files, with python-docx and
python-pptx.

A Word file is one document whose headings (the Heading 1-9 and Title styles, or any
paragraph or style with an outline level) give each chunk its section path, and whose
tables stay tables (`tables`); a page number is not knowable without laying the text
out, so none is made up. A deck is one document per slide (`slide=N`), the slide's
title its section, its speaker notes after its text ("Notes: ..."). The libraries get a
copy of the zip with only its XML (`containers.xml_only`): images, video, embedded
objects and macros (`vbaProject.bin`) never leave the archive, let alone run; a
macro-enabled file is read as the data it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from indexers.documents import Document
from indexers.formats.containers import MiB, as_corrupt, open_zip, xml_only
from indexers.formats.tables import TextBuilder, cell_text, one_line

#: The largest XML part parsed whole (word/document.xml, one slide): about 30,000 pages.
MAX_PART = 128 * MiB
#: Main parts python-docx reads as a document beyond plain .docx: macro-enabled, templates.
WORD_MAIN_TYPES = (
    "application/vnd.ms-word.document.macroEnabled.main+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
)
#: What PowerPoint itself puts in an untitled deck's properties: not a title.
DEFAULT_TITLES = frozenset({"PowerPoint Presentation", "PowerPoint-Präsentation"})
_HEADING_STYLE = re.compile(r"heading ([1-9])")


def load_docx(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A Word file: its paragraphs, headings and tables in reading order."""
    with open_zip(path, legacy=".doc") as archive:
        copy = xml_only(archive, MAX_PART)
    with as_corrupt("Word file"):
        document = _word_document(copy)
        builder = TextBuilder(document.core_properties.title or "", path.name)
        yield from _word_blocks(document, document.element.body, builder, _Levels(document))
        yield from builder.parts(final=True)


def _word_document(stream: Any) -> Any:
    from docx.opc.part import PartFactory
    from docx.package import Package
    from docx.parts.document import DocumentPart

    for content_type in WORD_MAIN_TYPES:
        PartFactory.part_type_for.setdefault(content_type, DocumentPart)
    part = Package.open(stream).main_document_part
    if not isinstance(part, DocumentPart):
        raise ValueError(f"its main part is {part.content_type}")
    return part.document


class _Levels:
    """A paragraph's heading level (or 0) from its style, looked up once per style."""

    def __init__(self, document: Any) -> None:
        from docx.oxml.ns import qn

        self.styles = document.styles.element
        self.outline = qn("w:outlineLvl")
        self.val = qn("w:val")
        self.cache: dict[str | None, int] = {}

    def of(self, p: Any) -> int:
        ppr = p.pPr
        own = ppr.find(self.outline) if ppr is not None else None
        if own is not None:
            return self._outline(own)
        style = p.style
        if style not in self.cache:
            self.cache[style] = self._style_level(style)
        return self.cache[style]

    def _outline(self, element: Any) -> int:
        value = element.get(self.val, "9")
        return int(value) + 1 if value.isdigit() and int(value) < 9 else 0

    def _style_level(self, style_id: str | None) -> int:
        seen: set[str] = set()
        while style_id and style_id not in seen:  # follow basedOn, never in a circle
            seen.add(style_id)
            style = self.styles.get_by_id(style_id)
            if style is None:
                return 0
            name = (style.name_val or "").lower()
            if name == "title":
                return 1
            if match := _HEADING_STYLE.fullmatch(name):
                return int(match.group(1))
            ppr = style.pPr
            own = ppr.find(self.outline) if ppr is not None else None
            if own is not None:
                return self._outline(own)
            style_id = style.basedOn_val
        return 0


def _word_blocks(
    document: Any, body: Any, builder: TextBuilder, levels: _Levels
) -> Iterator[Document]:
    """Paragraphs and tables of `body` in order, content controls (`w:sdt`) opened."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    p_tag, tbl_tag, sdt_tag, content = qn("w:p"), qn("w:tbl"), qn("w:sdt"), qn("w:sdtContent")
    for child in body.iterchildren():
        if child.tag == p_tag:
            text = Paragraph(child, document).text
            level = levels.of(child)
            if level:
                builder.heading(level, text)
            else:
                builder.paragraph(text)
        elif child.tag == tbl_tag:
            builder.table(_word_rows(Table(child, document)))
        elif child.tag == sdt_tag:
            inner = child.find(content)
            if inner is not None:
                yield from _word_blocks(document, inner, builder, levels)
        yield from builder.parts()


def _word_rows(table: Any) -> Iterator[list[str]]:
    for row in table.rows:
        yield [cell_text(_cell_value(cell)) for cell in row.cells]


def _cell_value(cell: Any) -> str:
    """A cell's paragraphs, and the cells of any table inside it, on one line."""
    parts = [p.text for p in cell.paragraphs]
    for inner in cell.tables:
        parts += [_cell_value(c) for row in inner.rows for c in row.cells]
    return " ".join(p for p in parts if p.strip())


def load_pptx(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A deck: one document per slide (`slide=N`), titled by the deck, its section the
    slide's title; hidden slides are read too, marked as such."""
    with open_zip(path, legacy=".ppt") as archive:
        copy = xml_only(archive, MAX_PART)
    with as_corrupt("PowerPoint file"):
        from pptx import Presentation

        deck = Presentation(copy)
        title = (deck.core_properties.title or "").strip()
        title = "" if title in DEFAULT_TITLES else title
        for number, slide in enumerate(deck.slides, start=1):
            heading = _slide_title(slide)
            title = title or heading or path.name
            if slide._element.get("show") in ("0", "false"):
                heading = f"{heading or f'Slide {number}'} (hidden slide)"
            builder = TextBuilder(
                title,
                path.name,
                anchor=f"slide={number}",
                section=((1, heading),) if heading else (),
            )
            if heading:
                builder.paragraph(heading)
            _shapes(slide.shapes, builder, skip=slide.shapes.title)
            if slide.has_notes_slide:
                frame = slide.notes_slide.notes_text_frame
                if frame is not None and frame.text.strip():
                    builder.paragraph("Notes: " + frame.text.strip())
            yield from builder.parts(final=True)


def _slide_title(slide: Any) -> str:
    shape = slide.shapes.title
    return one_line(shape.text_frame.text) if shape is not None and shape.has_text_frame else ""


def _shapes(shapes: Any, builder: TextBuilder, skip: Any = None) -> None:
    """Text frames, tables and groups in reading order (top to bottom, left to right)."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    def position(shape: Any) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=position):
        if skip is not None and shape.shape_id == skip.shape_id:
            continue
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            _shapes(shape.shapes, builder)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = shape.table.rows
            builder.table([cell_text(cell.text) for cell in row.cells] for row in rows)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            lines = [p.text for p in shape.text_frame.paragraphs]
            builder.paragraph("\n".join(line for line in lines if line.strip()))


SUFFIXES = {".docx": load_docx, ".docm": load_docx, ".pptx": load_pptx, ".pptm": load_pptx}
BINARY = frozenset(SUFFIXES)
