"""Scans read by OCR (issue 22, "Scans"): a PDF page with no text layer and an image file
are read by the OCR engine, offline, and found by `rag search` with their location; OCR
runs only on the pages that need it; hostile images (a decompression bomb, corrupt files)
are one skip reason each and never stop a run; without the engine the reason names the
extra that brings it. The scans are made here: text drawn with a TrueType font found on
this machine, saved as images and as image-only PDFs."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import rag
from index_fixtures import REPO, FakeEmbedder, child_env, fake_embedder, settings  # noqa: F401
from scan_files import (
    corrupt_png,
    find_font,
    image_pdf,
    joined_pdf,
    png_bomb,
    text_image,
    text_pdf,
)

from indexers.build import build_index
from indexers.ocr import as_text
from rag.sources import build_retriever

# ruff: noqa: F811 - the fake_embedder fixture is imported, then named as an argument

ENGINE = importlib.util.find_spec("rapidocr") is not None and (
    importlib.util.find_spec("pypdfium2") is not None
)
needs_engine = pytest.mark.skipif(not ENGINE, reason="the OCR engine (pocketrag[ocr]) is absent")

SCANNED = "The lighthouse keeper logged forty ships in March"  # scan.pdf, page 2
IMAGE = "Quarterly rainfall doubled across the northern valley"  # note.png
TEXT_LAYER = "Invoices from the orchard cooperative were paid on time"  # mixed.pdf, page 1
MIXED_SCAN = "Tomatoes need pruning every week until September"  # mixed.pdf, page 2
INSTALL = "install pocketrag[ocr] to read it"


def squeezed(text: str) -> str:
    """Letters and digits only, lower case: what OCR must get right, spaces aside."""
    return re.sub(r"[\W_]+", "", text.lower())


@pytest.fixture(scope="module")
def font() -> str:
    found = find_font()
    if found is None:
        pytest.skip("no TrueType font here (fc-list finds no DejaVu/Liberation/Noto Sans)")
    return found


def page(font: str, sentence: str) -> object:
    """A scanned page holding `sentence`, split over two lines as a page would wrap it."""
    words = sentence.split()
    half = len(words) // 2
    return text_image(font, [" ".join(words[:half]), " ".join(words[half:])])


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory, font: str) -> Path:
    """A folder as a user keeps one: a scanned PDF, a screenshot, a PDF half typed and half
    scanned, and three hostile images."""
    folder = tmp_path_factory.mktemp("scans")
    (folder / "scan.pdf").write_bytes(
        image_pdf([page(font, "Compost turns monthly in the yard"), page(font, SCANNED),
                   page(font, "The boiler was serviced in autumn")])
    )  # fmt: skip
    page(font, IMAGE).save(folder / "note.png")
    (folder / "mixed.pdf").write_bytes(
        joined_pdf(text_pdf([[TEXT_LAYER]]), image_pdf([page(font, MIXED_SCAN)]))
    )
    png_bomb(folder / "bomb.png")  # 30000 x 30000: 900 MB decoded
    corrupt_png(folder / "broken.png", page(font, "never read"))
    (folder / "noise.jpg").write_bytes(bytes(range(256)) * 16)
    return folder


@pytest.fixture(scope="module")
def indexed(scans: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """`rag index` run once over the folder, in a child process; (its report, RAG_HOME)."""
    home = str(tmp_path_factory.mktemp("home"))
    done = rag("index", str(scans), "--name", "scans", "--json", RAG_HOME=home, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout), home


def found(home: str, query: str) -> list[dict]:
    done = rag("search", query, "--index", "scans", "--k", "3", "--json", RAG_HOME=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["results"]


def reasons(report: dict) -> dict[str, str]:
    return {Path(s["path"]).name: s["reason"] for s in report["skipped"]}


@needs_engine
def test_a_scanned_pdf_page_is_found_with_its_page(indexed: tuple[dict, str], scans: Path) -> None:
    hit = found(indexed[1], SCANNED)[0]
    assert hit["location"].startswith(f"{scans / 'scan.pdf'}#page=2"), hit
    assert squeezed(SCANNED) in squeezed(hit["text"])


@needs_engine
def test_an_image_file_is_found_at_its_path(indexed: tuple[dict, str], scans: Path) -> None:
    report, home = indexed
    hit = found(home, IMAGE)[0]
    assert hit["location"].startswith(f"{scans / 'note.png'}#"), hit
    assert "page=" not in hit["location"]
    assert squeezed(IMAGE) in squeezed(hit["text"])
    assert report["formats"][".png"] == 1 and report["formats"][".pdf"] == 2


@needs_engine
def test_a_pdf_keeps_its_text_layer_and_reads_its_scanned_page(
    indexed: tuple[dict, str], scans: Path
) -> None:
    typed = found(indexed[1], TEXT_LAYER)[0]
    assert typed["location"].startswith(f"{scans / 'mixed.pdf'}#page=1"), typed
    assert TEXT_LAYER in typed["text"]  # pypdf's text, word for word
    scanned = found(indexed[1], MIXED_SCAN)[0]
    assert scanned["location"].startswith(f"{scans / 'mixed.pdf'}#page=2"), scanned


@needs_engine
def test_ocr_runs_only_on_the_pages_without_a_text_layer(
    scans: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    """In-process, under the network guard (the engine must fetch nothing): the progress
    hook counts one OCR page for the mixed PDF, none for a typed one."""
    typed = tmp_path / "typed.pdf"
    typed.write_bytes(text_pdf([["Only typed text here"], ["And a second typed page"]]))
    events: list[tuple[str, int, int]] = []
    build_index(
        [scans / "mixed.pdf", typed], "mixed", settings(), progress=lambda *e: events.append(e)
    )
    assert [e for e in events if e[0] == "ocr"] == [("ocr", 1, 0)]


@needs_engine
def test_a_page_is_read_by_ocr_once(scans: Path, fake_embedder: FakeEmbedder) -> None:
    """`--rebuild` reads every file again: the scanned page's text comes from the OCR
    cache in RAG_HOME, with no page read twice, and is found as before."""
    events: list[tuple[str, int, int]] = []
    build_index([scans / "mixed.pdf"], "again", settings(), progress=lambda *e: events.append(e))
    assert [e for e in events if e[0] == "ocr"] == [("ocr", 1, 0)]
    events.clear()
    report = build_index(
        [scans / "mixed.pdf"], "again", settings(), rebuild=True,
        progress=lambda *e: events.append(e),
    )  # fmt: skip
    assert report.files_embedded == 1 and not [e for e in events if e[0] == "ocr"]
    hit = build_retriever("index:again", settings()).retrieve(MIXED_SCAN, 1)[0]
    assert hit.location.startswith(f"{scans / 'mixed.pdf'}#page=2")


def test_a_decompression_bomb_is_one_skip_reason(indexed: tuple[dict, str]) -> None:
    assert reasons(indexed[0])["bomb.png"] == (
        "image too large (900,000,000 pixels; the limit is 50 megapixels)"
    )


def test_an_image_over_the_limit_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    """64 MP: under Pillow's own bomb limit, over ours. In a child, whose peak memory tells
    that its 64 MB of pixels were never decoded: it grows by less than half of that."""
    big = png_bomb(tmp_path / "big.png", 8000, 8000)
    child = """
