"""PDF text pages per second: pocketrag's reader (`indexers.loaders.iter_documents`: pypdf,
one document per page, and the check for pages with no text layer that OCR would read)
against pypdf called directly (`PdfReader(...).pages`, `extract_text()`), on the same
generated multi-page text PDF, interleaved (ours, pypdf, ours, ...) so machine noise hits
both alike. Prints the median pages/s of each and the ratio ours/pypdf (goal: >= 0.9).

    python benchmarks/pdf_pages.py [--pages 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

LINE = "Page {page}, line {line}: the harvest committee agreed the compost turns monthly."


def make_pdf(path: Path, pages: int) -> Path:
    from scan_files import text_pdf

    path.write_bytes(
        text_pdf([[LINE.format(page=p, line=n) for n in range(40)] for p in range(pages)])
    )
    return path


def ours(path: Path) -> int:
    from indexers.loaders import iter_documents

    return sum(1 for _ in iter_documents(path, []))


def direct(path: Path) -> int:
    from pypdf import PdfReader

    with path.open("rb") as handle:
        return sum(1 for page in PdfReader(handle).pages if (page.extract_text() or "").strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        pdf = make_pdf(Path(folder) / "text.pdf", args.pages)
        ours(pdf), direct(pdf)  # warm: imports, the page cache
        rates: dict[str, list[float]] = {"pocketrag": [], "pypdf": []}
        for _ in range(args.rounds):
            for name, read in (("pocketrag", ours), ("pypdf", direct)):
                started = time.perf_counter()
                pages = read(pdf)
                rates[name].append(pages / (time.perf_counter() - started))
                assert pages == args.pages, (name, pages)
    medians = {name: statistics.median(r) for name, r in rates.items()}
    for name, rate in medians.items():
        each = ", ".join(f"{r:.1f}" for r in rates[name])
        print(f"{name:10s} {rate:8.1f} pages/s  (rounds: {each})")
    print(f"ratio pocketrag/pypdf: {medians['pocketrag'] / medians['pypdf']:.3f}")


if __name__ == "__main__":
    main()
