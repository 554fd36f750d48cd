"""What a reader makes of a file: `Document`s (text, title, section, where), and the
helpers every reader shares. Apart from `indexers.loaders` and `indexers.formats` so
both build on it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rag.core.safe_text import replace_surrogates


class LoadError(Exception):
    """This file cannot be indexed; the message is the skip reason shown to the user."""


#: A heading inside a document's text: (offset in `text`, level 1-6, its text).
Heading = tuple[int, int, str]
#: The headings in force at some point, outermost first: ((level, text), ...).
Section = tuple[tuple[int, str], ...]


@dataclass
class Document:
    """One document of a file. `title` is the document's own (its metadata, first heading,
    or a first line that reads as a title; else the file name), the same for every part of
    a long file. `anchor` says where it is inside its file as `key=value` pairs joined by
    `&` (`page=3`, `slide=4`, `sheet=Q3`; JSON Lines records keep `L12`, as code hosts
    cite lines; "" for the whole file). `headings` are
    those in `text`; `section` the ones in force where `text` starts (a later part of a long
    file, a slide's title): together they give each chunk its section path."""

    text: str
    title: str
    anchor: str = ""
    headings: list[Heading] = field(default_factory=list)
    offset: int = 0  # where `text` starts in the whole document (a part of a long file)
    section: Section = ()

    def __post_init__(self) -> None:
        # A JSON `"\ud800"` (or any reader's lone surrogate) would fail SQLite, the
        # tokenizer and every reply that carries the chunk: data keeps U+FFFD instead.
        # Every chunk repeats its title and section path, so each name is capped: one
        # 2 MB title made a 5 GB index.
        self.text = replace_surrogates(self.text)
        self.title = _name(self.title)
        self.headings = [(o, level, _name(h)) for o, level, h in self.headings]
        self.section = tuple((level, _name(h)) for level, h in self.section)


#: The most characters a title, a heading or a section name keeps.
TITLE_CAP = 200


def _name(text: str) -> str:
    return replace_surrogates(text[:TITLE_CAP])


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


def clean(text: str) -> str:
    """Line ends as `\n`, no NUL: what every reader hands on."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


#: Plain text whose first line may be its title (source code is named by its file). A
#: name with `.txt` before another suffix (`a1.txt.clean`, `notes.txt.bak`) is plain text too.
PROSE_SUFFIXES = frozenset({"", ".txt", ".text"})
#: A first line longer than this, or with more words, is a sentence, not a title.
TITLE_MAX_CHARS = 100
TITLE_MAX_WORDS = 12
_CODE_MARKS = ("{", "}", "=", "(", ")", "<", ">", "#!", "//", "\t")


def is_prose(name: str) -> bool:
    """Whether a file of this name is plain prose, whose first line may be its title."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    return not suffixes or any(s in PROSE_SUFFIXES for s in suffixes)


def _title_shaped(line: str) -> bool:
    """Short, with a letter, starting with a letter or digit, not ending like a sentence
    (., ;, :, ,), not code or markup."""
    return not (
        len(line) > TITLE_MAX_CHARS
        or len(line.split()) > TITLE_MAX_WORDS
        or not any(ch.isalpha() for ch in line)
        or not line[0].isalnum()
        or line[-1] in ".;:,"
        or any(mark in line for mark in _CODE_MARKS)
    )


def reads_as_title(text: str) -> str:
    """The first non-blank line of `text` when it reads as a title, else "". A title is
    short and shaped like one (`_title_shaped`), and is followed by its body: a blank line
    and more text (then it may be all lower case, as `kangaroo`), or at once by a line at
    least twice as long that does not start in lower case (a paragraph, not the next line
    of a wrapped sentence, a list, a table or a log, whose lines are alike). A wiki slug
    (`John_Adams`) reads with spaces. A title that says what a file is about gives every
    chunk its subject ("Amedeo Avogadro" for a chunk that says "he")."""
    lines = text[:16384].splitlines()
    first = next((i for i, line in enumerate(lines[:5]) if line.strip()), None)
    if first is None:
        return ""
    line = lines[first].strip()
    rest = [r.strip() for r in lines[first + 1 : first + 40]]
    body = next((r for r in rest if r), "")
    if not _title_shaped(line) or not body:
        return ""
    if rest[0]:  # no blank line: the body must start at once, and look like one
        if not (line[0].isupper() or line[0].isdigit()):
            return ""
        if body[0].islower() or len(body) < 2 * len(line):
            return ""
    if " " not in line and "_" in line.strip("_"):
        line = " ".join(line.replace("_", " ").split())
    return line


def section_after(section: Section, headings: list[Heading]) -> Section:
    """The section in force after `headings`, starting from `section`: a heading closes
    the ones of its level and deeper."""
    stack = list(section)
    for _, level, text in headings:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
    return tuple(stack)
