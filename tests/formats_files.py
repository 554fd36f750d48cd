"""Real files for the format tests, made by real writers: python-docx, python-pptx and
openpyxl here; LibreOffice (`soffice --headless --convert-to`) for OpenDocument, .xls,
.rtf and .epub copies, and its UNO bridge for password-protected ones; ebooklib for
EPUBs; msoffcrypto-tool for encrypted Office Open XML. A test needing a writer that is
not installed skips, saying which. Hostile files are real ones altered the way an
attacker would (`poisoned`, `zip_bomb_*`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

UNIQUE = {
    "docx": "zephyrine",  # a word in the docx's Q3 section
    "row": "quokkaville",  # a cell deep in the docx's table
    "slide": "marmalade",  # on slide 4 of the deck
    "notes": "tangerine",  # in slide 4's speaker notes
    "sheet": "wolframite",  # a cell of sheet Q3
}
LAUGHS = (
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">' for i in range(1, 10)
    )
    + "]>"
)


def make_docx(path: Path, title: str = "Annual report", rows: int = 60) -> Path:
    """Title (core properties), a Title paragraph, Heading 1 Budget > Heading 2 Q3 with a
    long table (header Region | Revenue | Owner), then Heading 1 Risks (40 paragraphs)."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading("Annual report", 0)
    document.add_heading("Budget", 1)
    document.add_paragraph("The budget grew in every region this year.")
    document.add_heading("Q3", 2)
    document.add_paragraph(f"The third quarter was {UNIQUE['docx']} and calm.")
    table = document.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ("Region", "Revenue", "Owner"), strict=True):
        cell.text = text
    for i in range(rows):
        cells = table.add_row().cells
        owner = UNIQUE["row"] if i == rows - 5 else f"Owner {i}"
        for cell, text in zip(cells, (f"Region {i}", f"{1000 + i * 7}", owner), strict=True):
            cell.text = text
    document.add_heading("Risks", 1)
    for i in range(40):
        document.add_paragraph(f"Currency risk {i} is the largest of this kind for the group.")
    document.save(path)
    return path


def make_pptx(path: Path) -> Path:
    """Five slides titled "Slide N topic"; slide 4 holds a table and speaker notes; slide 5
    is hidden."""
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    deck.core_properties.title = "Quarterly review"
    for n in range(1, 6):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {n} topic"
        body = f"Point {n} of the review" + (f"\n{UNIQUE['slide']} forecast" if n == 4 else "")
        slide.placeholders[1].text_frame.text = body
        if n == 4:
            shape = slide.shapes.add_table(3, 2, Inches(1), Inches(5), Inches(6), Inches(1))
            for r, row in enumerate((("Metric", "Value"), ("Churn", "2%"), ("NPS", "41"))):
                for c, text in enumerate(row):
                    shape.table.cell(r, c).text = text
            slide.notes_slide.notes_text_frame.text = f"Mention the {UNIQUE['notes']} pilot."
        if n == 5:
            slide._element.set("show", "0")
    deck.save(path)
    return path


def make_xlsx(path: Path, rows: int = 200) -> Path:
    """Sheets: Summary; Q3 (an empty first row, header Region | Quarter | Revenue | Date on
    row 2, `rows` rows); P&L (hidden)."""
    import openpyxl

    book = openpyxl.Workbook()
    summary = book.active
    summary.title = "Summary"
    summary.append(["Item", "Value"])
    summary.append(["Total", 12345.5])
    q3 = book.create_sheet("Q3")
    q3.append([])
    q3.append(["Region", "Quarter", "Revenue", "Date"])
    for i in range(rows):
        region = UNIQUE["sheet"] if i == rows - 3 else f"Region {i}"
        q3.append([region, "Q3", 1000 + i * 1.5, dt.date(2024, 7, 1) + dt.timedelta(days=i % 90)])
    hidden = book.create_sheet("P&L")
    hidden.append(["Line", "Amount"])
    hidden.append(["Margin", 17])
    hidden.sheet_state = "hidden"
    book.save(path)
    return path


SOFFICE = shutil.which("soffice")


def soffice(sources: list[Path], fmt: str, out: Path, profile: Path) -> list[Path]:
    """LibreOffice's own conversion of `sources` to `fmt` (odt, ods, odp, xls, rtf, epub)."""
    if not SOFFICE:
        pytest.skip("LibreOffice (soffice) is not installed")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            SOFFICE,
            "--headless",
            "--norestore",
            f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to",
            fmt,
            "--outdir",
            str(out),
            *map(str, sources),
        ],
        capture_output=True,
        timeout=300,
        check=False,
    )
    made = [out / f"{s.stem}.{fmt.split(':')[0]}" for s in sources]
    if not all(p.exists() for p in made):
        pytest.skip(f"LibreOffice could not convert to {fmt}")
    return made


