"""Text with its structure kept, for every format reader: headings recorded where they
stand (each chunk's section path), paragraphs apart, and tables as Markdown pipe rows.

A table is cut into groups of rows of at most `GROUP_CHARS` characters, each its own
paragraph that repeats the header row, and the chunker keeps paragraphs whole: so every
chunk of a table carries its column names (a passage "| Q3 | 4 100 |" says nothing
without "| Quarter | Revenue |"). Long texts and sheets come out in parts of about
`PART_CHARS` characters, each a `Document` with its offset and the section it starts in,
so a 200 MB spreadsheet is never held whole.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from indexers.documents import Document, Heading, Section, clean, reads_as_title, section_after

#: The most characters of one group of table rows (header included)...
GROUP_CHARS = 700
#: ... and the most word pieces, estimated (`estimate_tokens`): a chunk holds 230, so a
#: group of numbers (two or three characters a piece) is never split from its header.
GROUP_TOKENS = 190
#: A document is handed on in parts of about this many characters.
PART_CHARS = 1 << 18
_SPACES = re.compile(r"\s+")
_PLAIN = re.compile(r"(?:[^\s|]+(?: [^\s|]+)*)?")


def cell_text(value: Any) -> str:
    """A cell's value as a reader sees it: numbers without a spurious `.0` (15 significant
    digits, as a spreadsheet shows), dates in ISO form, one line, pipes escaped."""
    kind = type(value)
    if kind is str:
        text = value
    elif value is None:
        return ""
    elif kind is int:
        return str(value)
    elif kind is bool:
        return "TRUE" if value else "FALSE"
    elif kind is float:
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.15g}"
    elif isinstance(value, dt.datetime):
        text = value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    elif isinstance(value, (dt.date, dt.time)):
        text = value.isoformat()
    else:
        text = str(value)
    if _PLAIN.fullmatch(text):  # the common case: one line, single spaces, no pipe
        return text
    return _SPACES.sub(" ", text).strip().replace("|", "\\|")


def trimmed(cells: Sequence[str]) -> list[str]:
    """A row without its trailing empty cells."""
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return list(cells[:end])


def estimate_tokens(text: str) -> int:
    """About how many word pieces a MiniLM-like tokenizer makes of `text`, on the high
    side: one per word (a pipe is one), and more for digits, for letters and for each
    non-ASCII character. Calibrated on table rows of numbers, dates, words and IDs."""
    ascii_text = text.encode("ascii", "ignore")
    digits = len(ascii_text) - len(ascii_text.translate(None, b"0123456789"))
    extra = len(text) - len(ascii_text)
    return int(len(text.split()) + 0.3 * digits + 0.25 * len(ascii_text)) + extra


def pipe_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


class TableGroups:
    """Rows in, paragraphs of at most GROUP_CHARS (and GROUP_TOKENS) out, each starting
    with the header (the first non-empty row) and its `| --- |` rule."""

    def __init__(self, limit: int = GROUP_CHARS, max_tokens: int = GROUP_TOKENS) -> None:
        self.limit = limit
        self.max_tokens = max_tokens
        self.header: list[str] | None = None
        self.head = ""
        self.head_tokens = 0
        self.rows: list[str] = []
        self.size = 0
        self.tokens = 0
        self.given = False  # a group went out: the header is not given alone at the end

    def add(self, cells: Sequence[str]) -> str | None:
        """Add one row (cells already `cell_text`); a finished group when this row starts
        the next one."""
        cells = trimmed(cells)
        if not any(cells):
            return None
        if self.header is None:
            self.header = cells
            self.head = pipe_row(cells) + "\n" + pipe_row(["---"] * len(cells))
            self.head_tokens = estimate_tokens(self.head)
            return None
        line = pipe_row(cells + [""] * (len(self.header) - len(cells)))
        tokens = estimate_tokens(line)
        done = None
        if self.rows and (
            len(self.head) + self.size + len(line) + 1 > self.limit
            or self.head_tokens + self.tokens + tokens > self.max_tokens
        ):
            done = self.flush()
        self.rows.append(line)
        self.size += len(line) + 1
        self.tokens += tokens
        return done

    def flush(self) -> str | None:
        """The group being filled; the header alone for a table of one row."""
        if self.header is None or (not self.rows and self.given):
            return None
        text = "\n".join([self.head, *self.rows])
        self.rows, self.size, self.tokens, self.given = [], 0, 0, True
        return text


def table_paragraphs(rows: Iterable[Sequence[str]], limit: int = GROUP_CHARS) -> list[str]:
    """A whole table as its groups of rows (see `TableGroups`)."""
    groups = TableGroups(limit)
    out = [g for row in rows if (g := groups.add(row))]
    last = groups.flush()
    return out + [last] if last else out


def one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


class TextBuilder:
    """Paragraphs, headings and tables in, `Document` parts out (`parts`).

    The title is `title` (the file's metadata) if given, else the first heading, else a
    first line that reads as a title, else `name`; it is settled when the first part is
    handed on, the same for every part after. `section` is where the text starts (a
    slide's or a chapter's title); `level_shift` pushes the text's own headings below it.
    """

    def __init__(
        self,
        title: str,
        name: str,
        *,
        anchor: str = "",
        section: Section = (),
        level_shift: int = 0,
    ) -> None:
        self.title = one_line(title)
        self.name = name
        self.anchor = anchor
        self.section = section
        self.level_shift = level_shift
        self.blocks: list[str] = []
        self.size = 0
        self.headings: list[Heading] = []
        self.first_heading = ""
        self.offset = 0

    def paragraph(self, text: str) -> None:
        text = clean(text).strip()
        if text:
            self.blocks.append(text)
            self.size += len(text) + 2

    def heading(self, level: int, text: str) -> None:
        text = one_line(text)
        if not text:
            return
        self.first_heading = self.first_heading or text
        self.headings.append((self.size, level + self.level_shift, text))
        self.paragraph(text)

    def table(self, rows: Iterable[Sequence[str]]) -> None:
        for group in table_paragraphs(rows):
            self.paragraph(group)

    def parts(self, final: bool = False) -> Iterator[Document]:
        """The text gathered so far as a Document, once it reaches PART_CHARS (or at the end)."""
        if not self.blocks or (not final and self.size < PART_CHARS):
            return
        text = "\n\n".join(self.blocks)
        if not self.title:
            self.title = self.first_heading or reads_as_title(text) or self.name
        yield Document(
            text + "\n\n",
            self.title,
            anchor=self.anchor,
            headings=self.headings,
            offset=self.offset,
            section=self.section,
        )
        self.section = section_after(self.section, self.headings)
        self.offset += len(text) + 2
        self.blocks, self.size, self.headings = [], 0, []
