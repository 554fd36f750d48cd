"""OCR pages per second: pocketrag's reader of a scanned PDF (`indexers.loaders.iter_documents`:
pypdf finds no text layer, pdfium renders the page, `indexers.ocr` reads it) against the
chosen engine, RapidOCR, called directly with the same settings on the same pages rendered
beforehand, interleaved (ours, engine, ours, ...) so machine noise hits both alike. Prints
the median pages/s of each, the ratio ours/engine (goal: >= 0.9), and how much of the
known text each got right (character similarity, word similarity).

`--choices` also measures, on the same rendered pages, the engines not chosen: RapidOCR
with its own defaults (angle classifier on, detection enlarging to 736 px),
rapidocr-onnxruntime 1.x (PP-OCRv4, when installed) and Tesseract (`tesseract` on PATH,
Debian's tesseract-ocr), with CPU-seconds per page, steadier than wall time on a busy machine.

    python benchmarks/ocr.py [--pages 3] [--rounds 2] [--choices]
"""

from __future__ import annotations

import argparse
import difflib
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

TEXT = (
    "the harvest committee agreed that tomatoes need pruning every week while the compost "
    "should turn monthly; invoices from March were paid on time and the roof repair was "
    "scheduled for early autumn because the contractor quoted 4,250 euros including tax; "
    "a second meeting reviewed the budget of 2024 and found three errors in column B"
)
WORDS = TEXT.split(" ")
DPI = 200  # a scanner's usual setting


def page_lines(seed: int, lines: int = 40) -> list[str]:
    rng = random.Random(seed)
    return textwrap.wrap(" ".join(rng.choice(WORDS) for _ in range(lines * 12)), 70)[:lines]


def make_scan(folder: Path, pages: int) -> tuple[Path, list[str]]:
    """A letter-size scan of `pages` pages of known text (11 pt at DPI), image-only PDF."""
    from scan_files import find_font, image_pdf, text_image

    font = find_font()
    if font is None:
        sys.exit("no TrueType font found by fc-list (DejaVu Sans, Liberation Sans...)")
    texts = [page_lines(n) for n in range(pages)]
    images = [
        text_image(font, t, size=round(11 * DPI / 72), width=int(8.5 * DPI), margin=DPI)
        for t in texts
    ]
    path = folder / "scan.pdf"
    path.write_bytes(image_pdf(images, dpi=DPI))
    return path, ["\n".join(t) for t in texts]


def rendered(path: Path) -> list[Any]:
    """The pages as pocketrag renders them for OCR (`indexers.pdf_scans`)."""
    import pypdfium2

    from indexers import ocr
    from indexers.pdf_scans import MAX_DPI

    document = pypdfium2.PdfDocument(str(path))
    images = []
    for page in document:
        width, height = page.get_size()
        scale = min(MAX_DPI / 72, ocr.MAX_SIDE / max(width, height))
        images.append(page.render(scale=scale, grayscale=True).to_pil())
    return images


def words(text: str) -> list[str]:
    return re.findall(r"[\w,.;]+", text.lower())


def accuracy(truths: list[str], got: list[str]) -> tuple[float, float]:
    """Mean character and word similarity (difflib ratio) of `got` to the known text."""
    chars, tokens = [], []
    for truth, text in zip(truths, got, strict=True):
        a, b = words(truth), words(text)
        chars.append(difflib.SequenceMatcher(None, " ".join(a), " ".join(b), False).ratio())
        tokens.append(difflib.SequenceMatcher(None, a, b, False).ratio())
    return statistics.mean(chars), statistics.mean(tokens)


def cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def ours(path: Path) -> list[str]:
    from indexers.loaders import iter_documents

    return [doc.text for doc in iter_documents(path, [])]


def rapidocr_as_ours() -> Callable[[Any], str]:
    from indexers import ocr

    engine = ocr._engine()  # the same engine and settings, without the reader around it
    return lambda image: "\n".join(engine(ocr.prepared(image)).txts or ())


def rapidocr_defaults() -> Callable[[Any], str]:
    import rapidocr

    models = Path(rapidocr.__file__).parent / "models"
    engine = rapidocr.RapidOCR(
        params={
            "Det.model_path": str(next(models.glob("*det*.onnx"))),
            "Rec.model_path": str(next(models.glob("*rec*.onnx"))),
            "Cls.model_path": str(next(models.glob("*cls*.onnx"))),
            "Global.log_level": "error",
        }
    )
    return lambda image: "\n".join(engine(image.convert("RGB")).txts or ())


def rapidocr_onnxruntime() -> Callable[[Any], str] | None:
    try:
        import numpy as np
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return None
    engine = RapidOCR()
    return lambda image: "\n".join(r[1] for r in engine(np.array(image.convert("RGB")))[0] or ())


def tesseract(folder: Path) -> Callable[[Any], str] | None:
    if shutil.which("tesseract") is None:
        return None

    def read(image: Any) -> str:
        image.save(folder / "page.png")
        done = subprocess.run(
            ["tesseract", str(folder / "page.png"), "stdout"], capture_output=True, text=True
        )
        return done.stdout

    return read


def measure(read: Callable[[], list[str]], pages: int) -> tuple[float, float, list[str]]:
    """(pages/s, CPU-s per page, texts) of one run."""
    started, spent = time.perf_counter(), cpu()
    texts = read()
    return pages / (time.perf_counter() - started), (cpu() - spent) / pages, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--choices", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        pdf, truths = make_scan(folder, args.pages)
        images = rendered(pdf)
        direct = rapidocr_as_ours()
        direct(images[0].crop((0, 0, 600, 300)))  # warm: the models load on the first call
        runs: dict[str, list[tuple[float, float, list[str]]]] = {"pocketrag": [], "rapidocr": []}
        for _ in range(args.rounds):
            runs["pocketrag"].append(measure(lambda: ours(pdf), args.pages))
            runs["rapidocr"].append(measure(lambda: [direct(i) for i in images], args.pages))
        print(f"{args.pages} letter pages of 40 lines at {DPI} dpi, {images[0].size} rendered")
        rates = {}
        for engine, results in runs.items():
            rates[engine] = statistics.median(r[0] for r in results)
            cpu_s = statistics.median(r[1] for r in results)
            chars, tokens = accuracy(truths, results[-1][2])
            print(
                f"{engine:28s} {rates[engine]:6.3f} pages/s  {cpu_s:5.1f} CPU-s/page  "
                f"chars {chars:.4f}  words {tokens:.4f}"
            )
        print(f"ratio pocketrag/rapidocr: {rates['pocketrag'] / rates['rapidocr']:.3f}")
        if not args.choices:
            return
        choices = {
            "rapidocr (its defaults)": rapidocr_defaults(),
            "rapidocr-onnxruntime 1.x": rapidocr_onnxruntime(),
            "tesseract": tesseract(folder),
        }
        for engine, read in choices.items():
            if read is None:
                print(f"{engine:28s} not installed")
                continue
            read(images[0].crop((0, 0, 600, 300)))
            rate, cpu_s, texts = measure(lambda r=read: [r(i) for i in images], args.pages)
            chars, tokens = accuracy(truths, texts)
            print(
                f"{engine:28s} {rate:6.3f} pages/s  {cpu_s:5.1f} CPU-s/page  "
                f"chars {chars:.4f}  words {tokens:.4f}"
            )
        print(f"(threads: onnxruntime and tesseract use the {os.cpu_count()} cores they see)")


if __name__ == "__main__":
    main()
