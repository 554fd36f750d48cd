"""The Generator seam: one small protocol, a streamed result, and a registry by name."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from rag.core.errors import PromptTooLong
from rag.core.types import Message, Timings


class Generation:
    """A streamed answer. Iterate for text chunks as they arrive; once the stream
    ends, `text` is the whole answer and `timings` is complete.

    Greedy decoding of a small model can fall into a loop ("Philly Philly Philly ..."),
    which costs the whole token budget and says nothing more. The stream ends when the
    answer's last words repeat one phrase `LOOP_REPEATS` times in a row, and `text` keeps
    the phrase once (`looped` tells that it happened).
    """

    def __init__(self, chunks: Iterator[str], timings: Timings) -> None:
        self._chunks = chunks
        self._parts: list[str] = []
        self._done = False
        self.looped = False
        self._cut: int | None = None  # where `text` ends when a loop was cut
        self.timings = timings

    def __iter__(self) -> Iterator[str]:
        if self._done:
            yield from self._parts
            return
        watch = LoopWatch()
        for chunk in self._chunks:
            self._parts.append(chunk)
            yield chunk
            if (cut := watch.feed(chunk)) is not None:
                self.looped, self._cut = True, cut
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    close()  # release the model now, not when the next answer starts
                break
        self._done = True

    def close(self) -> None:
        """Stop generating now (the reader has gone, e.g. a `rag serve` client that
        disconnected): the stream ends at once, the model is released, and `text` is what
        came so far. Safe between pieces, from the loop that reads them."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    @property
    def text(self) -> str:
        if not self._done:
            for _ in self:
                pass
        whole = "".join(self._parts)
        return whole if self._cut is None else whole[: self._cut].rstrip()


#: A phrase of any length repeated this many times in a row ends the answer.
LOOP_REPEATS = 4
_WORD_SPANS = re.compile(r"\S+")
_NON_WORD = re.compile(r"\W")


class LoopWatch:
    """Tells, piece by piece, whether an answer now ends in LOOP_REPEATS copies of one
    phrase of any length.

    It runs after every streamed piece, so it keeps the answer's words as they come and
    reads only the new piece: a phrase that repeats at the end must end with the last word,
    so only the distances back to that word's earlier occurrences can be its length, and
    each is checked on its last few words before the whole. A piece costs about the number
    of times its last word occurred in the last quarter of the answer (a few microseconds
    per piece of a 2,000-token answer), not the answer's length."""

    def __init__(self) -> None:
        self._words: list[str] = []  # normalized and interned: equal words are one object
        self._starts: list[int] = []  # where each word begins in the text
        self._where: dict[str, list[int]] = {}  # word -> its indexes in `_words`, ascending
        self._length = 0  # characters fed so far
        self._open = ""  # the last word when it touches the end (the next piece may extend it)

    def feed(self, piece: str) -> int | None:
        """Add the next piece; where the second copy begins if the text now ends in a loop."""
        base = self._length
        self._length += len(piece)
        if not piece.strip():
            self._open = ""
            return None
        text = piece
        if self._open:  # "Phil" + "ly": read the last word again, with its continuation
            text = self._open + piece
            base = self._starts.pop()
            self._where[self._words.pop()].pop()
        self._open = ""
        for match in _WORD_SPANS.finditer(text):
            raw = match.group()
            word = sys.intern(_NON_WORD.sub("", raw.lower()) or raw)
            self._where.setdefault(word, []).append(len(self._words))
            self._words.append(word)
            self._starts.append(base + match.start())
            if match.end() == len(text):
                self._open = raw
        return self._loop_start()

    def _loop_start(self) -> int | None:
        words = self._words
        n = len(words)
        if n < LOOP_REPEATS:
            return None
        earlier = self._where[words[-1]]
        for k in range(len(earlier) - 2, -1, -1):  # nearest first: the shortest phrase wins
            size = n - 1 - earlier[k]
            if size * LOOP_REPEATS > n:
                break
            probe = min(size, 8)  # most candidates differ within the last few words
            if words[n - probe :] != words[n - probe - size : n - size]:
                continue
            tail = n - size * (LOOP_REPEATS - 1)
            if words[tail:] == words[tail - size : n - size]:
                return self._starts[tail]
        return None


def loop_start(text: str) -> int | None:
    """Where the second copy of a phrase begins when `text` ends in LOOP_REPEATS copies of
    it (compared case-insensitively, punctuation aside), else None."""
    return LoopWatch().feed(text)


@runtime_checkable
class Generator(Protocol):
    """A chat model. Token counts are in the model's own tokens, so prompt packing is exact."""

    model_name: str
    context_size: int
    #: weights in the model when known (None for a remote one); sizes the evidence budget
    parameters: int | None

    def count_tokens(self, text: str) -> int: ...

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the rendered chat prompt takes, template included."""
        ...

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Generation: ...


def serves_concurrently(generator: object) -> bool:
    """Whether `generator` may be asked several questions at once from different threads,
    and gains from it: a generator says so with a true `concurrent` attribute (a model
    server, which batches requests). A model in this process (llama.cpp) decodes one
    prompt at a time, so it does not, nor does anything that does not say."""
    return getattr(generator, "concurrent", False) is True


def check_fits(prompt_tokens: int, max_tokens: int, context_size: int, model_name: str) -> None:
    """Refuse a prompt that leaves no room for the answer: llama.cpp would silently
    drop its start, and the caller can act on this (fewer passages, shorter answer)."""
    if prompt_tokens + max_tokens > context_size:
        raise PromptTooLong(
            f"The prompt is {prompt_tokens} tokens and the answer may take {max_tokens}, "
            f"but {model_name} has a context of {context_size} tokens. "
            "Shorten the question, retrieve fewer passages (--k), lower --max-tokens, "
            "or raise the context cap (RAG_CONTEXT_CAP).",
            prompt_tokens=prompt_tokens,
            limit=context_size - max_tokens,
        )


class TimedStream:
    """Fills `Timings` from a stream of (text, tokens_in_chunk) pairs as a caller consumes it."""

    def __init__(self, timings: Timings) -> None:
        self.timings = timings

    def wrap(
        self, pieces: Iterator[tuple[str, int]], started: float | None = None
    ) -> Iterator[str]:
        """Time starts when the caller first asks for text, unless the producer already
        began work (`started`, e.g. an HTTP request sent before the stream was returned)."""
        timings = self.timings
        started = started if started is not None else time.perf_counter()
        first_at: float | None = None
        try:
            for text, n_tokens in pieces:
                now = time.perf_counter()
                if first_at is None:
                    first_at = now
                    timings.ttft_s = now - started
                timings.completion_tokens += n_tokens
                if text:
                    yield text
        finally:  # also when the reader stops early (a loop cut, a closed client)
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # the producer may hold the model
            ended = time.perf_counter()
            timings.total_s = ended - started
            decode_s = ended - (first_at or ended)
            if timings.completion_tokens > 1 and decode_s > 0:
                timings.tokens_per_s = (timings.completion_tokens - 1) / decode_s
