"""The Generator seam: one small protocol, a streamed result, and a registry by name."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Protocol, runtime_checkable

from rag.config import Settings
from rag.errors import PromptTooLong
from rag.plugins import FactoryMap, Part, register
from rag.types import Message, Timings


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
        seen = ""
        for chunk in self._chunks:
            self._parts.append(chunk)
            yield chunk
            seen += chunk
            if chunk.strip() and (cut := loop_start(seen)) is not None:
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


#: A phrase of 1..LOOP_PHRASE words repeated this many times in a row ends the answer.
LOOP_REPEATS = 4
LOOP_PHRASE = 12
_WORD_SPANS = re.compile(r"\S+")


def loop_start(text: str) -> int | None:
    """Where the second copy of a phrase begins when `text` ends in LOOP_REPEATS copies of
    it (compared case-insensitively, punctuation aside), else None."""
    offset = max(0, len(text) - 2000)
    found = list(_WORD_SPANS.finditer(text, offset))
    words = [re.sub(r"\W", "", m.group().lower()) or m.group() for m in found]
    for size in range(1, LOOP_PHRASE + 1):
        need = size * LOOP_REPEATS
        if len(words) < need:
            break
        tail = words[-need:]
        phrase = tail[:size]
        if all(tail[i] == phrase[i % size] for i in range(need)):
            return offset + found[len(words) - need + size].start()
    return None


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


GeneratorFactory = Callable[[str, Settings], Generator]

#: Generator backends keyed by the prefix of a model spec (`openai:URL#MODEL`): the
#: `generator` parts of `rag.plugins`, as a live dict of their factories. Specs without a
#: registered prefix go to `llama` (a local GGUF via llama-cpp-python).
REGISTRY: MutableMapping[str, GeneratorFactory] = FactoryMap("generator")


def register_generator(prefix: str, factory: GeneratorFactory) -> None:
    """`register(Part("generator", prefix, factory))`, for one that takes no options."""
    register(Part("generator", prefix, factory))


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
