"""Readers for the formats people keep beyond plain text: Office and OpenDocument files,
e-books, mail, notebooks, tables, structured data, feeds and scans.

Each module reads one family with a well-kept library (imported inside its readers, so
this package stays light) and hands back `indexers.documents.Document`s with the structure
kept: a title, the section path (`Document.headings`/`section`), tables whose rows keep
their column headers, and an anchor that says where (`slide=4`, `sheet=Q3`, `page=12`).
`READERS` maps a file suffix to its reader; `indexers.loaders` asks it first, and
`indexers.discovery` reads binary files only of the suffixes here (`BINARY`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from indexers.documents import Document

Reader = Callable[[Path, list[str]], Iterator["Document"]]

# Each format module names its readers in `SUFFIXES` and its binary suffixes in `BINARY`;
# the modules import only the standard library at the top (the libraries load inside
# their readers), so importing this package stays cheap.
from indexers.formats import ebook, odf, office, rtf, sheets  # noqa: E402

_MODULES = (office, sheets, odf, ebook, rtf)
from indexers.formats import feeds, mail, notebook, structured, tabular  # noqa: E402

_MODULES += (mail, notebook, tabular, structured, feeds)  # mail, notebooks, tables, data, XML
from indexers.formats import images  # noqa: E402

_MODULES += (images,)  # scans and screenshots, read by OCR (indexers.ocr)
#: suffix -> reader, from the format modules.
READERS: dict[str, Reader] = {s: r for m in _MODULES for s, r in m.SUFFIXES.items()}
#: Suffixes of formats that are binary on disk (zip, OLE...) but read here.
BINARY: frozenset[str] = frozenset().union(*(m.BINARY for m in _MODULES))


def reader_for(name: str) -> Reader | None:
    """The reader for a file name (lower case), by its longest matching suffix."""
    for suffix in sorted(READERS, key=len, reverse=True):
        if name.endswith(suffix):
            return READERS[suffix]
    return None
