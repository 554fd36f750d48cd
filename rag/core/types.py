"""Plain dataclasses that cross the seams between parts (README, "Layout")."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass
class Passage:
    """One piece of evidence. `origin` is `web` or `index:NAME`; `location` a URL or path#chunk."""

    text: str
    title: str
    location: str
    origin: str
    score: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


class Passages(list[Passage]):
    """A retriever's passages, best first, with what the user should be told about how they
    were found (`warnings`: an engine that failed before another answered, results that a
    site rule filtered away), even when the list is empty."""

    def __init__(self, passages: Any = (), warnings: Any = ()) -> None:
        super().__init__(passages)
        self.warnings: list[str] = list(warnings)


#: Joins a document's title and the section path of a chunk in its title (indexers.chunking).
SECTION_MARK = " › "
#: Joins the pieces of one source in the prompt when sentences between them were left out.
GAP = " … "


def shown_text(text: str, spans: list[list[int]] | None) -> str:
    """The spans of `text` a model read, joined by GAP; all of it without spans."""
    if not spans:
        return text
    return GAP.join(text[a:b] for a, b in spans)


@dataclass
class Source:
    """A passage as it was numbered in the prompt; `id` is the number the answer cites.

    `text` is the whole source; `spans` the [start, end) character ranges of it that went
    into the prompt (None: all of it), `rerank_score` its reranker score (None: not reranked).
    """

    id: int
    title: str
    location: str
    origin: str
    score: float
    text: str
    spans: list[list[int]] | None = None
    rerank_score: float | None = None

    @classmethod
    def from_passage(cls, number: int, passage: Passage) -> Source:
        spans = passage.meta.get("spans")
        rerank = passage.meta.get("rerank_score")
        return cls(
            id=number,
            title=passage.title,
            location=passage.location,
            origin=passage.origin,
            score=round(float(passage.score), 6),
            text=passage.meta.get("full_text", passage.text) if spans else passage.text,
            spans=[list(s) for s in spans] if spans else None,
            rerank_score=None if rerank is None else round(float(rerank), 4),
        )

    @property
    def shown(self) -> str:
        """The text the model read: the spans, or all of it."""
        return shown_text(self.text, self.spans)

    def as_dict(self) -> dict[str, Any]:
        place = place_of(self.location)
        document, *section = self.title.split(SECTION_MARK)
        if section:  # `report.docx › Budget › Q3`: the section path under the document
            place["section"] = section
        return {**asdict(self), "place": place}


_LEGACY_ANCHOR = re.compile(r"(page|L|item)(\d+)")
_LEGACY_KEYS = {"page": "page", "L": "line", "item": "item"}


def place_of(location: str) -> dict[str, Any]:
    """Where a location points, as fields: `/d/paper.pdf#page=12:chunk3` -> {"file":
    "/d/paper.pdf", "page": 12, "chunk": 3}; a URL -> {"url": ...}. Numbers are ints;
    `sheet=Q3` stays text, percent-escapes decoded (`sheet=P%26L` -> "P&L"). The location
    string stays the one identity of a passage."""
    if "://" in location.split("#", 1)[0]:
        return {"url": location}
    # A file name may hold a "#", an anchor never does (`sheet=` names are escaped).
    path, _, fragment = location.rpartition("#") if "#" in location else (location, "", "")
    place: dict[str, Any] = {"file": path}
    anchor, _, chunk = fragment.rpartition(":chunk") if ":chunk" in fragment else ("", "", "")
    if not chunk and fragment.startswith("chunk"):
        chunk = fragment[len("chunk") :]
    elif not chunk:
        anchor = fragment
    if chunk.isdigit():
        place["chunk"] = int(chunk)
    for pair in filter(None, anchor.split("&")):
        key, eq, value = pair.partition("=")
        legacy = _LEGACY_ANCHOR.fullmatch(pair) if not eq else None
        if legacy:
            key, value = _LEGACY_KEYS[legacy.group(1)], legacy.group(2)
        if key:
            place[key] = int(value) if value.isdigit() else unquote(value)
    return place


@dataclass
class Dropped:
    """A candidate the model did not read, and why (below the relevance cut, over the
    budget, past k, not fitting the context): shown apart from the numbered sources."""

    title: str
    location: str
    origin: str
    score: float
    text: str
    reason: str
    rerank_score: float | None = None

    @classmethod
    def from_passage(cls, passage: Passage, reason: str | None = None) -> Dropped:
        rerank = passage.meta.get("rerank_score")
        return cls(
            title=passage.title,
            location=passage.location,
            origin=passage.origin,
            score=round(float(passage.score), 6),
            text=passage.meta.get("full_text", passage.text),
            reason=reason or str(passage.meta.get("dropped", "")),
            rerank_score=None if rerank is None else round(float(rerank), 4),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timings:
    """What one generation cost. Token counts are in the model's own tokens."""

    load_s: float = 0.0
    prompt_tokens: int = 0
    ttft_s: float = 0.0
    completion_tokens: int = 0
    tokens_per_s: float = 0.0
    total_s: float = 0.0
    cached_prompt_tokens: int = 0
