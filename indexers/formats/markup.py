"""XHTML (an EPUB's chapters) into a `TextBuilder`: headings h1-h6 where they stand,
paragraphs apart, tables as Markdown rows with their header.

`rag.core.html_text` gives a page's text but not its structure, which a chapter needs
for its section path and its tables; this is the same standard-library parser, which
never loads a DTD or expands an entity beyond HTML's own (`&amp;`, `&eacute;`).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from indexers.formats.tables import TextBuilder, cell_text, one_line

HIDDEN = frozenset({"head", "script", "style", "template", "noscript", "svg", "math"})
BLOCKS = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "blockquote", "pre", "section", "article"}
    | {"aside", "header", "footer", "figure", "figcaption", "hr", "body", "nav", "main"}
)
HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACES = re.compile(r"[ \t\r\n\f]+")


class _Blocks(HTMLParser):
    def __init__(self, builder: TextBuilder, skip_heading: str) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = builder
        self.skip_heading = one_line(skip_heading)
        self.hidden = 0
        self.text: list[str] = []
        self.heading = 0  # the level of the open heading
        self.tables = 0
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.pre = 0

    def flush(self) -> None:
        """The text gathered since the last block boundary, as a paragraph or heading."""
        raw = "".join(self.text)
        self.text = []
        lines = [(line if self.pre else _SPACES.sub(" ", line)).strip() for line in raw.split("\n")]
        text = "\n".join(line for line in lines if line)
        if not text:
            return
        if self.heading:
            if one_line(text) != self.skip_heading:
                self.builder.heading(self.heading, text)
        else:
            self.builder.paragraph(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in HIDDEN:
            self.hidden += 1
        elif self.hidden:
            return
        elif tag == "table":
            self.tables += 1
            if self.tables == 1:
                self.flush()
                self.rows = []
        elif self.tables:
            if self.tables == 1 and tag == "tr":
                self.rows.append([])
            elif self.tables == 1 and tag in ("td", "th"):
                self.cell = []
            elif tag == "br" and self.cell is not None:
                self.cell.append(" ")
        elif tag in HEADINGS:
            self.flush()
            self.heading = HEADINGS[tag]
        elif tag == "br":
            self.text.append("\n")
        elif tag in BLOCKS:
            self.flush()
            self.pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag in ("br", "hr") and not self.hidden:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif self.hidden:
            return
        elif tag == "table" and self.tables:
            self.tables -= 1
            if not self.tables:
                self._end_cell()
                self.builder.table(self.rows)
                self.rows = []
        elif self.tables:
            if self.tables == 1 and tag in ("td", "th"):
                self._end_cell()
        elif tag in HEADINGS and self.heading:
            self.flush()
            self.heading = 0
        elif tag in BLOCKS:
            self.flush()
            self.pre = max(self.pre - (tag == "pre"), 0)

    def _end_cell(self) -> None:
        if self.cell is not None:
            if not self.rows:
                self.rows.append([])
            self.rows[-1].append(cell_text("".join(self.cell)))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.tables:
            if self.cell is not None:
                self.cell.append(data)
        else:
            self.text.append(data)


def add_xhtml(markup: str, builder: TextBuilder, skip_heading: str = "") -> None:
    """The blocks of one XHTML document into `builder`; a heading that repeats
    `skip_heading` (the chapter's title, already its section) is not repeated."""
    parser = _Blocks(builder, skip_heading)
    parser.feed(markup)
    parser.close()
    if parser.tables:
        parser._end_cell()
        builder.table(parser.rows)
    parser.flush()
