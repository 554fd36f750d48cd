"""question -> retrieve -> select -> prompt -> generate -> answer + sources, in two calls.

`retrieve(question, sources, settings)` asks every source at once for its candidates;
`answer(question, retrieved, generator, settings)` selects the evidence, builds the
prompt and streams the answer. Every front end composes these two (`rag ask`, `rag chat`,
`rag search` with `rag.search.ranked`, `rag serve`, `rag mcp`, the evals), so closed-book
(`retrieve` over no sources) and retrieval-augmented answers go through identical code
and only the evidence differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import prompts
from rag.core.config import Settings
from rag.core.errors import PromptTooLong, SearchUnavailable, UsageError
from rag.core.ranking import merge_ranked
from rag.core.types import Dropped, Message, Passage, Source
from rag.evidence import candidates_wanted, choose_evidence
from rag.generators import Generator
from rag.packing import format_sources, pack_passages
from rag.sources import Retriever

#: Why a source chosen for the prompt is not in it after all.
NO_ROOM = "did not fit the model's context"
#: Tokens kept free besides the answer, for template joins the per-part counts cannot see.
SAFETY_MARGIN_TOKENS = 16


@dataclass
class Answer:
    question: str
    answer: str
    model: str
    sources: list[Source]
    timings: dict[str, float | int]
    warnings: list[str] = field(default_factory=list)
    prompt: list[Message] = field(default_factory=list, repr=False)
    #: Candidates the model did not read, best first, each with why.
    dropped: list[Dropped] = field(default_factory=list)
    #: The web engine whose results the sources had (None: no web results).
    web_engine: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The `rag ask --json` object (README, "Asking")."""
        return {
            "question": self.question,
            "answer": self.answer,
            "model": self.model,
            "sources": [s.as_dict() for s in self.sources],
            "dropped": [d.as_dict() for d in self.dropped],
            "timings": self.timings,
            "warnings": self.warnings,
            "web_engine": self.web_engine,
        }


@dataclass
class Retrieved:
    """What the sources gave for `query` (the question, or a chat follow-up rewritten to
    stand alone): candidates fused best first, warnings from sources that failed while
    others answered, how many sources were asked (0: closed-book), and the web engine
    that answered (of a chain: rag.web.chain; None when no web results came)."""

    query: str
    passages: list[Passage]
    warnings: list[str]
    seconds: float
    sources_asked: int = 0
    web_engine: str | None = None


