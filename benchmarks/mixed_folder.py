"""`rag index` end to end on a mixed folder of 1,000 files of every format the README's
"What gets read" table lists, with the default embedder (all-MiniLM-L6-v2, offline) and
with the tests' hashing fake (tests/plugins/pocketrag_fakes), so the cost of reading
shows apart from the cost of embedding. Runs are interleaved (fake, MiniLM, fake, ...),
each a fresh `rag index` process into an empty RAG_HOME; its peak RSS is the kernel's
(`wait4`'s ru_maxrss through RUSAGE_CHILDREN of a one-child parent), not a sample. Prints
files/s, chunks, files per format, skip reasons, peak RSS and the ratio fake/MiniLM
(the share of the run that is reading, chunking and storing). Goal: every file read (no
skip but the deliberate ones), peak RSS under 1 GB.

The folder is made once into --work (rerun: reused): real prose (the Wikipedia
vital-article leads in ../shared/data), written by the real writers (python-docx,
python-pptx, openpyxl, ebooklib, pypdf, the standard library's email and mailbox, the
tests' .msg writer; LibreOffice converts to .odt/.ods/.odp/.xls/.rtf when installed),
a few KB to a few MB: most files hold 1-24 KB of text, 2% 100-300 KB, and 3% carry a
1-4 MB picture or attachment (never read as text, as in real files). `--ocr` adds
scanned pages (PNG and image-only PDF; OCR costs ~20 CPU-s a page).

`--big` checks the memory guarantee (peak RSS does not grow with file size): a 2,000-page
text PDF against a 200-page one, a ~200 MB .xlsx (benchmarks/big_sheets.py) against a
~20 MB one (a tenth: big enough that batches and buffers are full), each alone, with
the fake embedder (goal: ratio <= 1.2).

    python benchmarks/mixed_folder.py [--files 1000] [--work DIR] [--rounds 1] [--ocr]
        [--no-real] [--big [--big-pages 2000] [--big-rows 3850000]]
"""

from __future__ import annotations

import argparse
import email.message
import email.utils
import gzip
import json
import mailbox
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
DATA = REPO.parent / "shared" / "data" / "wiki-vital-en.jsonl.gz"
sys.path[:0] = [str(REPO), str(TESTS), str(REPO / "benchmarks")]

#: Files per 1,000 of each kind (the README table's formats).
WEIGHTS = {
    "txt": 125, "md": 90, "html": 90, "pdf": 80, "docx": 80, "xlsx": 50, "pptx": 40,
    "csv-cp1252": 30, "csv-sjis": 20, "tsv": 10, "json": 60, "yaml": 40, "ipynb": 40,
    "eml": 60, "mbox": 10, "msg": 30, "rss": 30, "epub": 25,
    "rtf": 20, "xls": 20, "odt": 20, "ods": 15, "odp": 15,
}  # fmt: skip
#: Made by LibreOffice from a file of the first kind.
CONVERTED = {"rtf": "docx", "odt": "docx", "xls": "xlsx", "ods": "xlsx", "odp": "pptx"}
#: Kinds that may carry a picture or attachment of a few MB.
CARRIERS = {"docx", "pptx", "epub", "eml", "html", "odt", "odp"}
FOLDERS = ["projects/alpha", "projects/beta", "mail", "notes", "reports/2024", "reports/2025",
           "data", "reading", "slides", "misc"]  # fmt: skip
EUROPE = ["José Muñoz", "Zoë Brontë", "François Lefèvre", "Jürgen Groß", "Åsa Nyström",
          "Séverine Dubreuil", "Ñuño Peña", "Ørjan Dæhli"]  # fmt: skip
JAPAN = ["田中 太郎", "鈴木 花子", "佐藤 健", "高橋 美咲", "渡辺 翔", "伊藤 由美"]
JP_CITY = ["東京都", "大阪府", "京都府", "北海道", "福岡県", "愛知県"]
JP_ITEM = ["緑茶", "味噌", "醤油", "抹茶", "煎餅", "梅干し"]
JP_NOTE = ["納期は来週です", "在庫を確認中", "請求書を送付済み", "至急対応してください"]
FAKE = "fake"
HASHING = "hashing"  # benchmarks/plugins: MiniLM's tokenizer, hashed vectors


