"""The pages of a PDF with no text layer, read by OCR (`indexers.ocr`).

pypdf reads a PDF's text layer (`indexers.loaders.load_pdf`); a page where it finds none
(empty or whitespace) is a scan, so it is rendered here with pdfium (pypdfium2, from the
`pocketrag[ocr]` extra) and handed to the engine. Only such pages are rendered, and the
PDF is opened for that on the first of them, so a PDF with a text layer costs nothing more.
A page renders at `MAX_DPI` at most and never past the engine's `MAX_SIDE` pixels, so a
page of any declared size costs a few megabytes at most. A page that fails to render or
to read is a warning; without the engine, a PDF that is all scans is one skip reason
naming the extra, and one partly scanned keeps its text pages with a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from indexers import ocr
from indexers.discovery import open_regular
from indexers.documents import LoadError

#: The most dots per inch a page is rendered at (a scanner's usual; a letter page gets 182,
#: its longest side cut to MAX_SIDE): no more than a scan holds, for small pages too.
MAX_DPI = 200
#: The most page failures listed in a file's warnings; the rest are counted.
MAX_LISTED = 5
#: The skip reason's subject when a PDF is all scans and the engine is not installed.
SCANNED = "scanned PDF needs OCR (no text layer)"


class PdfScans:
    """OCR for the pages of one PDF that have no text layer; `close` when done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.missing = 0  # scanned pages not read: no engine
        self.missing_why = ""
        self.read = 0  # scanned pages read by OCR (text found or not)
        self.failures: list[str] = []
        self._handle: IO[bytes] | None = None
        self._unopened = ""  # why pdfium could not open the file, once it tried
        self._document: Any = None

    def text(self, number: int) -> str:
        """The text OCR finds on page `number` (1-based); "" when it finds none or cannot
        read it (counted for `finish`)."""
        if self.missing:  # the engine is not here: no use trying every page
            self.missing += 1
            return ""
        try:
            image = self._render(number)
            text = ocr.recognize(image)
        except ocr.OcrMissing as exc:
            self.missing, self.missing_why = 1, str(exc)
            return ""
        except LoadError as exc:
            self.failures.append(f"page {number}: {exc}")
            return ""
        except Exception as exc:  # pdfium's own errors: this page, not the file
            self.failures.append(f"page {number}: not rendered ({type(exc).__name__}: {exc})")
            return ""
        self.read += 1
        return text

    def _render(self, number: int) -> Any:
        if self._document is None:
            try:
                import pypdfium2
            except ImportError as exc:
                detail = "" if exc.name == "pypdfium2" else f"{type(exc).__name__}: {exc}"
                raise ocr.OcrMissing(detail) from None
            ocr.check()  # the engine too, before any page is rendered
            if self._unopened:
                raise LoadError(self._unopened)
            handle = open_regular(self.path)
            try:
                self._document = pypdfium2.PdfDocument(handle)
            except Exception as exc:  # pdfium refuses what pypdf read: no page of it then
                handle.close()
                self._unopened = f"pdfium cannot open the file ({type(exc).__name__}: {exc})"
                raise LoadError(self._unopened) from None
            self._handle = handle
        if number > len(self._document):
            raise LoadError(f"pdfium finds only {len(self._document)} pages")
        page = self._document[number - 1]
        try:
            width, height = page.get_size()
            scale = min(MAX_DPI / 72, ocr.MAX_SIDE / max(width, height, 1.0))
            return page.render(scale=scale, grayscale=True).to_pil()
        finally:
            page.close()

    def close(self) -> None:
        if self._document is not None:
            self._document.close()
        if self._handle is not None:
            self._handle.close()
        self._document = self._handle = None

    def finish(self, found: bool, warnings: list[str]) -> None:
        """After the last page: the skip reason when no page gave text (`found` False),
        else what was not read, as warnings."""
        if not found:
            if self.missing:
                raise ocr.OcrMissing(ocr.missing_reason(SCANNED, self.missing_why))
            if self.failures:
                raise LoadError(f"PDF has no extractable text (OCR: {self.failures[0]})")
            if self.read:
                raise LoadError("PDF has no extractable text (no text layer, and OCR found none)")
            return
        if self.missing:
            warnings.append(
                f"{self.missing} scanned page(s) with no text layer not read: install "
                f"{ocr.EXTRA} to read them" + (f" ({self.missing_why})" if self.missing_why else "")
            )
        for failure in self.failures[:MAX_LISTED]:
            warnings.append(f"OCR skipped {failure}")
        if len(self.failures) > MAX_LISTED:
            warnings.append(f"OCR skipped {len(self.failures) - MAX_LISTED} more page(s)")
