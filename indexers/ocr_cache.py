"""What OCR read, kept by the pixels it read (`$RAG_HOME/cache/ocr`): a page is read once.

OCR costs seconds a page, and an index run re-reads every file it could not index: a
photo with no text, a scan that failed to embed, every file of a `--rebuild`. So each
page's text is kept under the SHA-256 of the engine's id and the exact pixels it was
shown: the same page, in the same or another file, is never read twice, and a new engine
or new settings (`VERSION`) read it afresh. The cache only ever saves work: a read or a
write that fails (a full or read-only disk) is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

#: Raised when what the engine is shown or how its output is joined changes (indexers.ocr).
VERSION = "1"


class OcrCache:
    def __init__(self, folder: Path, engine_id: str) -> None:
        self.folder = folder
        self.engine_id = f"{VERSION} {engine_id}"

    def _path(self, image: Image.Image) -> Path:
        digest = hashlib.sha256(f"{self.engine_id}|{image.mode}|{image.size}|".encode())
        digest.update(image.tobytes())
        key = digest.hexdigest()
        return self.folder / key[:2] / f"{key}.txt"

    def get(self, image: Image.Image) -> tuple[Path, str | None]:
        """(where `image`'s text is kept, the text or None when it is not there yet)."""
        path = self._path(image)
        try:
            return path, path.read_text(encoding="utf-8")
        except (OSError, UnicodeError):
            return path, None

    def put(self, path: Path, text: str) -> None:
        """Keep `text` at `path` (from `get`), whole or not at all."""
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(temporary, path)
            except OSError:
                os.unlink(temporary)
                raise
