"""Scans as a scanner or a screenshot makes them, for the OCR tests and benchmarks: text
rendered to pixels with a TrueType font found on this machine, saved as image files and
as image-only PDFs (no text layer); PDFs with a real text layer (pypdf, Helvetica); and
hostile images (a decompression bomb, corrupt files)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

#: The fonts tried, best first (fc-list names).
FONTS = ("DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans")


def find_font() -> str | None:
    """The file of a sans-serif TrueType font that fc-list knows, or None."""
    if shutil.which("fc-list") is None:
        return None
    for family in FONTS:
        listed = subprocess.run(
            ["fc-list", "-f", "%{file}|%{style}\n", family],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        upright = [
            file
            for file, _, styles in (line.partition("|") for line in listed.stdout.splitlines())
            if file.endswith(".ttf") and {"Book", "Regular"} & set(styles.split(","))
        ]
        if upright:
            return sorted(upright, key=len)[0]  # DejaVuSans.ttf before DejaVuSansCondensed
    return None


def text_image(
    font: str, lines: Sequence[str], *, size: int = 30, width: int = 1200, margin: int = 60
) -> Image.Image:
    """Black text on a white greyscale page, one line per entry ("" leaves a gap)."""
    from PIL import Image, ImageDraw, ImageFont

    face = ImageFont.truetype(font, size)
    step = int(size * 1.6)
    image = Image.new("L", (width, margin * 2 + step * max(len(lines), 1)), 255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((margin, margin + row * step), line, font=face, fill=0)
    return image


def image_pdf(pages: Sequence[Image.Image], dpi: int = 150) -> bytes:
    """An image-only PDF (Pillow's writer: no text layer), one page per image."""
    out = io.BytesIO()
    first, *rest = [p.convert("RGB") for p in pages]
    first.save(out, "PDF", save_all=True, append_images=rest, resolution=dpi)
    return out.getvalue()


def text_pdf(pages: Sequence[Sequence[str]]) -> bytes:
    """A PDF with a text layer: each page's lines in Helvetica, as a word processor writes."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    })  # fmt: skip
    font_ref = writer._add_object(font)
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        shown = b" ".join(b"(" + _escaped(line) + b") '" for line in lines)
        stream = DecodedStreamObject()
        stream.set_data(b"BT /F1 12 Tf 72 740 Td 16 TL " + shown + b" ET")
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _escaped(line: str) -> bytes:
    return (
        line.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    )


def joined_pdf(*parts: bytes) -> bytes:
    """The pages of several PDFs, in order, as one PDF (a text page, then a scan...)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for part in parts:
        writer.append(PdfReader(io.BytesIO(part)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A valid greyscale PNG of `width` x `height` black pixels: under a megabyte on disk,
    `width * height` bytes once decoded (900 MB by default). Its deflate stream is one
    fully flushed block of rows, compressed once and repeated (a block after a full flush
    refers to nothing before it), so writing it costs a second, not 900 MB through zlib."""
    row = b"\x00" * (width + 1)  # filter byte 0, then the row's pixels
    rows = max(1, min(height, (1 << 22) // len(row)))  # a block of about 4 MB of rows
    repeats, rest = divmod(height, rows)
    body = bytearray(b"\x78\xda")  # zlib header, best compression
    adler = 1
    for count, times in ((rows, repeats), (rest, 1 if rest else 0)):
        raw = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = raw.compress(row * count) + raw.flush(zlib.Z_FULL_FLUSH)
        for _ in range(times):
            body += block
            adler = zlib.adler32(row * count, adler)
    body += zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # the final block
    body += struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", bytes(body))
        + _chunk(b"IEND", b"")
    )  # fmt: skip
    return path


def corrupt_png(path: Path, source: Image.Image) -> Path:
    """`source` as a PNG whose pixel data is overwritten with noise after the header."""
    out = io.BytesIO()
    source.save(out, "PNG")
    data = bytearray(out.getvalue())
    start = data.index(b"IDAT") + 4
    data[start + 16 : start + 400] = bytes((i * 37 + 11) % 256 for i in range(384))
    path.write_bytes(bytes(data))
    return path