class Prose:
    """Slices of real prose of a wanted size, and the shape of each file (its size)."""

    def __init__(self, rng: random.Random) -> None:
        with gzip.open(DATA, "rt", encoding="utf-8") as handle:
            self.paragraphs = [json.loads(line)["text"] for line in handle]
        self.rng = rng

    def take(self, chars: int) -> list[str]:
        at = self.rng.randrange(len(self.paragraphs))
        out, size = [], 0
        while size < chars:
            text = self.paragraphs[at % len(self.paragraphs)]
            out.append(text)
            size += len(text)
            at += 1
        return out

    def size(self) -> int:
        """Characters of text in one file: 1-24 KB log-uniform, 2% 100-300 KB."""
        if self.rng.random() < 0.02:
            return self.rng.randrange(100_000, 300_000)
        return int(1000 * 24 ** self.rng.random())

    def title(self) -> str:
        words = self.rng.choice(self.paragraphs).split()[:6]
        return " ".join(w.strip(",.;:()") for w in words) or "Untitled"


def picture(rng: random.Random, path: Path) -> Path:
    """A noise PNG of 1-4 MB (incompressible, as a photo is)."""
    from PIL import Image

    side = int((rng.randrange(1, 4) * 1_000_000 / 3) ** 0.5)
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(path)
    return path


def sections(paragraphs: list[str], every: int = 4) -> list[tuple[str, list[str]]]:
    """Paragraphs grouped under headings made of their first words."""
    groups = [paragraphs[i : i + every] for i in range(0, len(paragraphs), every)]
    return [(" ".join(g[0].split()[:4]).strip(",.;:"), g) for g in groups]


def lines(paragraphs: list[str], width: int = 95) -> list[str]:
    import textwrap

    out: list[str] = []
    for p in paragraphs:
        out += textwrap.wrap(p.encode("latin-1", "replace").decode("latin-1"), width) + [""]
    return out


