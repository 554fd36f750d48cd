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
import contextlib
import re
import secrets
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from inspect import GEN_SUSPENDED, getgeneratorstate
from pathlib import Path
from typing import Any

from rag.core import threads as pools
from rag.core.errors import GenerationError, ModelUnavailable
from rag.core.types import Message, Timings
from rag.generators.base import Generation, TimedStream, check_fits
from rag.generators.gguf_meta import GGUFError, training_context

#: For a GGUF without a chat template (a base model, which only continues text): the
#: conversation as plain text ending in "Answer:", the cue a base model completes. The
#: eval prompts already end their user turn with it, so it is not said twice.
_FALLBACK_TEMPLATE = (
    "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n"
    "{% elif m.role == 'user' %}{{ m.content }}{% if not loop.last %}{{ '\\n' }}{% endif %}"
    "{% else %}{{ m.content }}\n\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt and not messages[-1].content.rstrip().endswith('Answer:') %}"
    "{{ '\\n' }}Answer:{% endif %}"
)
#: Where a base model's answer ends: at the end of its line; after it, it goes on to
#: repeat itself or to invent the next question.
_FALLBACK_STOPS = ["\n", "Question:"]

#: CPU flags of Intel AMX (4th-generation Xeon and later). There, llama.cpp (as built by
#: llama-cpp-python 0.3.x) repacks Q4/Q8 weights into its AMX buffer type and then crashes
#: with SIGSEGV in the first batched decode.
AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux reports them; where the OS keeps no such file
    (macOS, Windows), the features llama.cpp was compiled for, which pip builds for the
    machine it installs on."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        import llama_cpp

        return built_features(llama_cpp.llama_print_system_info().decode("utf-8", "replace"))
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def built_features(system_info: str) -> frozenset[str]:
    """`CPU : AVX2 = 1 | AMX_INT8 = 1 | ...` (llama.cpp's system info) -> {"avx2", "amx_int8"}."""
    features = set()
    for part in system_info.split("|"):
        name, _, value = part.partition("=")
        if value.strip() == "1" and name.split():
            features.add(name.split()[-1].lower())
    return frozenset(features)


