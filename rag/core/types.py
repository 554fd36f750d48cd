"""Plain dataclasses that cross the seams between parts (README, "Layout")."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
