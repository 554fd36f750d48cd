"""XML: news feeds (RSS 2.0, RSS 1.0/RDF, Atom) one document per item, and any other XML
document as the text of its elements, never its markup.

A feed's item is a document (`item=N`, counting from 1 in the feed's order) titled by
the feed, its own title the section (`Feed name › Item title`), its text a line each
for its link, date, author and categories, then its content (Atom `content`, RSS
`content:encoded`, else the summary or description) with any HTML in it turned into
text (`rag.core.html_text`): an `<img srcset=...>` is markup, not a passage. Other XML
reads as lines `element.path: text`, an element with mixed content (text around inline
elements) as one line of its text, each child of the root a paragraph.

Parsed with defusedxml as a stream (`iterparse`, each item let go once read): a document
that declares entities (billion laughs, an external entity reading a local file) is
refused with a reason before anything is expanded or fetched. Expat reads UTF-8, UTF-16
and the single-byte encodings; a feed in another (Shift-JIS, GBK) is decoded by Python
and parsed again, up to REENCODE_LIMIT.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from indexers.documents import Document, LoadError, decode
from indexers.formats.containers import MiB, open_file
from indexers.formats.tables import TextBuilder

ITEMS = frozenset({"item", "entry"})
#: The elements whose `title` is the feed's.
FEED_PARENTS = frozenset({"channel", "feed"})
CONTENT = ("encoded", "content")
SUMMARY = ("summary", "description")
DATES = ("pubDate", "published", "updated", "date", "modified", "issued")
#: A feed in an encoding expat cannot read is decoded whole: at most this large.
REENCODE_LIMIT = 32 * MiB
_DECLARATION = re.compile(rb"\A(\xef\xbb\xbf)?<\?xml[^>]*\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_BREAKS = re.compile(r"[\r\n]+")
_LOCAL: dict[Any, str] = {}


def local(tag: Any) -> str:
    """A tag without its namespace (`{http://www.w3.org/2005/Atom}entry` -> `entry`)."""
    name = _LOCAL.get(tag)
    if name is None:
        name = tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
        if len(_LOCAL) < 10_000:
            _LOCAL[tag] = name
    return name


def one_line(text: str) -> str:
    """`tables.one_line`, for the many short strings of a feed at a third of its cost."""
    return " ".join(text.split())


def load_xml(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A feed's items, or another XML document's element text."""
    with open_file(path) as handle:
        try:
            yield from _read(handle, path.name)
        except ValueError as exc:
            if "multi-byte encodings" not in str(exc):
                raise
            yield from _read(_reencoded(handle), path.name)


def _reencoded(handle: BinaryIO) -> BinaryIO:
    """The document as UTF-8, decoded by Python from the encoding it declares."""
    handle.seek(0)
    data = handle.read(REENCODE_LIMIT + 1)
    if len(data) > REENCODE_LIMIT:
        raise LoadError(
            f"an XML encoding expat cannot read, in a file over {REENCODE_LIMIT // MiB} MiB"
        )
    declaration = _DECLARATION.match(data)
    found = _ENCODING.search(declaration.group()) if declaration else None
    body = data[declaration.end() :] if declaration else data
    try:
        text = body.decode(found.group(1).decode("ascii"), "replace") if found else decode(body)
    except LookupError as exc:
        raise LoadError(f"not readable XML ({exc})") from None
    return io.BytesIO(text.encode("utf-8"))


def _read(handle: BinaryIO, name: str) -> Iterator[Document]:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    try:
        events = iterparse(handle, events=("start", "end"))
        _, root = next(events)
        kind = local(root.tag)
        if kind in ("rss", "RDF", "feed"):
            yield from _feed(events, kind, name)
        else:
            yield from _elements(events, root, name)
    except DefusedXmlException as exc:
        what = type(exc).__name__.replace("Forbidden", "").lower() or "markup"
        raise LoadError(
            f"XML {what} declarations refused (entity expansion or an external reference: "
            f"{one_line(str(exc))[:120]})"
        ) from None
    except ParseError as exc:
        raise LoadError(f"not well-formed XML ({exc})") from None
    except StopIteration:
        raise LoadError("not well-formed XML (empty)") from None


def _feed(events: Iterator[tuple[str, Any]], root: str, name: str) -> Iterator[Document]:
    """The items of a feed, each read at its end and let go."""
    stack = [root]
    title = ""
    about: list[str] = []  # the feed's own description, for a feed without items
    number = 0
    for event, elem in events:
        tag = local(elem.tag)
        if event == "start":
            stack.append(tag)
            continue
        stack.pop()
        parent = stack[-1] if stack else ""
        if tag in ITEMS:
            number += 1
            yield _item(elem, title or name, name, number)
            elem.clear()
        elif parent in FEED_PARENTS and not any(s in ITEMS for s in stack):
            if tag == "title" and not title:
                title = one_line("".join(elem.itertext()))
            elif tag in ("description", "subtitle") and not about:
                about.append(html_text("".join(elem.itertext())))
    if not number and about:
        builder = TextBuilder(title or name, name)
        builder.paragraph(about[0])
        yield from builder.parts(final=True)


