"""A local GGUF model run by llama-cpp-python.

We render the chat template from the GGUF metadata ourselves and drive
`Llama.generate` token by token, because that lets us (1) count the prompt in
the model's own tokens before generating and refuse a prompt that does not fit,
where llama.cpp would silently truncate it; (2) count completion tokens exactly;
(3) keep llama.cpp's KV-cache prefix reuse, so a fixed prompt prefix (an eval's
instructions) is evaluated once per process, not once per question.
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from collections.abc import Iterator, Sequence
from inspect import GEN_SUSPENDED, getgeneratorstate
from pathlib import Path

from rag.errors import GenerationError, ModelUnavailable
from rag.generators.base import Generation, TimedStream, check_fits
from rag.types import Message, Timings

# Used only when a GGUF carries no chat template (base models): plain turns.
_FALLBACK_TEMPLATE = (
    "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n"
    "{% elif m.role == 'user' %}Question: {{ m.content }}\n"
    "{% else %}Answer: {{ m.content }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Answer:{% endif %}"
)


class LlamaGenerator:
    """One loaded GGUF model. Thread-safe per call: llama.cpp contexts are not re-entrant."""

    def __init__(
        self,
        model_path: Path,
        *,
        model_name: str,
        context_cap: int = 4096,
        threads: int = 0,
        seed: int = 0,
    ) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        started = time.perf_counter()
        # Default: half the logical CPUs, about the physical cores. llama.cpp's threads spin
        # while they wait, so one more than the free cores slows it 10x on a busy machine.
        n_threads = threads or max(1, (os.cpu_count() or 2) // 2)
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=context_cap,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailable(
                f"Could not load the model file {model_path}: {exc}. "
                "Check that it is a complete GGUF file (re-download it with `rag models pull`)."
            ) from exc
        self.load_s = time.perf_counter() - started
        self.model_name = model_name
        self.model_path = Path(model_path)
        self.seed = seed
        trained = self._llm._model.n_ctx_train()
        # llama.cpp rounds n_ctx up to a multiple of 256, but llama-cpp-python's token buffer
        # keeps the size asked for: the smallest of the three is what really fits.
        limits = [context_cap, self._llm.n_ctx()] + ([trained] if trained > 0 else [])
        self.context_size = min(limits)
        self._is_eog = lambda token: bool(
            llama_cpp.llama_vocab_is_eog(self._llm._model.vocab, token)
        )
        model = self._llm._model
        eos_id, bos_id = self._llm.token_eos(), self._llm.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=self._llm.metadata.get("tokenizer.chat_template") or _FALLBACK_TEMPLATE,
            eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
        )
        self._lock = threading.Lock()
        self._open: Iterator[tuple[str, int]] | None = None
        self._loads_reported = False

    @property
    def llama(self):  # noqa: ANN201 - the raw llama_cpp.Llama, for benchmarks
        return self._llm

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def render(self, messages: Sequence[Message]) -> tuple[list[int], list[str]]:
        """The prompt tokens for a chat, and the template's stop strings."""
        result = self._formatter(messages=[m.as_dict() for m in messages])
        tokens = self._llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stops = result.stop if isinstance(result.stop, list) else [result.stop or ""]
        return tokens, [s for s in stops if s]

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.render(messages)[0])

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Generation:
        tokens, stops = self.render(messages)
        check_fits(len(tokens), max_tokens, self.context_size, self.model_name)
        timings = Timings(prompt_tokens=len(tokens))
        if not self._loads_reported:
            timings.load_s = self.load_s
            self._loads_reported = True
        if self._open is not None and getgeneratorstate(self._open) == GEN_SUSPENDED:
            # A caller that stopped reading part-way still holds the model: end that stream,
            # which releases the lock, rather than wait on it forever.
            self._open.close()
        pieces = self._open = self._decode(tokens, stops, max_tokens, temperature, timings)
        return Generation(TimedStream(timings).wrap(pieces), timings)

    def _decode(
        self,
        tokens: list[int],
        stops: list[str],
        max_tokens: int,
        temperature: float,
        timings: Timings,
    ) -> Iterator[tuple[str, int]]:
        """Yield (text, 1) per generated token, holding back text that may start a stop string."""
        llm = self._llm
        with self._lock:
            timings.cached_prompt_tokens = _common_prefix(llm._input_ids[: llm.n_tokens], tokens)
            llm.set_seed(self.seed)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            held = ""
            produced = 0
            try:
                for token in llm.generate(
                    tokens, temp=temperature, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0
                ):
                    if self._is_eog(token):
                        break
                    text = held + decoder.decode(llm.detokenize([token]))
                    produced += 1
                    cut = _first_stop(text, stops)
                    if cut is not None:
                        yield text[:cut], 1
                        return
                    keep = _stop_prefix_len(text, stops)
                    held = text[len(text) - keep :] if keep else ""
                    yield text[: len(text) - keep], 1
                    if produced >= max_tokens:
                        break
            except RuntimeError as exc:  # llama_decode failures surface as RuntimeError
                raise GenerationError(f"The model failed while generating: {exc}") from exc
            tail = held + decoder.decode(b"", final=True)
            if tail:
                yield tail, 0


def _common_prefix(cached: Sequence[int], tokens: Sequence[int]) -> int:
    n = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        n += 1
    return n


def _first_stop(text: str, stops: list[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _stop_prefix_len(text: str, stops: list[str]) -> int:
    """Length of the longest tail of `text` that could be the start of a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best
