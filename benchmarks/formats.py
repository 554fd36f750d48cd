"""Extraction throughput per format: pocketrag's readers (`indexers.loaders.iter_documents`:
structure, tables with headers, the zip checks) against the chosen library called
directly with its own least text extraction, on the same files, in the same run,
interleaved (ours, library, ours, library, ...) so machine noise hits both alike. Prints
the median MB/s and files/s of each and the ratio ours/library (goal: >= 0.9).

`--choices` also measures the libraries not chosen, each in its own process for its peak
memory: odfpy (whole document as objects) against content.xml through defusedxml's
iterparse, and ebooklib (`read_epub` reads every item) against zip + OPF spine.

    python benchmarks/formats.py [--rounds 5] [--choices] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def make_samples(folder: Path) -> dict[str, list[Path]]:
    """A few files of each format, large enough to time: written by python-docx,
    python-pptx, openpyxl and ebooklib, the rest converted by LibreOffice when present."""
    import docx
    import pptx
    from big_sheets import make_xlsx

    folder.mkdir(parents=True, exist_ok=True)
    document = docx.Document()
    for section in range(60):
        document.add_heading(f"Section {section}", 1)
        for p in range(25):
            document.add_paragraph(f"Paragraph {p} of section {section}: " + "lorem ipsum " * 12)
        table = document.add_table(rows=1, cols=4)
        for cell, text in zip(table.rows[0].cells, ("Item", "Count", "Price", "Note"), strict=True):
            cell.text = text
        for r in range(20):
            for cell, text in zip(
                table.add_row().cells, (f"i{r}", str(r), f"{r * 1.5}", "ok"), strict=True
            ):
                cell.text = text
    document.save(folder / "report.docx")
    deck = pptx.Presentation()
    for n in range(120):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {n}"
        slide.placeholders[1].text_frame.text = "\n".join(f"Point {k} " * 6 for k in range(6))
        slide.notes_slide.notes_text_frame.text = "Notes " * 30
    deck.save(folder / "deck.pptx")
    make_xlsx(folder / "book.xlsx", 30_000)
    samples = {
        ".docx": [folder / "report.docx"],
        ".pptx": [folder / "deck.pptx"],
        ".xlsx": [folder / "book.xlsx"],
        ".epub": [_epub(folder / "book.epub")],
    }
    soffice = shutil.which("soffice")
    if soffice:
        profile = (folder / "profile").as_uri()
        for fmt, src in (
            ("odt", "report.docx"),
            ("rtf", "report.docx"),
            ("odp", "deck.pptx"),
            ("ods", "book.xlsx"),
            ("xls", "book.xlsx"),
        ):
            subprocess.run(
                [
                    soffice,
                    "--headless",
                    "--norestore",
                    f"-env:UserInstallation={profile}",
                    "--convert-to",
                    fmt,
                    "--outdir",
                    str(folder),
                    str(folder / src),
                ],
                capture_output=True,
                timeout=900,
                check=False,
            )
            made = folder / f"{Path(src).stem}.{fmt}"
            if made.exists():
                samples[f".{fmt}"] = [made]
    return samples


def _epub(path: Path) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("bench")
    book.set_title("Bench")
    book.set_language("en")
    chapters = []
    for n in range(60):
        chapter = epub.EpubHtml(title=f"Chapter {n}", file_name=f"c{n}.xhtml", lang="en")
        paragraphs = "".join(
            f"<p>Sentence {k} of chapter {n}. " + "lorem ipsum " * 15 + "</p>" for k in range(40)
        )
        chapter.content = f"<html><body><h1>Chapter {n}</h1>{paragraphs}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path


def ours(path: Path) -> int:
    from indexers.loaders import iter_documents

    return sum(len(d.text) for d in iter_documents(path, []))


def _docx(path: Path) -> int:
    import docx

    document = docx.Document(str(path))
    text = [p.text for p in document.paragraphs]
    text += [c.text for t in document.tables for row in t.rows for c in row.cells]
    return len("\n".join(text))


def _pptx(path: Path) -> int:
    import pptx

    text = []
    for slide in pptx.Presentation(str(path)).slides:
        text += [s.text_frame.text for s in slide.shapes if s.has_text_frame]
        if slide.has_notes_slide:
            text.append(slide.notes_slide.notes_text_frame.text)
    return len("\n".join(text))


def _xlsx(path: Path) -> int:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    n = sum(
        len(" ".join("" if v is None else str(v) for v in row))
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
    )
    book.close()
    return n


def _xls(path: Path) -> int:
    import xlrd

    book = xlrd.open_workbook(str(path), on_demand=True)
    n = 0
    for i in range(book.nsheets):
        sheet = book.sheet_by_index(i)
        n += sum(len(" ".join(str(v) for v in sheet.row_values(r))) for r in range(sheet.nrows))
        book.unload_sheet(i)
    return n


def _odf(path: Path) -> int:
    """content.xml through defusedxml's iterparse, each paragraph's text."""
    from defusedxml.ElementTree import iterparse

    text = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
    wanted = (text + "p", text + "h")
    n = 0
    with zipfile.ZipFile(path) as archive, archive.open("content.xml") as stream:
        for _, element in iterparse(stream):
            if element.tag in wanted:
                n += len("".join(element.itertext()))
                element.clear()
    return n


def _epub_zip(path: Path) -> int:
    """Every XHTML member of the zip through rag.core.html_text."""
    from rag.core.html_text import html_to_text

    with zipfile.ZipFile(path) as archive:
        return sum(
            len(html_to_text(archive.read(n).decode("utf-8", "replace")))
            for n in archive.namelist()
            if n.endswith((".xhtml", ".html"))
        )


def _rtf(path: Path) -> int:
    from striprtf.striprtf import rtf_to_text

    return len(rtf_to_text(path.read_text("latin-1"), errors="replace"))


LIBRARIES: dict[str, tuple[str, Callable[[Path], int]]] = {
    ".docx": ("python-docx", _docx),
    ".pptx": ("python-pptx", _pptx),
    ".xlsx": ("openpyxl", _xlsx),
    ".xls": ("xlrd", _xls),
    ".odt": ("defusedxml iterparse", _odf),
    ".ods": ("defusedxml iterparse", _odf),
    ".odp": ("defusedxml iterparse", _odf),
    ".epub": ("zip + html_text", _epub_zip),
    ".rtf": ("striprtf", _rtf),
}


def cpu_seconds(function: Callable[[Path], int], files: list[Path]) -> float:
    started = time.process_time()  # CPU time: the other processes of a shared machine
    for path in files:  # slow the wall clock, not this
        function(path)
    return time.process_time() - started


def compare(samples: dict[str, list[Path]], rounds: int) -> list[dict]:
    rows = []
    for suffix, files in samples.items():
        name, library = LIBRARIES[suffix]
        ours(files[0]), library(files[0])  # warm: imports, caches
        mine, theirs = [], []
        for _ in range(rounds):
            mine.append(cpu_seconds(ours, files))
            theirs.append(cpu_seconds(library, files))
        size = sum(p.stat().st_size for p in files) / 1e6
        a, b = statistics.median(mine), statistics.median(theirs)
        rows.append(
            {
                "format": suffix,
                "library": name,
                "MB": round(size, 2),
                "ours_MB_s": round(size / a, 2),
                "library_MB_s": round(size / b, 2),
                "ours_files_s": round(len(files) / a, 2),
                "ratio": round(b / a, 2),
            }
        )
    return rows


_CHOICE = """
import json, resource, sys, time, zipfile
sys.path.insert(0, sys.argv[3])
kind, path = sys.argv[1], sys.argv[2]
started = time.process_time()
if kind == "odfpy":
    from odf import opendocument, teletype, text
    doc = opendocument.load(path)
    n = sum(len(teletype.extractText(p)) for p in doc.getElementsByType(text.P))
