"""EPUB e-books (2 and 3): the zip's package document (OPF) gives the title and the
reading order (the spine), its table of contents (EPUB 3 nav, else the EPUB 2 NCX) each
chapter's title, and each chapter's XHTML is read on its own (`markup`).

Why not ebooklib: `read_epub` reads every item of the book into memory, images and fonts
included, before a word is given; here one chapter at a time is read, and ebooklib would
add nothing the OPF does not say. XML is parsed with defusedxml (no entity expansion).
One document per chapter (`chapter=N`, counting the spine's chapters with text), its
title the section, its own h1-h6 below it. A book under DRM (META-INF/encryption.xml
naming anything but obfuscated fonts, or an Adobe rights.xml) is skipped as encrypted.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from indexers.documents import Document, LoadError, decode
from indexers.formats.containers import MiB, as_corrupt, open_zip, read_member
from indexers.formats.markup import add_xhtml
from indexers.formats.tables import TextBuilder, one_line

#: The largest chapter parsed whole (a whole novel in one file is a few MB).
MAX_CHAPTER = 32 * MiB
MAX_META = 16 * MiB
#: Encryption that only obfuscates embedded fonts (IDPF, Adobe): the text is readable.
FONT_OBFUSCATION = frozenset(
    {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
)
#: What a writer puts in an untitled book's metadata (LibreOffice): not a title.
DEFAULT_TITLES = frozenset({"Unknown Title", "Unknown", "Untitled"})
XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/x-dtbook+xml"})


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _parse(archive: zipfile.ZipFile, name: str) -> Any:
    from defusedxml.ElementTree import fromstring

    with as_corrupt("EPUB"):
        return fromstring(read_member(archive, name, MAX_META))


def _refuse_drm(archive: zipfile.ZipFile) -> None:
    names = set(archive.namelist())
    if "META-INF/rights.xml" in names:
        raise LoadError("encrypted (DRM)")
    if "META-INF/encryption.xml" in names:
        methods = {
            e.get("Algorithm", "")
            for e in _parse(archive, "META-INF/encryption.xml").iter()
            if _local(e.tag) == "EncryptionMethod"
        }
        if methods - FONT_OBFUSCATION:
            raise LoadError("encrypted (DRM)")


def load_epub(path: Path, warnings: list[str]) -> Iterator[Document]:
    """An e-book: one document per chapter, in reading order."""
    with open_zip(path, before=_refuse_drm) as archive, as_corrupt("EPUB"):
        container = _parse(archive, "META-INF/container.xml")
        rootfile = next((e for e in container.iter() if _local(e.tag) == "rootfile"), None)
        if rootfile is None or not rootfile.get("full-path"):
            raise LoadError("corrupt: not an EPUB (no package document in container.xml)")
        opf_name = rootfile.get("full-path", "")
        opf = _parse(archive, opf_name)
        base = posixpath.dirname(opf_name)
        manifest = {e.get("id"): e for e in opf.iter() if _local(e.tag) == "item" and e.get("href")}
        title = next((one_line(e.text or "") for e in opf.iter() if _local(e.tag) == "title"), "")
        title = "" if title in DEFAULT_TITLES else title
        titles = _toc(archive, opf, manifest, base)
        number = 0
        for ref in (e for e in opf.iter() if _local(e.tag) == "itemref"):
            item = manifest.get(ref.get("idref"))
            if item is None or item.get("media-type") not in XHTML_TYPES:
                continue
            if "nav" in (item.get("properties") or "").split():
                continue  # the table of contents: its entries are the chapters' titles
            name = _join(base, item.get("href", ""))
            if name not in archive.NameToInfo:
                warnings.append(f"chapter {name} is missing from the book")
                continue
            markup = decode(read_member(archive, name, MAX_CHAPTER))
            heading = titles.get(name, "")
            builder = TextBuilder(
                title,
                path.name,
                anchor=f"chapter={number + 1}",
                section=((1, heading),) if heading else (),
                level_shift=1 if heading else 0,
            )
            add_xhtml(markup, builder, skip_heading=heading)
            docs = list(builder.parts(final=True))
            if docs:
                number += 1
                title = title or docs[0].title
                yield from docs


def _join(base: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(base, unquote(href.split("#", 1)[0])))


def _toc(archive: zipfile.ZipFile, opf: Any, manifest: dict, base: str) -> dict[str, str]:
    """Chapter file -> its title in the table of contents (the first entry naming it)."""
    titles: dict[str, str] = {}
    nav = next((i for i in manifest.values() if "nav" in (i.get("properties") or "").split()), None)
    spine = next((e for e in opf.iter() if _local(e.tag) == "spine"), None)
    ncx = manifest.get(spine.get("toc")) if spine is not None else None
    if nav is not None:
        name = _join(base, nav.get("href", ""))
        where = posixpath.dirname(name)
        for link in _parse(archive, name).iter():
            if _local(link.tag) == "a" and link.get("href"):
                text = one_line("".join(link.itertext()))
                titles.setdefault(_join(where, link.get("href", "")), text)
    elif ncx is not None:
        name = _join(base, ncx.get("href", ""))
        where = posixpath.dirname(name)
        for point in _parse(archive, name).iter():
            if _local(point.tag) != "navPoint":
                continue
            label = next((e for e in point.iter() if _local(e.tag) == "text"), None)
            content = next((e for e in point if _local(e.tag) == "content"), None)
            if label is not None and content is not None and content.get("src"):
                titles.setdefault(_join(where, content.get("src", "")), one_line(label.text or ""))
    return {k: v for k, v in titles.items() if v}


SUFFIXES = {".epub": load_epub}
BINARY = frozenset(SUFFIXES)