def _item(elem: Any, feed_title: str, name: str, number: int) -> Document:
    fields: dict[str, Any] = {}
    for child in elem:
        fields.setdefault(local(child.tag), child)
    heading = _text(fields.get("title")) or f"Item {number}"
    builder = TextBuilder(
        feed_title, name, anchor=f"item={number}", section=((1, one_line(heading)),)
    )
    meta = [
        ("Link", _link(elem)),
        ("Date", next((_text(fields[d]) for d in DATES if d in fields), "")),
        ("Author", _author(elem)),
        ("Categories", ", ".join(filter(None, (_category(c) for c in elem if local(c.tag) in (
            "category", "subject"))))),
    ]  # fmt: skip
    builder.paragraph("\n".join(f"{k}: {one_line(v)}" for k, v in meta if v.strip()))
    body = next((fields[c] for c in CONTENT if c in fields), None)
    if body is None:
        body = next((fields[s] for s in SUMMARY if s in fields), None)
    builder.paragraph(_content(body))
    return next(builder.parts(final=True), Document(heading, feed_title, f"item={number}"))


def _text(elem: Any) -> str:
    return one_line("".join(elem.itertext())) if elem is not None else ""


def _link(item: Any) -> str:
    """RSS: the link's text; Atom: the href of the alternate link (or the first)."""
    links = [c for c in item if local(c.tag) == "link"]
    for link in links:
        if link.get("href") and link.get("rel", "alternate") == "alternate":
            return link.get("href")
    for link in links:
        if link.get("href") or (link.text or "").strip():
            return link.get("href") or link.text.strip()
    return ""


def _author(item: Any) -> str:
    for child in item:
        if local(child.tag) in ("author", "creator"):
            names = [local(c.tag) for c in child]
            if "name" in names:
                return _text(child[names.index("name")])
            return _text(child)
    return ""


def _category(elem: Any) -> str:
    return one_line(elem.get("term") or elem.get("label") or "".join(elem.itertext()))


def _content(elem: Any) -> str:
    """An item's content as text: Atom's type="text" as is, "xhtml" from its elements,
    anything else (HTML, escaped or in CDATA) through the HTML-to-text parser."""
    if elem is None:
        return ""
    kind = (elem.get("type") or "html").lower()
    if kind in ("xhtml", "application/xhtml+xml"):
        from xml.etree.ElementTree import tostring

        for inner in elem.iter():
            inner.tag = local(inner.tag)
        markup = "".join(tostring(child, encoding="unicode") for child in elem)
        return html_text((elem.text or "") + markup)
    text = "".join(elem.itertext())
    return text.strip() if kind in ("text", "text/plain") else html_text(text)


def html_text(markup: str) -> str:
    """The text of an HTML fragment (a feed item's content, a mail's HTML body): a line
    break in the source is a space, as a browser shows it, unless the markup has `<pre>`."""
    from rag.core.html_text import html_to_text

    if "<pre" not in markup.lower():
        markup = _BREAKS.sub(" ", markup)
    return html_to_text(markup).strip()


def _elements(events: Iterator[tuple[str, Any]], root: Any, name: str) -> Iterator[Document]:
    """Another XML document: `path: text` lines, each child of the root a paragraph."""
    builder = TextBuilder("", name)
    stack: list[tuple[str, list[str]]] = [(local(root.tag), [])]
    for event, elem in events:
        tag = local(elem.tag)
        if event == "start":
            stack.append((tag, []))
            continue
        if len(stack) == 1:  # the root's end
            break
        _, lines = stack.pop()
        path = ".".join(t for t, _ in stack[1:] + [(tag, [])])
        own = (elem.text or "").strip() or any((c.tail or "").strip() for c in elem)
        if own and len(elem):  # mixed content: its text as one line
            lines = [f"{path}: {one_line(''.join(elem.itertext()))}"]
        elif own:
            lines = [f"{path}: {one_line(elem.text)}"]
        if len(stack) == 1:
            builder.paragraph("\n".join(lines))
            yield from builder.parts()
            elem.clear()
        else:
            stack[-1][1].extend(lines)
    own = (root.text or "").strip()
    if own:
        builder.paragraph(f"{local(root.tag)}: {one_line(own)}")
    yield from builder.parts(final=True)


SUFFIXES = {".rss": load_xml, ".atom": load_xml, ".rdf": load_xml, ".xml": load_xml}
BINARY: frozenset[str] = frozenset()
