"""Jupyter notebooks (.ipynb, nbformat 4 and the older 3): markdown as text with its
headings, code as code, and the text a run printed; never images or other base64 data.

Where a citation points: the cell (`cell=N`, counting every cell from 1, as a notebook is
read top to bottom). A document per cell would make a tiny chunk of every `import`
line, so consecutive cells share a document while together they fit about one chunk
(RUN_CHARS); a markdown heading always starts a new one, and a long cell is a document
of its own. A chunk then cites the cell it starts in and stays under one heading. The
title is the notebook's metadata title, else its first heading, else the file name; each
heading gives the cells below it their section. Outputs keep their text (`text/plain`,
else `text/markdown`, else the text of `text/html`), capped per cell; an error keeps its
name and message, not its traceback of terminal colour codes. Nothing is run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from indexers.documents import (
    Document,
    Heading,
    LoadError,
    Section,
    clean,
    decode,
    section_after,
)
from indexers.formats.containers import MiB, read_whole
from indexers.formats.feeds import html_text
from indexers.formats.tables import one_line

#: Parsed whole with json: a notebook full of images is large, its base64 costs its size.
MAX_NOTEBOOK = 64 * MiB
#: Consecutive cells share a document up to about this many characters (one chunk).
RUN_CHARS = 1000
#: The most characters of output kept per cell (a loop printing a million lines).
MAX_OUTPUT_CHARS = 20_000
# Linear: the line is matched whole, never split two ways (see indexers.loaders).
_ATX = re.compile(r"^(#{1,6})[ \t]+([^\n]+)$", re.MULTILINE)
#: An image pasted into markdown is inline base64 (`![](data:image/png;base64,...)`).
_DATA_URI = re.compile(r"data:[\w/+.-]{1,100};base64,[A-Za-z0-9+/=\s]{64,}")


def load_ipynb(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A notebook, one document per run of cells (`cell=N` of the first)."""
    notebook = _parse(path)
    cells = _cells(notebook)
    meta = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
    language = _language(meta)
    rendered = [(i, *_render(cell, language)) for i, cell in enumerate(cells, start=1)]
    title = meta.get("title") if isinstance(meta.get("title"), str) else ""
    title = one_line(title) or next((h[0][2] for _, _, h in rendered if h), "") or path.name
    section: Section = ()
    run: list[tuple[int, str, list[Heading]]] = []
    size = 0
    for number, text, headings in rendered:
        if not text:
            continue
        if run and (headings and headings[0][0] == 0 or size + len(text) > RUN_CHARS):
            doc = _document(run, title, section)
            section = section_after(section, doc.headings)
            yield doc
            run, size = [], 0
        run.append((number, text, headings))
        size += len(text) + 2
    if run:
        yield _document(run, title, section)


def _parse(path: Path) -> dict[str, Any]:
    data = read_whole(path, MAX_NOTEBOOK, "notebooks")
    try:
        notebook = json.loads(decode(data))
    except json.JSONDecodeError as exc:
        raise LoadError(f"not a Jupyter notebook (invalid JSON: {exc})") from None
    except RecursionError:
        raise LoadError("not a Jupyter notebook (nested too deeply to read)") from None
    if not isinstance(notebook, dict) or not ("cells" in notebook or "worksheets" in notebook):
        raise LoadError("not a Jupyter notebook (no cells)")
    return notebook


def _cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    """nbformat 4's `cells`, or nbformat 3's cells of every worksheet."""
    if isinstance(notebook.get("cells"), list):
        cells = notebook["cells"]
    else:
        sheets = notebook.get("worksheets")
        sheets = sheets if isinstance(sheets, list) else []
        cells = [c for s in sheets if isinstance(s, dict) for c in s.get("cells") or []]
    return [c for c in cells if isinstance(c, dict)]


def _language(meta: dict[str, Any]) -> str:
    for key, field in (("kernelspec", "language"), ("language_info", "name")):
        spec = meta.get(key)
        if isinstance(spec, dict) and isinstance(spec.get(field), str):
            return one_line(spec[field])[:20]
    return ""


def _source(value: Any) -> str:
    """A cell's source or an output's text: a string, or a list of lines."""
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _render(cell: dict[str, Any], language: str) -> tuple[str, list[Heading]]:
    """A cell's text, and the headings in it (offsets in that text)."""
    kind = cell.get("cell_type")
    source = clean(_source(cell.get("source", cell.get("input")))).strip()
    if kind == "heading":  # nbformat 3
        level = cell.get("level") if isinstance(cell.get("level"), int) else 1
        source = "#" * min(max(level, 1), 6) + " " + one_line(source) if source else ""
        kind = "markdown"
    if kind == "markdown":
        source = _DATA_URI.sub("data:…", source)
        headings = [
            (m.start(), len(m.group(1)), one_line(m.group(2).rstrip(" \t#")))
            for m in _ATX.finditer(source)
        ]
        return source, [h for h in headings if h[2]]
    if kind != "code":
        return source, []
    parts = [f"```{language}\n{source}\n```"] if source else []
    output = _outputs(cell.get("outputs"))
    if output:
        parts.append("Output:\n" + output)
    return "\n\n".join(parts), []


def _outputs(outputs: Any) -> str:
    """The text of a code cell's outputs, at most MAX_OUTPUT_CHARS."""
    texts: list[str] = []
    for out in outputs if isinstance(outputs, list) else []:
        if not isinstance(out, dict):
            continue
        kind = out.get("output_type")
        if kind in ("stream", "pyout"):
            texts.append(_source(out.get("text")))
        elif kind == "error" or kind == "pyerr":
            texts.append(f"{_source(out.get('ename'))}: {_source(out.get('evalue'))}")
        elif kind in ("execute_result", "display_data"):
            texts.append(_rich(out.get("data")))
    text = clean("\n".join(t.strip("\r\n") for t in texts if t.strip()))
    if len(text) > MAX_OUTPUT_CHARS:
        text = text[:MAX_OUTPUT_CHARS].rstrip() + "\n… (output cut)"
    return text


def _rich(data: Any) -> str:
    """A rich output's text form; images, scripts and widgets have none."""
    if not isinstance(data, dict):
        return ""
    for kind in ("text/plain", "text/markdown"):
        if kind in data:
            return _source(data[kind])
    if "text/html" in data:
        return html_text(_source(data["text/html"]))
    return ""


def _document(run: list[tuple[int, str, list[Heading]]], title: str, section: Section) -> Document:
    texts: list[str] = []
    headings: list[Heading] = []
    offset = 0
    for _, text, own in run:
        headings += [(offset + o, level, h) for o, level, h in own]
        texts.append(text)
        offset += len(text) + 2
    return Document(
        "\n\n".join(texts), title, anchor=f"cell={run[0][0]}", headings=headings, section=section
    )


SUFFIXES = {".ipynb": load_ipynb}
BINARY: frozenset[str] = frozenset()