def use_extra_buffers(setting: str, flags: Collection[str]) -> bool:
    """Whether llama.cpp may repack weights into its extra CPU buffer types.

    `auto` repacks except on AMX CPUs, where the repack crashes. On AVX2 the bundled small
    models ran within noise either way (benchmarks/weight_repack.py); llama.cpp repacks
    for the larger matrix products of bigger models, so its default stays where it is safe.
    """
    if setting == "on":
        return True
    if setting == "off":
        return False
    return not AMX_FLAGS & set(flags)


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def _model_params(**fields: Any) -> Iterator[None]:
    """Set `llama_model_params` fields that `llama_cpp.Llama` does not expose.

    `Llama.__init__` takes its model params from `llama_model_default_params()`; for the
    duration of one load that function returns them with `fields` applied. The caller
    checks `Llama.model_params` afterwards, so a llama-cpp-python that stops calling it
    is an error at load time, not a silent crash later.
    """
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def with_fields() -> Any:
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    with _PARAMS_LOCK:
        lib.llama_model_default_params = with_fields
        try:
            yield
        finally:
            lib.llama_model_default_params = original


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
        weight_repack: str = "auto",
    ) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        started = time.perf_counter()
        n_threads = pools.meter().threads(threads)
        try:
            trained = training_context(model_path)
        except (OSError, GGUFError) as exc:
            raise ModelUnavailable(
                f"Cannot read the model file {model_path}: {exc}. Check that it is a complete "
                "GGUF file (re-download it with `rag models pull`)."
            ) from None
        # The KV cache is sized by n_ctx: a cap above the training context only costs memory.
        n_ctx = min(context_cap, trained) if trained > 0 else context_cap
        self.extra_buffers = use_extra_buffers(weight_repack, cpu_flags())
        try:
            with _model_params(use_extra_bufts=self.extra_buffers):
                self._llm = llama_cpp.Llama(
                    model_path=str(model_path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    seed=seed,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            if "context" in str(exc):
                raise ModelUnavailable(
                    f"Loaded {model_path} but could not create a {n_ctx}-token context for it "
                    f"({exc}): probably not enough memory. Lower context_cap (RAG_CONTEXT_CAP)."
                ) from exc
            raise ModelUnavailable(
                f"Could not load the model file {model_path}: {exc}. "
                "Check that it is a complete GGUF file (re-download it with `rag models pull`)."
            ) from exc
        if bool(self._llm.model_params.use_extra_bufts) != self.extra_buffers:
            raise ModelUnavailable(
                "This llama-cpp-python version did not take pocketrag's weight_repack setting "
                f"(wanted use_extra_bufts={self.extra_buffers}); running it could crash on "
                "this CPU. Install the version in pyproject.toml."
            )
        self.load_s = time.perf_counter() - started
        self.model_name = model_name
        self.model_path = Path(model_path)
        self.seed = seed
        #: the `threads` setting (0: follow the free cores, re-decided per generation)
        self.threads_setting = threads
        self.threads = n_threads
        # llama.cpp rounds n_ctx up to a multiple of 256, but llama-cpp-python's token buffer
        # keeps the size asked for: the smallest of the three is what really fits.
        limits = [n_ctx, self._llm.n_ctx()] + ([trained] if trained > 0 else [])
        self.context_size = min(limits)
        #: weights in the model: small models get a smaller evidence budget
        self.parameters = int(llama_cpp.llama_model_n_params(self._llm._model.model))
        self._is_eog = lambda token: bool(
            llama_cpp.llama_vocab_is_eog(self._llm._model.vocab, token)
        )
        model = self._llm._model
        eos_id, bos_id = self._llm.token_eos(), self._llm.token_bos()
        chat_template = self._llm.metadata.get("tokenizer.chat_template")
        self._extra_stops = [] if chat_template else list(_FALLBACK_STOPS)
        self._formatter = Jinja2ChatFormatter(
            template=chat_template or _FALLBACK_TEMPLATE,
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
        return len(self._tokenize(text, add_bos=False, special=False))

    def render(self, messages: Sequence[Message]) -> tuple[list[int], list[str]]:
        """The prompt tokens for a chat, and the template's stop strings.

        Only the template's own markers may become control tokens. Message text (questions,
        retrieved passages, history) that spells a marker such as `<|im_end|>` is tokenized
        as plain text: otherwise a document could close the user turn and speak as the
        system. Text without such spellings is tokenized with the template in one piece,
        exactly as llama.cpp would.
        """
        result = self._formatter(messages=[m.as_dict() for m in messages])
        stops = result.stop if isinstance(result.stop, list) else [result.stop or ""]
        add_bos = not result.added_special
        if any(self._spells_special(m.content) for m in messages):
            tokens = self._render_separately(messages, add_bos)
        else:
            tokens = self._tokenize(result.prompt, add_bos=add_bos, special=True)
        return tokens, [s for s in stops if s] + self._extra_stops

    def _tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        # surrogateescape: a question with undecodable bytes from the command line
        return self._llm.tokenize(
            text.encode("utf-8", errors="surrogateescape"), add_bos=add_bos, special=special
        )

    def _spells_special(self, text: str) -> bool:
        """True when `text` holds the spelling of a control token (parsing it changes tokens)."""
        return self._tokenize(text, add_bos=False, special=True) != self._tokenize(
            text, add_bos=False, special=False
        )

    def _render_separately(self, messages: Sequence[Message], add_bos: bool) -> list[int]:
        """Template text with markers parsed, message text without: rendered with unguessable
        placeholders for the contents, then tokenized piece by piece."""
        nonce = secrets.token_hex(8)
        holders = {f"\ue000{nonce}{i}\ue001": m.content for i, m in enumerate(messages)}
        masked = [Message(m.role, h) for m, h in zip(messages, holders, strict=True)]
        prompt = self._formatter(messages=[m.as_dict() for m in masked]).prompt
        tokens = [self._llm.token_bos()] if add_bos and self._llm.token_bos() != -1 else []
        for i, piece in enumerate(re.split("(" + "|".join(holders) + ")", prompt)):
            if not piece:
                continue
            if i % 2:  # a placeholder: message text, never parsed for markers
                tokens += self._tokenize(holders[piece], add_bos=False, special=False)
            else:
                tokens += self._tokenize(piece, add_bos=False, special=True)
        return tokens

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

    def _fit_threads(self) -> None:
        """Re-size llama.cpp's threads to the cores free now (it starts its workers per
        decode, so a new count takes effect at the next one)."""
        import llama_cpp

        wanted = pools.meter().threads(self.threads_setting)
        if wanted != self.threads:
            llama_cpp.llama_set_n_threads(self._llm.ctx, wanted, wanted)
            self.threads = wanted

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
            self._fit_threads()
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