elif kind == "ebooklib":
    import ebooklib
    from ebooklib import epub
    from rag.core.html_text import html_to_text
    book = epub.read_epub(path, {"ignore_ncx": True})
    items = book.get_items_of_type(ebooklib.ITEM_DOCUMENT)
    n = sum(len(html_to_text(i.get_content().decode())) for i in items)
else:
    from pathlib import Path
    from indexers.loaders import iter_documents
    n = sum(len(d.text) for d in iter_documents(Path(path), []))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps({"cpu_s": round(time.process_time() - started, 2), "peak_MiB": peak, "chars": n}))
"""


def choices(folder: Path) -> list[dict]:
    """The libraries not chosen, against ours, each in a fresh process."""
    from big_sheets import make_xlsx

    out = []
    jobs = []
    soffice = shutil.which("soffice")
    if soffice:
        make_xlsx(folder / "choice.xlsx", 60_000)
        subprocess.run(
            [
                soffice,
                "--headless",
                "--norestore",
                f"-env:UserInstallation={(folder / 'profile').as_uri()}",
                "--convert-to",
                "ods",
                "--outdir",
                str(folder),
                str(folder / "choice.xlsx"),
            ],
            capture_output=True,
            timeout=900,
            check=False,
        )
        if (folder / "choice.ods").exists():
            jobs += [("odfpy", folder / "choice.ods"), ("ours", folder / "choice.ods")]
    book = _epub_with_images(folder / "pictures.epub")
    jobs += [("ebooklib", book), ("ours", book)]
    for kind, path in jobs:
        done = subprocess.run(
            [sys.executable, "-c", _CHOICE, kind, str(path), str(REPO)],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        result = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-300:]}
        out.append(
            {"reader": kind, "file": path.name, "MB": round(path.stat().st_size / 1e6, 1), **result}
        )
    return out


def _epub_with_images(path: Path) -> Path:
    """An EPUB with 40 MB of (incompressible) pictures, as a photo book or a comic has."""
    import os

    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("pictures")
    book.set_title("Pictures")
    chapters = []
    for n in range(20):
        image = epub.EpubItem(
            uid=f"img{n}",
            file_name=f"img{n}.jpg",
            media_type="image/jpeg",
            content=os.urandom(2 * 1024 * 1024),
        )
        book.add_item(image)
        chapter = epub.EpubHtml(title=f"Plate {n}", file_name=f"p{n}.xhtml")
        chapter.content = f"<html><body><h1>Plate {n}</h1><img src='img{n}.jpg'/></body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = chapters
    epub.write_epub(str(path), book)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--choices", action="store_true", help="measure odfpy and ebooklib too")
    parser.add_argument("--keep", type=Path, help="make (or reuse) the sample files here")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pocketrag-formats-"))
    try:
        samples = make_samples(folder)
        for row in compare(samples, args.rounds):
            print(json.dumps(row))
        if args.choices:
            for row in choices(folder):
                print(json.dumps(row))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(json.dumps({"benchmark_peak_MiB": peak}))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
