"""Rich Text Format (.rtf), with striprtf, its structure marked before it is stripped.

striprtf gives plain text only; so before it runs, the control words that carry
structure are given a private-use character it passes through: paragraphs in a heading
style (the stylesheet's "heading N", or an outline level) and table cells and rows. The
text that comes out is then split back into headings, paragraphs and tables with their
header row. An RTF file is parsed whole, so one over `MAX_RTF` is skipped with its
reason; picture and object data (long hexadecimal runs) are dropped first, since they
are most of a large file and none of its text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from indexers.documents import Document, LoadError, decode
from indexers.formats.containers import MiB, as_corrupt, open_file
from indexers.formats.tables import TextBuilder, cell_text, one_line

MAX_RTF = 64 * MiB
HEADING = 0xE000  # + level (1-9)
CELL, ROW = "\ue010", "\ue011"
_MARKS = re.compile("[\ue000-\ue011]")
_HEADING_MARK = re.compile("[\ue001-\ue009]")
#: The control words that matter here; escaped backslashes and braces are matched too,
#: so `\\cell` (a backslash, then the word "cell") is never taken for one.
_TOKEN = re.compile(
    r"\\\\|\\[{}]|\\(s|outlinelevel|cell|row|nestcell|nestrow)(?![a-zA-Z])(-?\d+)? ?"
)
_HEX_RUN = re.compile(r"[0-9a-fA-F\r\n]{1024,}")
_STYLE = re.compile(r"\{\s*(?:\\\*)?\\s(\d+)(?![0-9])((?:[^{}]|\{[^{}]*\})*)\}")
_CONTROL = re.compile(r"\{[^{}]*\}|\\[a-zA-Z]+-?\d* ?|\\'[0-9a-fA-F]{2}|\\.")
_HEADING_NAME = re.compile(r"heading\s*([1-9])", re.IGNORECASE)
_OUTLINE = re.compile(r"\\outlinelevel(\d)")
_BRACE = re.compile(r"\\.|[{}]", re.DOTALL)  # an escape pair, or a brace
_TITLE = re.compile(r"\{\\title\s?((?:[^{}]|\{[^{}]*\})*)\}")


def _mark(level: int) -> str:
    """An RTF group that striprtf turns into the one private-use character `level`."""
    return "{\\uc1\\u" + str(level - 0x10000) + "?}"


def _group(text: str, word: str) -> str:
    """The `{\\word ...}` group of `text` (the stylesheet), braces matched; or ""."""
    start = text.find("{\\" + word)
    if start < 0:
        return ""
    depth = 0
    for match in _BRACE.finditer(text, start):
        if match.group() == "{":
            depth += 1
        elif match.group() == "}":
            depth -= 1
            if depth == 0:
                return text[start : match.end()]
    return text[start:]


def heading_styles(rtf: str) -> dict[str, int]:
    """Paragraph style number -> heading level, from the stylesheet's names and levels."""
    levels: dict[str, int] = {}
    for match in _STYLE.finditer(_group(rtf, "stylesheet")):
        body = match.group(2)
        name = _CONTROL.sub("", body)
        if name.strip(" ;").lower() == "title":
            levels[match.group(1)] = 1
        elif found := _HEADING_NAME.search(name):
            levels[match.group(1)] = int(found.group(1))
        elif found := _OUTLINE.search(body):
            levels[match.group(1)] = int(found.group(1)) + 1
    return levels


def marked(rtf: str, levels: dict[str, int]) -> str:
    """`rtf` with its heading paragraphs, cells and rows marked (see the module's doc)."""

    def replace(match: re.Match[str]) -> str:
        word, number = match.group(1), match.group(2) or ""
        if word is None:
            return match.group()
        if word == "s" and number in levels:
            return match.group() + _mark(HEADING + levels[number])
        if word == "outlinelevel" and number.isdigit() and int(number) < 9:
            return match.group() + _mark(HEADING + int(number) + 1)
        if word == "cell":
            return _mark(ord(CELL))
        if word == "row":
            return _mark(ord(ROW))
        if word in ("nestcell", "nestrow"):
            return " "
        return match.group()

    return _TOKEN.sub(replace, rtf)


def rtf_text(rtf: str) -> str:
    from striprtf.striprtf import rtf_to_text

    # `{\field{` would set striprtf's hyperlink pattern backtracking along the whole line
    # (hours on a one-line file); `\field {` means the same to RTF and keeps it linear.
    rtf = _HEX_RUN.sub("", rtf.replace("\\field{", "\\field {"))
    return rtf_to_text(rtf, errors="replace")


def load_rtf(path: Path, warnings: list[str]) -> Iterator[Document]:
    """An RTF file: one document, its headings and tables kept."""
    with open_file(path) as handle:
        data = handle.read(MAX_RTF + 1)
    if len(data) > MAX_RTF:
        raise LoadError(f"too large to parse whole (the limit for RTF is {MAX_RTF // MiB} MiB)")
    rtf = decode(data)
    if not rtf.lstrip().startswith("{\\rtf"):
        raise LoadError("corrupt: not an RTF file (it does not start with {\\rtf)")
    with as_corrupt("RTF file"):
        found = _TITLE.search(_group(rtf, "info"))
        title = one_line(rtf_text("{\\rtf1 " + found.group(1) + "}")) if found else ""
        builder = TextBuilder(title, path.name)
        add_plain(rtf_text(marked(rtf, heading_styles(rtf))), builder)
        yield from builder.parts(final=True)


def add_plain(text: str, builder: TextBuilder) -> None:
    """striprtf's output (with the marks) into `builder`: rows ended by ROW, their cells
    by CELL, between lines of text; a line with a heading mark is a heading."""
    rows: list[list[str]] = []
    start = 0
    for end in [m.start() for m in re.finditer(ROW, text)] + [len(text)]:
        segment = text[start:end]
        start = end + 1
        first = segment.find(CELL) if end < len(text) else -1
        cut = segment.rfind("\n", 0, first) + 1 if first >= 0 else len(segment)
        before, row = segment[:cut], segment[cut:]
        if before.strip():
            builder.table(rows)
            rows = []
            _lines(before, builder)
        if row:
            cells = row.split(CELL)
            rows.append([cell_text(_MARKS.sub("", c)) for c in cells[:-1] or cells])
    builder.table(rows)


def _lines(text: str, builder: TextBuilder) -> None:
    for line in text.split("\n"):
        mark = _HEADING_MARK.search(line)
        line = _MARKS.sub("", line).strip()
        if mark and line:
            builder.heading(ord(mark.group()) - HEADING, line)
        else:
            builder.paragraph(line)


SUFFIXES = {".rtf": load_rtf}
BINARY: frozenset[str] = frozenset()  # RTF is 7-bit text: discovery reads it already