def w_txt(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    path.write_text("\n\n".join(p) + "\n", encoding="utf-8")


def w_md(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    body = "".join(f"## {h}\n\n" + "\n\n".join(g) + "\n\n" for h, g in sections(p))
    path.write_text(f"# {title}\n\n{body}", encoding="utf-8")


def w_html(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    import base64
    import html

    nav = "".join(f'<li><a href="/{w}">{w}</a></li>' for w in ("Home", "About", "Blog", "Shop"))
    body = "".join(
        f"<h2>{html.escape(h)}</h2>" + "".join(f"<p>{html.escape(t)}</p>" for t in g)
        for h, g in sections(p)
    )
    if pic:
        data = base64.b64encode(pic.read_bytes()).decode()
        body += f'<figure><img src="data:image/png;base64,{data}"/></figure>'
    path.write_text(
        f"<!doctype html><html><head><title>{html.escape(title)}</title>"
        "<script>var tracker = {id: 42};</script></head><body>"
        f"<header><nav><ul>{nav}</ul></nav></header><main><article>"
        f"<h1>{html.escape(title)}</h1>{body}</article></main>"
        "<footer>© 2025 Example Ltd · Privacy · Cookies · Contact</footer></body></html>",
        encoding="utf-8",
    )


def w_pdf(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    from scan_files import text_pdf

    text = lines([title]) + lines(p)  # Helvetica: Latin-1 only
    path.write_bytes(text_pdf([text[i : i + 46] for i in range(0, len(text), 46)]))


def w_docx(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, 0)
    for n, (heading, group) in enumerate(sections(p)):
        document.add_heading(heading, 1 + n % 2)
        for text in group:
            document.add_paragraph(text)
        if n % 5 == 2:
            table = document.add_table(rows=1, cols=3)
            for cell, text in zip(table.rows[0].cells, ("Item", "Owner", "Status"), strict=True):
                cell.text = text
            for r in range(8):
                for cell, text in zip(table.add_row().cells, (f"Item {r}", f"Owner {n}-{r}",
                                                               "open"), strict=True):  # fmt: skip
                    cell.text = text
    if pic:
        document.add_picture(str(pic))
    document.save(path)


def w_pptx(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    deck.core_properties.title = title
    for heading, group in sections(p, every=1):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = heading
        sentences = group[0].split(". ")
        slide.placeholders[1].text_frame.text = "\n".join(sentences[:4])
        slide.notes_slide.notes_text_frame.text = ". ".join(sentences[4:])
    if pic:
        slide.shapes.add_picture(str(pic), Inches(1), Inches(1), Inches(4))
    deck.save(path)


def w_xlsx(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    words = " ".join(p).split()
    for s in range(1 + len(words) // 4000):
        sheet = book.active if s == 0 else book.create_sheet()
        sheet.title = f"Q{s + 1}" if s < 4 else f"Sheet {s + 1}"
        sheet.append(["Ref", "Region", "Amount", "Note"])
        part = words[s * 4000 : (s + 1) * 4000]
        for r in range(0, len(part), 8):
            sheet.append([f"R-{s}-{r}", FOLDERS[r % 10], r * 1.25, " ".join(part[r : r + 8])])
    book.save(path)


def _csv(path: Path, p: list[str], names: list[str], encoding: str, sep: str = ",") -> None:
    rows = [sep.join(["Name", "City", "Amount", "Note"])]
    for i, word in enumerate(" ".join(p).split()[::6]):
        note = word.replace(sep, " ").replace('"', "")
        rows.append(sep.join([names[i % len(names)], f"City {i % 40}", f"{i * 3.5:.2f}", note]))
    path.write_text("\r\n".join(rows) + "\r\n", encoding=encoding, errors="replace")


def w_csv_cp1252(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    _csv(path, p, [f"{n} – €{i}" for i, n in enumerate(EUROPE)], "cp1252", ";")


def w_csv_sjis(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    rows = ["氏名,都道府県,商品,数量,備考"]
    for i in range(max(20, sum(map(len, p)) // 40)):
        rows.append(",".join([JAPAN[i % 6], JP_CITY[i % 5], JP_ITEM[i % 6], str(i % 97),
                              JP_NOTE[i % 4]]))  # fmt: skip
    path.write_text("\r\n".join(rows) + "\r\n", encoding="shift_jis")


def w_tsv(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    _csv(path, p, EUROPE, "utf-8", "\t")


def w_json(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    if len(p) % 2:  # records with a text field
        value: object = [{"id": i, "title": t[:40], "text": t} for i, t in enumerate(p)]
    else:  # any other document: read as key.path lines
        value = {"title": title, "meta": {"author": "A. Writer", "tags": ["wiki", "bench"]},
                 "sections": [{"heading": h, "body": g} for h, g in sections(p)]}  # fmt: skip
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")


def w_yaml(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    import yaml

    docs = [{"name": h, "description": " ".join(g), "owners": ["ops", "docs"],
             "limits": {"cpu": 2, "memory": "512Mi"}} for h, g in sections(p, 2)]  # fmt: skip
    path.write_text(yaml.safe_dump_all(docs, allow_unicode=True), encoding="utf-8")


def w_ipynb(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}"]}]
    for n, (heading, group) in enumerate(sections(p, 2)):
        cells.append({"cell_type": "markdown", "metadata": {},
                      "source": [f"## {heading}\n\n" + "\n\n".join(group)]})  # fmt: skip
        cells.append({"cell_type": "code", "execution_count": n, "metadata": {},
                      "source": [f"df = load('part{n}.csv')\ndf.describe()"],
                      "outputs": [{"output_type": "stream", "name": "stdout",
                                   "text": [f"rows: {n * 17}\nmean: {n * 1.5}\n"]}]})  # fmt: skip
    notebook = {"cells": cells, "metadata": {"kernelspec": {"name": "python3"}},
                "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


def _message(p: list[str], title: str, pic: Path | None, n: int = 0) -> email.message.Message:
    message = email.message.EmailMessage()
    message["From"] = f"{EUROPE[n % 8]} <sender{n}@example.org>"
    message["To"] = "team@example.org"
    message["Subject"] = title
    message["Date"] = email.utils.format_datetime(email.utils.localtime())
    message.set_content("\n\n".join(p))
    if n % 3 == 1:
        message.add_alternative("".join(f"<p>{t}</p>" for t in p), subtype="html")
    if pic:
        message.add_attachment(pic.read_bytes(), maintype="image", subtype="png",
                               filename="photo.png")  # fmt: skip
    elif n % 4 == 2:
        message.add_attachment("minutes: agreed\n", filename="minutes.txt")
    return message


def w_eml(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    path.write_bytes(bytes(_message(p, title, pic, len(p))))


def w_mbox(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    box = mailbox.mbox(str(path))
    for n, group in enumerate(sections(p, 2)):
        box.add(_message(group[1], group[0], None, n))
    box.close()


def w_msg(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    from format_fixtures import write_msg

    headers = f"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: {title}\r\n"
    write_msg(path, title, "\n\n".join(p), headers)


def w_rss(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    from xml.sax.saxutils import escape

    items = "".join(
        f"<item><title>{escape(h)}</title><link>https://example.org/{n}</link>"
        f"<pubDate>Mon, 0{1 + n % 9} Sep 2025 10:00:00 GMT</pubDate><description>"
        + escape(f'<img srcset="a.jpg 1x, b.jpg 2x"/><p>{" ".join(g)}</p>')
        + "</description></item>"
        for n, (h, g) in enumerate(sections(p, 2))
    )
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://example.org</link>{items}</channel></rss>",
        encoding="utf-8",
    )


def w_epub(path: Path, p: list[str], title: str, pic: Path | None) -> None:
    import html

    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier(path.stem)
    book.set_title(title)
    book.set_language("en")
    chapters = []
    for n, (heading, group) in enumerate(sections(p, 6)):
        chapter = epub.EpubHtml(title=heading, file_name=f"c{n}.xhtml", lang="en")
        body = "".join(f"<p>{html.escape(t)}</p>" for t in group)
        chapter.content = f"<html><body><h1>{html.escape(heading)}</h1>{body}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    if pic:
        book.add_item(epub.EpubItem(uid="pic", file_name="pic.png", media_type="image/png",
                                    content=pic.read_bytes()))  # fmt: skip
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)


WRITERS: dict[str, Callable[[Path, list[str], str, Path | None], None]] = {
    "txt": w_txt, "md": w_md, "html": w_html, "pdf": w_pdf, "docx": w_docx, "pptx": w_pptx,
    "xlsx": w_xlsx, "csv-cp1252": w_csv_cp1252, "csv-sjis": w_csv_sjis, "tsv": w_tsv,
    "json": w_json, "yaml": w_yaml, "ipynb": w_ipynb, "eml": w_eml, "mbox": w_mbox,
    "msg": w_msg, "rss": w_rss, "epub": w_epub,
}  # fmt: skip


def counts(files: int) -> dict[str, int]:
    total = sum(WEIGHTS.values())
    out = {kind: max(1, round(files * w / total)) for kind, w in WEIGHTS.items()}
    out["txt"] += files - sum(out.values())
    return out


def soffice(sources: list[Path], fmt: str, out: Path, profile: Path) -> None:
    subprocess.run(
        ["/usr/bin/soffice", "--headless", "--norestore",
         f"-env:UserInstallation={profile.as_uri()}", "--convert-to", fmt, "--outdir", str(out),
         *map(str, sources)],
        capture_output=True, timeout=3600, check=False,
    )  # fmt: skip


def scans(folder: Path, prose: Prose) -> None:
    """Two PNG scans and two image-only PDFs (1 and 2 pages), for `--ocr`."""
    from scan_files import find_font, image_pdf, text_image

    font = find_font()
    if font is None:
        raise SystemExit("--ocr needs a TrueType font (fc-list)")
    pages = [text_image(font, lines(prose.take(1500), 70)[:30]) for _ in range(5)]
    for n in range(2):
        pages[n].save(folder / "scans" / f"scan-{n}.png")
    (folder / "scans" / "letter.pdf").write_bytes(image_pdf(pages[2:3]))
    (folder / "scans" / "report.pdf").write_bytes(image_pdf(pages[3:5]))


def build(work: Path, files: int, ocr: bool, seed: int = 22) -> Path:
    """The mixed folder of `files` files (made once: a rerun finds it in `work`)."""
    folder = work / f"mixed-{files}{'-ocr' if ocr else ''}"
    if folder.is_dir():
        return folder
    rng = random.Random(seed)
    prose = Prose(rng)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=work))
    made = tmp / "files"
    for sub in [*FOLDERS, "scans"]:
        (made / sub).mkdir(parents=True)
    src = tmp / "src"
    src.mkdir()
    have_office = shutil.which("soffice") is not None
    for kind, count in counts(files).items():
        base = CONVERTED.get(kind, kind)
        if kind in CONVERTED and not have_office:
            print(f"no LibreOffice: {count} .{kind} made as .{base}")
        converted = kind in CONVERTED and have_office
        for n in range(count):
            pic = None
            if kind in CARRIERS and rng.random() < 0.03:
                pic = picture(rng, tmp / f"pic-{kind}-{n}.png")
            suffix = base.split("-")[0]
            where = src / kind if converted else made / rng.choice(FOLDERS)
            where.mkdir(exist_ok=True)
            WRITERS[base](where / f"{kind}-{n:04d}.{suffix}", prose.take(prose.size()),
                          prose.title(), pic)  # fmt: skip
        if converted:
            out = made / rng.choice(FOLDERS)
            soffice(sorted((src / kind).iterdir()), kind, out, work / "profile")
            missing = count - len(list(out.glob(f"{kind}-*.{kind}")))
            if missing:
                print(f"LibreOffice did not convert {missing} of {count} to .{kind}")
    if ocr:
        scans(made, prose)
    made.rename(folder)
    shutil.rmtree(tmp)
    return folder


_PARENT = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "err": p.stderr[-3000:], "out": p.stdout,
                  "wall_s": time.perf_counter() - started, "maxrss_kb": use.ru_maxrss,
                  "cpu_s": use.ru_utime + use.ru_stime}))
"""


def index(target: Path, embedder: str, home: Path) -> dict:
    """`rag index TARGET --name mixed --json` in a fresh process (through a one-child
    parent, so RUSAGE_CHILDREN is that process alone), into an empty RAG_HOME."""
    shutil.rmtree(home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    path = [REPO, REPO / "benchmarks" / "plugins"]
    path += [TESTS, TESTS / "plugins"] if embedder == FAKE else []
    env.update(RAG_HOME=str(home), PYTHONPATH=os.pathsep.join(map(str, path)),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # fmt: skip
    command = [sys.executable, "-m", "rag.cli.app", "index", str(target), "--name", "mixed",
               "--json", *(["--embedder", embedder] if embedder else [])]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", _PARENT, *command], env=env, cwd=REPO,
                          capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"rag index failed ({result['rc']}):\n{result['err']}")
    return {**json.loads(result["out"]), **{k: result[k] for k in ("wall_s", "maxrss_kb", "cpu_s")}}


def show(label: str, runs: list[dict]) -> dict:
    """Print the median run of `runs` (one embedder) and return it."""
    wall = statistics.median(r["wall_s"] for r in runs)
    run = min(runs, key=lambda r: abs(r["wall_s"] - wall))
    rss = max(r["maxrss_kb"] for r in runs) / 1024
    print(f"{label}: {run['files_read']} files in {wall:.1f} s wall ({run['cpu_s']:.1f} CPU-s): "
          f"{run['files_read'] / wall:.1f} files/s, {run['chunks']} chunks, "
          f"peak RSS {rss:.0f} MB  [{len(runs)} run(s)]")  # fmt: skip
    print("  formats: " + ", ".join(f"{n} {f}" for f, n in sorted(run["formats"].items())))
    reasons = run["skip_reasons"]
    print("  skipped: " + (", ".join(f"{n} {r}" for r, n in reasons.items()) or "none"))
    if run["warnings"]:
        print(f"  warnings ({len(run['warnings'])}): {run['warnings'][:3]}")
    return {**run, "wall_s": wall, "peak_mb": rss}


def big(work: Path, pages: int, rows: int, fast: str, kinds: str = "pdf,xlsx") -> None:
    """Peak RSS on a long PDF and a huge sheet, each against a small file of its kind."""
    from big_sheets import make_xlsx
    from pdf_pages import make_pdf

    folder = work / "big"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    sheet = lambda p, n: make_xlsx(p, n, unique=True)  # noqa: E731
    for kind, large, make in (("pdf", pages, make_pdf), ("xlsx", rows, sheet)):
        if kind not in kinds.split(","):
            continue
        made = []
        for n in (large // 10, large):  # 10x: the small one big enough for steady state
            path = folder / f"big-{n}.{kind}"
            if not path.exists():
                started = time.perf_counter()
                make(path.with_suffix(".part"), n).rename(path)
                print(f"made {path.name} in {time.perf_counter() - started:.0f} s")
            made.append(path)
        pairs.append((kind, made))
    for kind, files in pairs:
        peaks = []
        for path in files:
            run = index(path, fast, work / "home-big")
            peaks.append(run["maxrss_kb"] / 1024)
            print(f"{path.name} ({path.stat().st_size / 1e6:.1f} MB): peak RSS "
                  f"{peaks[-1]:.0f} MB, {run['chunks']} chunks, {run['wall_s']:.0f} s wall, "
                  f"{run['cpu_s']:.0f} CPU-s, skipped {run['skip_reasons'] or 'none'}")  # fmt: skip
        print(f"{kind}: peak RSS small {peaks[0]:.0f} MB, large {peaks[1]:.0f} MB, "
              f"ratio {peaks[1] / peaks[0]:.2f} (goal <= 1.2)")  # fmt: skip


def mixed(args: argparse.Namespace, fast: str) -> None:
    """The mixed folder of `args.files` files end to end: files/s and peak RSS."""
    started = time.perf_counter()
    folder = build(args.work, args.files, args.ocr)
    files = [p for p in folder.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    kinds = Counter(p.suffix for p in files)
    print(f"{folder}: {len(files)} files, {size / 1e6:.0f} MB, largest "
          f"{max(p.stat().st_size for p in files) / 1e6:.1f} MB "
          f"(ready in {time.perf_counter() - started:.0f} s)")  # fmt: skip
    print("  on disk: " + ", ".join(f"{n} {s}" for s, n in sorted(kinds.items())))
    runs: dict[str, list[dict]] = {fast: [], "": []}
    for _ in range(args.rounds):
        for embedder in (fast, *([] if args.no_real else [""])):
            runs[embedder].append(index(folder, embedder, args.work / "home-mixed"))
    label = "fake embedder" if fast == FAKE else "hashing embedder"
    quick = show(f"{label} (reading, chunking, storing)", runs[fast])
    if runs[""]:
        real = show("all-MiniLM-L6-v2 (end to end)", runs[""])
        print(f"ratio wall fake/MiniLM: {quick['wall_s'] / real['wall_s']:.2f}; "
              f"peak RSS MiniLM/fake: {real['peak_mb'] / quick['peak_mb']:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mixed-bench")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each embedder")
    parser.add_argument("--ocr", action="store_true", help="add scanned pages (slow)")
    parser.add_argument("--no-real", action="store_true", help="only the fake embedder")
    parser.add_argument("--fast", choices=["fake", "hashing"], default="fake",
                        help="fake: the tests' (80-word chunks); hashing: MiniLM's tokenizer, "
                             "MiniLM's chunks (benchmarks/index_memory.py)")  # fmt: skip
    parser.add_argument("--big", action="store_true", help="the memory guarantee, see above")
    parser.add_argument("--big-pages", type=int, default=2000)
    parser.add_argument("--big-rows", type=int, default=3_850_000, help="~200 MB of .xlsx")
    parser.add_argument("--big-kinds", default="pdf,xlsx", help="which of the big files")
    args = parser.parse_args()
    fast = FAKE if args.fast == "fake" else HASHING
    args.work.mkdir(parents=True, exist_ok=True)
    if args.files:  # --files 0: the big files only
        mixed(args, fast)
    if args.big:
        big(args.work, args.big_pages, args.big_rows, fast, args.big_kinds)


if __name__ == "__main__":
    main()
