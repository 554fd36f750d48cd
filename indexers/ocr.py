"""Text out of a picture of text: the OCR engine behind scanned PDF pages and image files.

The engine is RapidOCR (`rapidocr`, the `pocketrag[ocr]` extra): PaddleOCR's detection
and recognition models run by ONNX Runtime, shipped inside its wheel. It is handed those
files by path, so it never reaches for its model hub: nothing is downloaded at run time.
It is imported on the first scan met (about a second, then the models load), never by
`import indexers.ocr`; without it, the caller's skip reason names the extra
(`missing_reason`). Chosen over Tesseract, which is faster and more exact on clean print,
because Tesseract is a system program and its models no pip install can bring.

Every picture is cut to `MAX_SIDE` pixels on its longest side first: the engine shrinks
anything larger to that before it looks, so more pixels would only cost memory. Each page
read is counted through the progress hook of the build in force (`reporting`), as phase
`ocr`, so a long scan shows it is moving, and its text is kept in the build's OCR cache
(`indexers.ocr_cache`), so no page is read twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexers.documents import LoadError
from indexers.ocr_cache import OcrCache

if TYPE_CHECKING:
    from PIL import Image

#: The extra that brings the engine, as the skip reasons name it.
EXTRA = "pocketrag[ocr]"
#: The longest side, in pixels, of what the engine is shown (RapidOCR's own max_side_len).
MAX_SIDE = 2000
#: A picture whose darkest and lightest grey differ by less than this is blank: no OCR.
BLANK_CONTRAST = 16
#: The modules the extra brings; an ImportError naming one of them means "not installed".
_PACKAGES = ("rapidocr", "pypdfium2", "cv2", "onnxruntime")


class OcrMissing(LoadError):
    """No OCR engine here: the message is the skip reason, naming the extra to install."""


def missing_reason(what: str, detail: str = "") -> str:
    """`what` ("image needs OCR") and how to have it read; `detail`: what a broken
    install said."""
    return f"{what}: install {EXTRA} to read it" + (f" ({detail})" if detail else "")


@dataclass
class _Counter:
    progress: Callable[[str, int, int], None]
    cache_dir: Path | None = None
    pages: int = 0


_REPORTING: contextvars.ContextVar[_Counter | None] = contextvars.ContextVar(
    "ocr_progress", default=None
)


@contextlib.contextmanager
def reporting(
    progress: Callable[[str, int, int], None], cache_dir: Path | None = None
) -> Iterator[None]:
    """While inside, each page read by OCR calls `progress("ocr", pages so far, 0)`
    (0: how many scans a run holds is not known ahead), and what OCR reads is kept in
    `cache_dir` (`indexers.ocr_cache`): a page met again is not read again, nor counted."""
    token = _REPORTING.set(_Counter(progress, cache_dir))
    try:
        yield
    finally:
        _REPORTING.reset(token)


def _tick() -> None:
    counter = _REPORTING.get()
    if counter is not None:
        counter.pages += 1
        counter.progress("ocr", counter.pages, 0)


def check() -> None:
    """Raise OcrMissing unless the engine loads; its message says what a broken install
    reported ("" when the extra is simply not installed)."""
    _engine()


def require(what: str) -> None:
    """Raise OcrMissing with the skip reason for `what` unless the engine loads."""
    try:
        _engine()
    except OcrMissing as exc:
        raise OcrMissing(missing_reason(what, str(exc))) from None


_loaded: Any = None
_failed: str | None = None
_engine_id = ""  # the engine's version and models, for the cache


def _engine() -> Any:
    """The RapidOCR engine, made once per process (its models load on its first call)."""
    global _loaded, _failed, _engine_id
    if _loaded is not None:
        return _loaded
    if _failed is not None:
        raise OcrMissing(_failed)
    try:
        import rapidocr
        from rapidocr import RapidOCR
    except ImportError as exc:  # not installed (the usual case), or broken (say it)
        _failed = "" if exc.name in _PACKAGES else f"{type(exc).__name__}: {exc}"
        raise OcrMissing(_failed) from None
    models = Path(rapidocr.__file__).parent / "models"
    paths = {kind: sorted(models.glob(f"*{kind}*.onnx")) for kind in ("det", "rec", "cls")}
    if not paths["det"] or not paths["rec"]:
        _failed = f"its models are not in {models}; reinstall {EXTRA}"
        raise OcrMissing(_failed)
    params: dict[str, Any] = {
        "Det.model_path": str(paths["det"][0]),
        "Rec.model_path": str(paths["rec"][0]),
        # The angle classifier turns lines it judges upside down: on upright pages it
        # turned a good line into noise, and it costs time. Scans are upright.
        "Global.use_cls": False,
        "Global.max_side_len": MAX_SIDE,
        # Detection shrinks a picture to MAX_SIDE, never enlarges it: its default (the
        # short side up to 736) made a 1200x200 screenshot 4088x736, 9 s and 880 MB.
        "Det.limit_type": "max",
        "Det.limit_side_len": MAX_SIDE,
        "Global.log_level": "error",
    }
    if paths["cls"]:  # never used; given so that no config path asks for a download
        params["Cls.model_path"] = str(paths["cls"][0])
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    try:
        _loaded = RapidOCR(params=params)
    except Exception as exc:  # a version whose settings differ: said once, for every scan
        _failed = f"the engine did not start: {type(exc).__name__}: {exc}"
        raise OcrMissing(_failed) from None
    version = getattr(rapidocr, "__version__", "") or _version("rapidocr")
    models = (paths["det"][0], paths["rec"][0])
    _engine_id = " ".join(["rapidocr", version, *(f"{p.name}:{p.stat().st_size}" for p in models)])
    return _loaded


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def prepared(image: Image.Image) -> Image.Image:
    """`image` as the engine reads it best: upright (EXIF), RGB on white (a transparent
    screenshot's text would be black on black), 16-bit greys scaled, at most MAX_SIDE."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    return image


def recognize(image: Image.Image) -> str:
    """The text in `image`, lines in reading order ("" when blank or none is found);
    counted as one page read. OcrMissing without the engine; LoadError when it fails."""
    engine = _engine()
    image = prepared(image)
    low, high = image.convert("L").getextrema()
    if high - low < BLANK_CONTRAST:
        return ""
    counter = _REPORTING.get()
    kept = None
    if counter is not None and counter.cache_dir is not None:
        cache = OcrCache(counter.cache_dir, _engine_id)
        where, text = cache.get(image)
        if text is not None:
            return text
        kept = (cache, where)
    try:
        result = engine(image)
    except Exception as exc:  # the engine's own errors: one page, never the run
        raise LoadError(f"OCR failed ({type(exc).__name__}: {exc})") from None
    finally:
        _tick()
    found = "" if result.boxes is None or not result.txts else as_text(result.boxes, result.txts)
    if kept is not None:
        kept[0].put(kept[1], found)
    return found


def as_text(boxes: Sequence[Any], texts: Sequence[str]) -> str:
    """Boxes (four corners each) and their text -> lines: boxes that share a line are
    joined left to right with a space; a gap of more than a line's height between lines
    starts a new paragraph (a blank line), so chunks can cut where the page does."""
    items = []
    for box, text in zip(boxes, texts, strict=False):
        text = str(text).strip()
        if not text:
            continue
        ys = [float(p[1]) for p in box]
        items.append((min(ys), max(ys), min(float(p[0]) for p in box), text))
    items.sort()
    lines: list[list[tuple[float, float, float, str]]] = []
    for item in items:
        line = lines[-1] if lines else None
        if line is not None:
            top, bottom = min(i[0] for i in line), max(i[1] for i in line)
            middle = (item[0] + item[1]) / 2
            if top <= middle <= bottom:
                line.append(item)
                continue
        lines.append([item])
    out: list[str] = []
    previous_bottom: float | None = None
    for line in lines:
        top, bottom = min(i[0] for i in line), max(i[1] for i in line)
        if previous_bottom is not None and top - previous_bottom > bottom - top:
            out.append("")
        out.append(" ".join(i[3] for i in sorted(line, key=lambda i: i[2])))
        previous_bottom = bottom
    return "\n".join(out)