import resource, sys
from pathlib import Path
import PIL.Image, PIL.PngImagePlugin
from indexers.documents import LoadError
from indexers.loaders import load_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_file(Path(sys.argv[1]))
except LoadError as exc:
    print(exc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    done = subprocess.run(
        [sys.executable, "-c", child, str(big)], env=child_env(), capture_output=True,
        text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    reason, grown_mb = done.stdout.splitlines()
    assert reason == "image too large (8000x8000 pixels; the limit is 50 megapixels)", done.stderr
    assert int(grown_mb) < 32, grown_mb


def test_corrupt_images_are_one_skip_reason_each(indexed: tuple[dict, str]) -> None:
    got = reasons(indexed[0])
    assert got["noise.jpg"] == "unreadable image (not a PNG, JPEG, TIFF or WebP image)"
    assert got["broken.png"].startswith("unreadable image (")
    assert indexed[0]["skip_reasons"]["unreadable image"] == 2


def test_without_the_engine_the_reason_names_the_extra(scans: Path, tmp_path: Path) -> None:
    """The engine as a machine without the extra has it: an import that fails (a fake
    `rapidocr` package first on the path). The typed page is still read."""
    fake = tmp_path / "no-ocr" / "rapidocr"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'rapidocr'\", name='rapidocr')\n"
    )
    done = rag(
        "index", str(scans), "--name", "plain", "--json",
        PYTHONPATH=f"{fake.parent}:{REPO}", RAG_HOME=str(tmp_path / "home"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    got = reasons(report)
    assert got["scan.pdf"] == f"scanned PDF needs OCR (no text layer): {INSTALL}"
    assert got["note.png"] == f"image needs OCR: {INSTALL}"
    assert got["bomb.png"].startswith("image too large")  # the header says so, engine or not
    assert "mixed.pdf" not in got and report["files_embedded"] == 1
    assert any(
        "mixed.pdf: 1 scanned page(s) with no text layer not read: install pocketrag[ocr]" in w
        for w in report["warnings"]
    ), report["warnings"]


def test_boxes_become_lines_and_paragraphs() -> None:
    """The engine's boxes, in any order: those sharing a line are joined left to right,
    and a gap taller than a line starts a paragraph (so chunks cut where the page does)."""

    def box(x: float, y: float, width: float = 100, height: float = 20) -> list:
        return [[x, y], [x + width, y], [x + width, y + height], [x, y + height]]

    boxes = [box(300, 102), box(10, 100), box(10, 128), box(10, 200)]
    texts = ["right", "left", "next line", "new paragraph"]
    assert as_text(boxes, texts) == "left right\nnext line\n\nnew paragraph"
