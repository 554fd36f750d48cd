"""Spreadsheets: Excel (.xlsx, .xlsm with openpyxl; .xls with xlrd), and the table of
rows every sheet becomes (`sheet_documents`, OpenDocument's too).

One document per sheet (`sheet=NAME`), its rows a Markdown table whose header is the
sheet's first non-empty row, cut into groups of rows that each repeat it. Formulas give
their cached values (what the sheet shows when last saved; nothing is computed, no macro
runs). Hidden sheets are read, marked "(hidden sheet)" in their section. openpyxl reads
in read-only mode, a row at a time, and a long sheet is handed on in parts: memory stays
flat however large the workbook. An .xls holds at most 65,536 rows of 256 columns; xlrd
reads one sheet at a time and lets it go.
"""

from __future__ import annotations

import io
import mmap
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from indexers.documents import Document, LoadError
from indexers.formats.containers import (
    MAX_TOTAL_STREAMED,
    OLE_MAGIC,
    ZIP_MAGIC,
    as_corrupt,
    check_zip,
    magic,
    open_file,
    refuse_ole,
)
from indexers.formats.tables import TableGroups, TextBuilder, cell_text, one_line


def sheet_anchor(name: str) -> str:
    """`sheet=NAME`, with the characters an anchor uses (`&`, `%`, `#`) percent-encoded."""
    return "sheet=" + quote(name, safe=" !$'()*+,-./:;<=>?@[]^_`{|}~")


def sheet_documents(
    title: str, name: str, sheet: str, rows: Iterable[Sequence[Any]], hidden: bool = False
) -> Iterator[Document]:
    """One sheet's rows (cell values) as consecutive parts of one document."""
    label = one_line(sheet) or "Sheet"
    builder = TextBuilder(
        title,
        name,
        anchor=sheet_anchor(sheet),
        section=((1, label + (" (hidden sheet)" if hidden else "")),),
    )
    groups = TableGroups()
    for row in rows:
        if group := groups.add([cell_text(v) for v in row]):
            builder.paragraph(group)
            yield from builder.parts()
    if last := groups.flush():
        builder.paragraph(last)
    yield from builder.parts(final=True)


def load_xlsx(path: Path, warnings: list[str]) -> Iterator[Document]:
    """An Excel workbook, one sheet at a time, a row at a time."""
    with open_file(path) as handle:
        refuse_ole(handle, ".xls")
        yield from _xlsx(handle, path)


def _xlsx(handle: Any, path: Path) -> Iterator[Document]:
    try:
        with zipfile.ZipFile(handle) as archive:
            check_zip(archive, MAX_TOTAL_STREAMED)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise LoadError(f"corrupt: not a zip archive ({exc})") from None
    handle.seek(0)
    with as_corrupt("Excel workbook"):
        from openpyxl import load_workbook

        _forget_read_rows()

        book = load_workbook(handle, read_only=True, data_only=True, keep_links=False)
        try:
            title = (book.properties.title or "").strip() or path.name
            for sheet in book.worksheets:
                sheet.reset_dimensions()  # trust the cells, not the size a writer recorded
                rows = sheet.iter_rows(values_only=True)
                hidden = sheet.sheet_state != "visible"
                yield from sheet_documents(title, path.name, sheet.title, rows, hidden)
        finally:
            book.close()


def _forget_read_rows() -> None:
    """openpyxl's read-only sheets clear each row's XML element once read but leave it in
    the tree, about 80 bytes a row: 350 MB for a 200 MB workbook. Its worksheet parser
    gets an iterparse that also takes each row out of the tree once it has been handed
    on, so memory stays flat. (If openpyxl's parser is ever laid out otherwise, nothing
    is changed and reading still works, only with that growth.)"""
    try:
        from openpyxl.worksheet import _reader
    except ImportError:
        return
    original = getattr(_reader, "iterparse", None)
    if original is None or getattr(original, "forgets_rows", False):
        return
    row_tag = getattr(_reader, "ROW_TAG", None)

    def iterparse(source: Any, *args: Any, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        if args or kwargs or row_tag is None:  # not the call it makes today: as it was
            yield from original(source, *args, **kwargs)
            return
        parents: list[Any] = []
        for event, element in original(source, events=("start", "end")):
            if event == "start":
                parents.append(element)
                continue
            parents.pop()
            yield event, element
            if element.tag == row_tag and parents:
                parents[-1].remove(element)  # the only child left: removed at once

    iterparse.forgets_rows = True  # type: ignore[attr-defined]
    _reader.iterparse = iterparse


def load_xls(path: Path, warnings: list[str]) -> Iterator[Document]:
    """An Excel 97-2003 workbook (BIFF, xlrd); an .xlsx named .xls is read as one."""
    with open_file(path) as handle:
        head = magic(handle)
        if head.startswith(ZIP_MAGIC):
            yield from _xlsx(handle, path)
            return
        if head != OLE_MAGIC:
            raise LoadError("corrupt: not an Excel 97-2003 file (saved as HTML or text?)")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mem:
            yield from _xls(mem, path)


def _xls(mem: mmap.mmap, path: Path) -> Iterator[Document]:
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=mem, on_demand=True, logfile=io.StringIO())
    except Exception as exc:  # XLRDError, CompDocError, struct errors of a torn file
        if isinstance(exc, xlrd.XLRDError) and "encrypted" in str(exc).lower():
            raise LoadError("encrypted (password-protected)") from None
        raise LoadError(f"corrupt: not a readable Excel 97-2003 file ({exc})") from None
    with as_corrupt("Excel 97-2003 file"):
        try:
            for index in range(book.nsheets):
                sheet = book.sheet_by_index(index)
                rows = (_xls_row(sheet.row(r), book.datemode) for r in range(sheet.nrows))
                yield from sheet_documents(
                    path.name, path.name, sheet.name, rows, hidden=bool(sheet.visibility)
                )
                book.unload_sheet(index)
        finally:
            book.release_resources()


def _xls_row(cells: list[Any], datemode: int) -> list[Any]:
    import xlrd

    values: list[Any] = []
    for cell in cells:
        if cell.ctype == xlrd.XL_CELL_DATE:
            try:
                values.append(xlrd.xldate_as_datetime(cell.value, datemode))
            except (ValueError, OverflowError, xlrd.xldate.XLDateError):
                values.append(cell.value)
        elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
            values.append(bool(cell.value))
        elif cell.ctype == xlrd.XL_CELL_ERROR:
            values.append(xlrd.error_text_from_code.get(cell.value, "#ERR"))
        else:
            values.append(cell.value)
    return values


SUFFIXES = {".xlsx": load_xlsx, ".xlsm": load_xlsx, ".xls": load_xls}
BINARY = frozenset(SUFFIXES)
