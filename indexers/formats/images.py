"""Image files (PNG, JPEG, TIFF, WebP): their text, read by OCR (`indexers.ocr`).

An image is one document, cited by its path; a multi-page TIFF (a fax, a scanner's
output) one per page, cited as `scan.tif#page=2`. Pillow reads the header first, which
gives the size without decoding a pixel, so an image over `MAX_PIXELS` (a decompression
bomb: a 30000x30000 PNG is a few hundred kilobytes on disk and 2.7 GB decoded) is one
skip reason before any memory is spent; only these formats' decoders are ever asked.
A corrupt or truncated image is one skip reason too. Without the engine, an image whose
header is sound is skipped, before it is decoded, with a reason that names
`pocketrag[ocr]`: so what a file's header says (corrupt, too large) is reported alike
with or without the engine.
"""

from __future__ import annotations

import re
import struct
import warnings as py_warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

from indexers import ocr
from indexers.documents import Document, LoadError
from indexers.formats.containers import open_file

#: The most pixels an image may have (50 MP: a 600 dpi A4 scan is 35 MP, a 48 MP photo).
MAX_PIXELS = 50_000_000
#: The most pages read of a multi-page TIFF; the rest are a warning.
MAX_FRAMES = 500
#: Pillow's names of the formats read here (`Image.open(formats=...)`): no other decoder
#: ever sees these files, whatever their bytes claim.
FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")  # JPEG's opener also reads a phone's MPO
_KINDS = "PNG, JPEG, TIFF or WebP"
#: The skip reason's subject without the engine.
NEEDS_OCR = "image needs OCR"
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def read_image(path: Path, warnings: list[str]) -> Iterator[Document]:
    """The text of an image, one document per page (TIFF), titled by the file's name."""
    from PIL import Image, UnidentifiedImageError

    with open_file(path) as handle:
        try:
            with py_warnings.catch_warnings():
                py_warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(handle, formats=FORMATS)
            frames = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
            for index in range(min(frames, MAX_FRAMES)):
                if index:
                    image.seek(index)
                _check_size(*image.size)
                if not index:  # a sound header: now it takes the engine to go on
                    ocr.require(NEEDS_OCR)
                if image.format == "JPEG":  # decode at a reduced scale when that suffices
                    image.draft("RGB", (ocr.MAX_SIDE, ocr.MAX_SIDE))
                image.load()
                text = ocr.recognize(image)
                yield Document(text, path.name, anchor=f"page={index + 1}" if frames > 1 else "")
        except Image.DecompressionBombError as exc:  # Pillow's own limit, met in open
            found = _BOMB_PIXELS.search(str(exc))
            raise LoadError(_too_large(int(found.group(1)) if found else 0)) from None
        except UnidentifiedImageError:
            raise LoadError(f"unreadable image (not a {_KINDS} image)") from None
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as exc:
            # Pillow's ways of saying corrupt: a truncated file, "broken PNG file"
            # (SyntaxError), a bad zlib stream.
            raise LoadError(f"unreadable image ({type(exc).__name__}: {exc})") from None
    if frames > MAX_FRAMES:
        warnings.append(f"only the first {MAX_FRAMES} of {frames} pages read")


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise LoadError(_too_large(width * height, f"{width}x{height}"))


def _too_large(pixels: int, size: str = "") -> str:
    what = f"{size} pixels" if size else f"{pixels:,} pixels" if pixels else "too many pixels"
    return f"image too large ({what}; the limit is {MAX_PIXELS // 1_000_000} megapixels)"


SUFFIXES = dict.fromkeys((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"), read_image)
BINARY = frozenset(SUFFIXES)
