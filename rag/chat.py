"""`rag chat`: a conversation whose follow-ups are searched as standalone queries.

Why rewrite: "When did he die?" finds nothing on a search engine; "When did Jane
Austen die?" does. Before each follow-up is searched, the model turns it into a
standalone query using the conversation (`prompts/rewrite_query.txt`). The
answer itself still sees the original question and the recent turns.

History is kept short (the last few turns, and at most a quarter of the context),
so retrieved evidence keeps most of the prompt. Assistant turns are stored
without their `[n]` citations: source numbers restart every turn, and an old
`[2]` would point at a different page now.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import prompts
from rag.core.config import Settings
from rag.core.errors import RagError
from rag.core.types import Message
from rag.generators import Generator, load_generator
from rag.orchestrator import Answer, retrieve
from rag.orchestrator import answer as answer_from
from rag.sources import Retriever, open_sources

MAX_HISTORY_TURNS = 4
REWRITE_MAX_TOKENS = 40
#: Answers are cut to this many characters when shown to the query rewriter.
REWRITE_ANSWER_CHARS = 300
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_LABEL = re.compile(r"^(?:standalone\s+)?(?:search\s+)?query\s*:\s*", re.IGNORECASE)


@dataclass
class ChatTurn:
    answer: Answer
    search_query: str


@dataclass
class ChatSession:
    """One conversation. `retrievers`/`generator` override what `sources`/`settings` would build."""

    settings: Settings
    sources: Sequence[str] = ()
    retrievers: list[Retriever] | None = None
    generator: Generator | None = None
    max_history_turns: int = MAX_HISTORY_TURNS
    history: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.retrievers is None:
            self.retrievers = open_sources(self.sources, self.settings)

    def model(self) -> Generator:
        if self.generator is None:
            self.generator = load_generator(self.settings)
        return self.generator

    def reset(self) -> None:
        self.history.clear()

    def rewrite_query(self, question: str) -> str:
        """The follow-up as a standalone search query; the question itself on the first
        turn, without sources, or when the model's rewrite is unusable."""
        if not self.history or not self.retrievers:
            return question
        template = prompts.load("rewrite_query")
        messages = template.render(conversation=self._conversation_text(), question=question)
        try:
            generation = self.model().generate(
                messages, max_tokens=REWRITE_MAX_TOKENS, temperature=0.0
            )
            text = generation.text
        except RagError:
            return question
        rewrite = clean_query(text)
        if not plausible_rewrite(rewrite, question, self._conversation_text()):
            return question
        return rewrite

    def ask(
        self,
        question: str,
        *,
        on_text: Callable[[str], None] | None = None,
        search_query: str | None = None,
    ) -> ChatTurn:
        """Answer one turn; `search_query` skips the rewrite (a caller that already did it)."""
        query = search_query or self.rewrite_query(question.strip())
        retrieved = retrieve(query, self.retrievers, self.settings)
        answer = answer_from(
            question, retrieved, self.model(), self.settings, history=self.history, on_text=on_text
        )
        self.history += [
            Message("user", answer.question),
            Message("assistant", strip_citations(answer.answer)),
        ]
        self.trim_history()
        return ChatTurn(answer=answer, search_query=query)

    def _conversation_text(self) -> str:
        lines = []
        for message in self.history:
            content = " ".join(message.content.split())
            if message.role == "assistant" and len(content) > REWRITE_ANSWER_CHARS:
                content = content[:REWRITE_ANSWER_CHARS] + " ..."
            lines.append(f"{'User' if message.role == 'user' else 'Assistant'}: {content}")
        return "\n".join(lines)

    def trim_history(self) -> None:
        """Keep history within the turn limit and a quarter of the context, so retrieved
        evidence keeps most of the prompt: the oldest turns go first, and when the last
        turn alone is over (one long paste), its messages are cut to fit (`cut_to_fit`)."""
        model = self.model()
        limit = model.context_size // 4
        while len(self.history) > 2 * self.max_history_turns or (
            len(self.history) > 2 and model.count_prompt_tokens(self.history) > limit
        ):
            del self.history[:2]
        if self.history and model.count_prompt_tokens(self.history) > limit:
            self.history[:] = cut_to_fit(self.history, limit, model)


#: What marks the place a message of the history was cut.
CUT_MARK = " …"


def cut_to_fit(messages: Sequence[Message], limit: int, model: Generator) -> list[Message]:
    """`messages` cut to at most `limit` prompt tokens in the model's own count: each
    keeps its start, short ones whole, and the room left is shared among the long ones.
    No messages at all when even empty ones would not fit."""
    counts = [model.count_tokens(m.content) for m in messages]
    room = limit - model.count_prompt_tokens([Message(m.role, "") for m in messages])
    for _ in range(8):  # a cut text may count a token or two more than its parts
        if room <= 0:
            break
        shares, left = [0] * len(messages), room
        for rank, i in enumerate(sorted(range(len(messages)), key=counts.__getitem__)):
            shares[i] = min(counts[i], left // (len(messages) - rank))
            left -= shares[i]
        cut = [
            Message(m.role, _prefix(m.content, share, model.count_tokens))
            for m, share in zip(messages, shares, strict=True)
        ]
        over = model.count_prompt_tokens(cut) - limit
        if over <= 0:
            return cut
        room -= over
    return []


def _prefix(text: str, tokens: int, count: Callable[[str], int]) -> str:
    """The longest start of `text` that, marked as cut, is at most `tokens` tokens."""
    if count(text) <= tokens:
        return text
    low, high = 0, len(text)
    while low < high:  # binary search on characters: the count grows with the prefix
        middle = (low + high + 1) // 2
        if count(text[:middle].rstrip() + CUT_MARK) <= tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + CUT_MARK if low else ""


_WORD = re.compile(r"\w+")
#: A rewrite may add the names a follow-up leaves out, not a paragraph of its own.
REWRITE_MAX_EXTRA_WORDS = 12
#: Words a rewrite may bring that neither the question nor the conversation has ("year").
REWRITE_MAX_NEW_WORDS = 3


def plausible_rewrite(rewrite: str, question: str, conversation: str) -> bool:
    """Small models sometimes answer, or invent, instead of rewriting: keep a rewrite only
    when it is short and nearly all of its words come from the question or the conversation."""
    words = _WORD.findall(rewrite.lower())
    asked = set(_WORD.findall(question.lower()))
    known = asked | set(_WORD.findall(conversation.lower()))
    if not words or len(words) > len(asked) + REWRITE_MAX_EXTRA_WORDS:
        return False
    return len(set(words) - known) <= REWRITE_MAX_NEW_WORDS


def strip_citations(text: str) -> str:
    """An answer as history keeps it: without `[n]` citations, whose numbers restart."""
    return _CITATION.sub("", text).strip()


def clean_query(text: str) -> str:
    """The first non-empty line of the model's reply, without labels or quotes."""
    for line in text.strip().splitlines():
        line = _LABEL.sub("", line.strip()).strip().strip("\"'`“”").strip()
        if line:
            return line[:300]
    return ""
