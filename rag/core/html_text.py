"""HTML -> the text a reader sees (and the page's title), with the standard library only.

One parser for every place that reads markup without trafilatura, or after it found no
main content: a search snippet or a page going into a prompt (`rag.packing`), a page
that `rag.web.fetch` could not extract, a tiny HTML file being indexed (`indexers.loaders`).
Scripts, styles, comments, attributes and `<head>` never come out; block-level tags
become line breaks; entities are decoded. The `<title>` is kept apart, never in the text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import NamedTuple

#: Elements whose content a browser does not show. (`<head>` is hidden too, until
#: `</head>` or, where a sloppy page never closes it, `<body>`.)
INVISIBLE = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object"})
#: Page furniture around the main text: also skipped where only the main text is wanted.
BOILERPLATE = frozenset({"nav", "header", "footer"})
#: Elements that start a new line.
BLOCK = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header"}
    | {"footer", "nav", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "hr", "title"}
)
_SPACES = re.compile(r"[ \t\r\f\v]+")


class HtmlText(NamedTuple):
    title: str
    text: str


class _VisibleText(HTMLParser):
    """Collects the visible text (without the `skip` elements) and the first `<title>`."""

    def __init__(self, skip: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip = skip
        self._hidden = 0  # open elements of `skip`
        self._in_head = False
        self._in_title = False
        self._title_done = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "head":
            self._in_head = True
        elif tag == "body":
            self._in_head = False
        elif tag == "title":
            self._in_title = True
        if tag in self._skip:
            self._hidden += 1
        elif tag in BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag in BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self._in_head = False
        elif tag == "title":
            self._in_title = False
            self._title_done = bool("".join(self.title_parts).strip())
        if tag in self._skip:
            self._hidden = max(0, self._hidden - 1)
        elif tag in BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            # The document's title; a later one (an SVG's, inside the body) is not.
            if not self._title_done and not self._hidden:
                self.title_parts.append(data)
        elif not self._hidden and not self._in_head:
            self.parts.append(data)


def parse_html(markup: str, *, skip_boilerplate: bool = False) -> HtmlText:
    """The title and visible text of an HTML document or fragment, entities decoded: spaces
    collapsed, each block on its own line, a blank line where blocks end and start.
    `skip_boilerplate` leaves out the BOILERPLATE elements too (menus, page headers, footers)."""
    parser = _VisibleText(INVISIBLE | BOILERPLATE if skip_boilerplate else INVISIBLE)
    parser.feed(markup)
    parser.close()
    title = " ".join("".join(parser.title_parts).split())
    text = _SPACES.sub(" ", "".join(parser.parts))
    text = re.sub(r" *\n[ \n]*", lambda m: "\n\n" if m.group().count("\n") > 1 else "\n", text)
    return HtmlText(title, text)


def html_to_text(markup: str) -> str:
    """The visible text of an HTML document or fragment (see `parse_html`)."""
    return parse_html(markup).text