_UNO = """
import os, subprocess, sys, time, uno
from com.sun.star.beans import PropertyValue

def prop(name, value):
    p = PropertyValue(); p.Name = name; p.Value = value; return p

profile, pipe, jobs = sys.argv[1], sys.argv[2], sys.argv[3:]
office = subprocess.Popen(["soffice", "--headless", "--norestore", "--nologo",
                           "-env:UserInstallation=" + profile,
                           "--accept=pipe,name=%s;urp;" % pipe])
local = uno.getComponentContext()
resolver = local.ServiceManager.createInstanceWithContext(
    "com.sun.star.bridge.UnoUrlResolver", local)
for _ in range(240):
    try:
        ctx = resolver.resolve("uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe)
        break
    except Exception:
        time.sleep(0.5)
desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
for i in range(0, len(jobs), 3):
    src, dst, flt = jobs[i:i + 3]
    doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(src), "_blank", 0,
                                       (prop("Hidden", True),))
    doc.storeToURL(uno.systemPathToFileUrl(dst), (prop("FilterName", flt),
                                                  prop("Password", "secret")))
    doc.close(True)
try:
    desktop.terminate()
except Exception:
    pass
office.wait(60)
"""


def uno_encrypted(jobs: list[tuple[Path, Path, str]], profile: Path) -> None:
    """Save each (source, target, LibreOffice filter) with the password "secret"."""
    python = "/usr/bin/python3"
    if not SOFFICE or subprocess.run([python, "-c", "import uno"], capture_output=True).returncode:
        pytest.skip("LibreOffice's Python bridge (python3-uno) is not installed")
    args = [str(a) for job in jobs for a in job]
    subprocess.run(
        [python, "-c", _UNO, profile.as_uri(), f"pocketrag{os.getpid()}", *args],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if not all(target.exists() for _, target, _ in jobs):
        pytest.skip("LibreOffice could not save password-protected copies")


def rewritten(src: Path, dst: Path, change: dict[str, bytes | None]) -> Path:
    """A copy of the zip `src` with members replaced (bytes), removed (None) or added."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename in change:
                if change[info.filename] is not None:
                    new.writestr(info.filename, change[info.filename])
            else:
                new.writestr(info, old.read(info))
        for name, data in change.items():
            if data is not None and name not in old.namelist():
                new.writestr(name, data)
    return dst


def poisoned(src: Path, dst: Path, member: str, padding: int = 0) -> Path:
    """`src` with a billion-laughs DTD in `member` (after `padding` bytes of comment),
    its first text node made to use it."""
    with zipfile.ZipFile(src) as archive:
        xml = archive.read(member).decode()
    body = re.sub(r"^<\?xml[^>]*\?>\s*", "", xml)
    body = re.sub(r"(<(?:w:t|a:t|t|text:p|p|h1)(?: [^>]*)?>)", r"\1&lol9;", body, count=1)
    comment = f"<!--{'x' * padding}-->" if padding else ""
    head = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n{comment}{LAUGHS}\n'
    return rewritten(src, dst, {member: (head + body).encode()})


def zip_bomb_ratio(path: Path) -> Path:
    """A .docx whose document.xml inflates from about 100 KB to 100 MB (1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as member:
            member.write(b"<w:document>")
            block = b" " * (1 << 20)
            for _ in range(100):
                member.write(block)
    return path


def zip_bomb_members(path: Path, count: int = 10_001) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(count):
            archive.writestr(f"xl/media/{i}.bin", b"")
    return path


def zip_bomb_total(path: Path, members: int = 520) -> Path:
    """An EPUB of `members` members of 1 MiB each (under the ratio floor), 520 MiB in all."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip")
        for i in range(members):
            archive.writestr(f"OEBPS/blob{i}.xhtml", b"a" * (1 << 20))
    return path


ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"'
)


def make_odf(path: Path, body: str, kind: str = "text", encrypted: bool = False) -> Path:
    """An OpenDocument file by hand (for machines without LibreOffice): `body` inside
    office:body/office:`kind`; `encrypted`: its manifest says content.xml is encrypted."""
    media = f"application/vnd.oasis.opendocument.{kind}"
    encryption = (
        '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x">'
        '<manifest:algorithm manifest:algorithm-name="Blowfish CFB" '
        'manifest:initialisation-vector="x"/></manifest:encryption-data>'
        if encrypted
        else ""
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
        '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{media}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
        f"{encryption}</manifest:file-entry></manifest:manifest>"
    )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS}>'
        f"<office:body><office:{kind}>{body}</office:{kind}></office:body>"
        "</office:document-content>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), media)
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("content.xml", content)
    return path


def with_macro(src: Path, dst: Path, main_type: str, macro_type: str, part: str) -> Path:
    """`src` made macro-enabled as Office saves it: the main part's content type changed
    to `macro_type` and a VBA project (an auto-run macro) added at `part`."""
    with zipfile.ZipFile(src) as archive:
        types = archive.read("[Content_Types].xml").decode()
    types = types.replace(main_type, macro_type).replace(
        "</Types>",
        '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>',
    )
    macro = b'Attribute VB_Name = "Module1"\r\nSub AutoOpen()\r\nShell "calc.exe"\r\nEnd Sub\r\n'
    return rewritten(src, dst, {"[Content_Types].xml": types.encode(), part: macro})


def flag_encrypted(path: Path, member: str) -> Path:
    """Set the "encrypted" bit of `member` in both of its zip headers, as a zip tool with
    a password does (zipfile itself cannot write it)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    data[info.header_offset + 6] |= 0x1  # the local header's flags
    name = member.encode()
    at = data.find(b"PK\x01\x02")
    while at >= 0:  # the central directory entry of the same name
        size = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + size] == name:
            data[at + 8] |= 0x1
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return path
