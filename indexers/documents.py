"""What a reader makes of a file: `Document`s (text, title, section, where), and the
helpers every reader shares. Apart from `indexers.loaders` and `indexers.formats` so
both build on it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field

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


#: Plain text whose first line may be its title (source code is named by its file).
PROSE_SUFFIXES = frozenset({"", ".txt", ".text"})
#: A first line longer than this, or with more words, is a sentence, not a title.
TITLE_MAX_CHARS = 100
TITLE_MAX_WORDS = 12


def reads_as_title(text: str) -> str:
    """The first non-blank line of `text` when it reads as a title: short, with a letter,
    not ending like a sentence (., ;, :, ,) nor starting like one continued (lower case,
    punctuation), not code or markup; else "". A title that says what a file is about
    gives every chunk its subject ("Amedeo Avogadro" for a chunk that says "he")."""
    for line in text.splitlines()[:5]:
        line = line.strip()
        if not line:
            continue
        words = line.split()
        if (
            len(line) > TITLE_MAX_CHARS
            or len(words) > TITLE_MAX_WORDS
            or not any(ch.isalpha() for ch in line)
            or line[-1] in ".;:,"
            or not (line[0].isupper() or line[0].isdigit())
            or any(mark in line for mark in ("{", "}", "=", "(", ")", "<", ">", "#!", "//"))
        ):
            return ""
        return line
    return ""


def section_after(section: Section, headings: list[Heading]) -> Section:
    """The section in force after `headings`, starting from `section`: a heading closes
    the ones of its level and deeper."""
    stack = list(section)
    for _, level, text in headings:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
    return tuple(stack)
