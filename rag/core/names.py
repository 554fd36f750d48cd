"""Index names: a plain name (an index under `$RAG_HOME/indexes`) or a folder path.

In the kernel because every front end checks names before anything heavy is imported: the
CLI's client of `rag serve` decides with it whether a server may open an index, and a
server refuses paths with it.
"""

from __future__ import annotations

import os
import re

#: A plain index name: letters, digits, '.', '_' or '-', up to 64, not starting with a dot.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_path_name(name: str) -> bool:
    """True when `name` is a folder path (has a slash, or starts with '~' or '.')."""
    return "/" in name or os.sep in name or name.startswith(("~", "."))