def validate_question(question: str, *, what: str = "question") -> str:
    """The question (or search query) stripped; a UsageError when it is empty or not text.

    Empty is nothing visible: separators (Z*), control (Cc) and format characters (Cf:
    NUL, zero-width spaces, a byte-order mark) only, which a model would be asked as
    nothing at all; a lone surrogate counts as visible, to be refused as itself below.
    Bytes that are not UTF-8 (a terminal in another encoding) reach Python as lone
    surrogates, which no tokenizer, cache key or JSON output can encode.
    """
    import unicodedata

    text = question.strip()
    hidden = ("Cc", "Cf", "Zs", "Zl", "Zp")
    if all(unicodedata.category(ch) in hidden for ch in text):
        example = (
            'rag search "compost" --index notes'
            if what == "query"
            else ('rag ask "Who wrote Emma?"')
        )
        raise UsageError(f"The {what} is empty. Give some words, e.g. {example}")
    bad = next((i for i, ch in enumerate(text) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        char = text[bad]
        if "\udc80" <= char <= "\udcff":  # a byte a terminal could not decode, as Python keeps it
            raise UsageError(
                f"The {what} is not valid UTF-8 text (byte "
                f"{char.encode('utf-8', 'surrogateescape')!r} at character {bad + 1}). "
                "Type it again in a UTF-8 terminal (e.g. LANG=C.UTF-8)."
            )
        raise UsageError(  # from JSON (a benchmark line, a request): an escape like \ud800
            f"The {what} is not valid text (a lone surrogate, U+{ord(char):04X}, at character "
            f"{bad + 1}: half of a UTF-16 pair, which an escape such as \\ud800 can write)."
        )
    return text


def retrieve(question: str, sources: Sequence[Retriever], settings: Settings) -> Retrieved:
    """Ask every source at once for its candidates (`candidates_wanted(settings)` each). A
    source that is down becomes a warning while another source still answers; when every
    source is down, that is an error, never a silently ungrounded answer."""
    query = validate_question(question)
    started = time.perf_counter()
    if not sources:
        return Retrieved(query, [], [], 0.0)
    k = candidates_wanted(settings)

    def run(retriever: Retriever) -> list[Passage] | SearchUnavailable:
        try:
            return retriever.retrieve(query, k)
        except SearchUnavailable as exc:
            return exc

    if len(sources) == 1:
        outcomes = [run(sources[0])]
    else:
        with ThreadPoolExecutor(max_workers=len(sources)) as pool:
            outcomes = list(pool.map(run, sources))
    failures = [o for o in outcomes if isinstance(o, SearchUnavailable)]
    if failures and len(failures) == len(outcomes):
        raise failures[0]
    lists = [o for o in outcomes if not isinstance(o, SearchUnavailable)]
    warnings = [f"{exc} Answering from the other sources." for exc in failures]
    # A retriever that degraded without failing says so: in its list's `warnings` (a web
    # engine of a chain that failed first: rag.core.types.Passages), or in a passage's
    # `meta["warning"]` (a page that could not be fetched).
    for passages in lists:
        notes = [*getattr(passages, "warnings", ()), *(p.meta.get("warning") for p in passages)]
        for note in notes:
            if note and note not in warnings:
                warnings.append(note)
    web = (p for passages in lists for p in passages if p.origin == "web")
    engine = next((p.meta["engine"] for p in web if p.meta.get("engine")), None)
    elapsed = time.perf_counter() - started
    return Retrieved(query, merge_ranked(lists), warnings, elapsed, len(sources), engine)


def evidence_room(
    question: str,
    generator: Generator,
    *,
    max_tokens: int,
    family: str,
    history: Sequence[Message] = (),
) -> int:
    """Tokens of context left for sources next to the instructions, question and answer."""
    template = prompts.load(f"{family}_with_sources")
    frame = generator.count_prompt_tokens(
        template.render(list(history), question=question, sources="")
    )
    return generator.context_size - frame - max_tokens - SAFETY_MARGIN_TOKENS


def build_prompt(
    question: str,
    passages: Sequence[Passage],
    generator: Generator,
    *,
    max_tokens: int,
    family: str,
    history: Sequence[Message] = (),
    room: int | None = None,
) -> tuple[list[Message], list[Passage]]:
    """The messages and the passages that fit, numbered 1..n in rank order. `room` is
    `evidence_room(...)` for the same arguments, when the caller already has it."""
    if not passages:
        template = prompts.load(f"{family}_closed_book")
        return template.render(list(history), question=question), []
    template = prompts.load(f"{family}_with_sources")
    if room is None:
        room = evidence_room(
            question, generator, max_tokens=max_tokens, family=family, history=history
        )
    packed = pack_passages(passages, budget=room, count_tokens=generator.count_tokens)
    messages = template.render(list(history), question=question, sources=format_sources(packed))
    return messages, packed


def answer(
    question: str,
    retrieved: Retrieved,
    generator: Generator,
    settings: Settings,
    *,
    history: Sequence[Message] = (),
    family: str = "answer",
    on_text: Callable[[str], None] | None = None,
) -> Answer:
    """Answer `question` from what `retrieve` found (nothing: closed-book), with the
    chat's `history`; each piece of the answer goes to `on_text` as it is generated. The
    evidence is chosen for `retrieved.query`, what the sources were asked."""
    question = validate_question(question)
    started = time.perf_counter()
    warnings = list(retrieved.warnings)
    if retrieved.sources_asked and not retrieved.passages:
        warnings.append("No passages were found; answering without sources.")

    candidates: list[Passage] = []
    dropped: list[Dropped] = []
    selecting_s = 0.0
    room = None
    if retrieved.passages:
        room = evidence_room(
            question, generator, max_tokens=settings.max_tokens, family=family, history=history
        )
        selection = choose_evidence(
            retrieved.query,
            retrieved.passages,
            settings=settings,
            parameters=getattr(generator, "parameters", None),
            room=room,
            count_tokens=generator.count_tokens,
        )
        candidates, selecting_s = selection.passages, selection.seconds
        dropped = [Dropped.from_passage(p) for p in selection.dropped]
    while True:
        messages, packed = build_prompt(
            question,
            candidates,
            generator,
            max_tokens=settings.max_tokens,
            family=family,
            history=history,
            room=room,
        )
        try:
            generation = generator.generate(
                messages, max_tokens=settings.max_tokens, temperature=settings.temperature
            )
            break
        except PromptTooLong:
            if not packed:
                raise
            candidates = packed[:-1]  # the per-block estimate was off by a few tokens
            dropped.append(Dropped.from_passage(packed[-1], NO_ROOM))
    if retrieved.passages and not packed:
        warnings.append(
            f"None of the {len(retrieved.passages)} passages fit in {generator.model_name}'s "
            "context next to the question and the answer; lower --max-tokens or raise "
            "RAG_CONTEXT_CAP."
        )
    for chunk in generation:
        if on_text:
            on_text(chunk)
    text = generation.text.strip()
    in_prompt = {p.location for p in packed}
    t = generation.timings
    timings = {
        "retrieval_s": round(retrieved.seconds, 4),
        "selection_s": round(selecting_s, 4),
        "prompt_tokens": t.prompt_tokens,
        "ttft_s": round(t.ttft_s, 4),
        "completion_tokens": t.completion_tokens,
        "tokens_per_s": round(t.tokens_per_s, 2),
        "total_s": round(retrieved.seconds + time.perf_counter() - started, 4),
        "load_s": round(t.load_s, 4),
        "cached_prompt_tokens": t.cached_prompt_tokens,
    }
    return Answer(
        question=question,
        answer=text,
        model=generator.model_name,
        sources=[Source.from_passage(i, p) for i, p in enumerate(packed, start=1)],
        timings=timings,
        warnings=warnings,
        prompt=messages,
        web_engine=retrieved.web_engine,
        dropped=dropped
        + [Dropped.from_passage(p, NO_ROOM) for p in candidates if p.location not in in_prompt],
    )
