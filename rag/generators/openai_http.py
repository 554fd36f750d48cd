"""A model behind an OpenAI-compatible HTTP endpoint (llama.cpp server, llama-cpp-python's
server, vLLM, Ollama), so a team can share one bigger model.

Spec: `openai:URL#MODEL`, URL being the API base (e.g. `http://127.0.0.1:8000/v1`).
Prompt packing needs token counts in the model's own tokens: we ask the server's
tokenize endpoint when it has one (llama-cpp-python, llama.cpp, vLLM) and fall back
to a conservative estimate (3 characters a token) when it does not.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlparse

import httpx

from rag.core.config import Settings
from rag.core.errors import GenerationError, PromptTooLong, UsageError
from rag.core.types import Message, Timings
from rag.generators.base import Generation, TimedStream, check_fits

#: Spellings of chat-template control tokens in the common model families: `<|...|>`
#: (ChatML, Phi-3, Llama 3), Gemma's turn markers, Llama 2 / Mistral `[INST]` and `<<SYS>>`,
#: and `<s>`-style sequence markers. The server renders our messages into its template and
#: (llama.cpp, vLLM) parses such spellings inside them as control tokens, so a document
#: could close the user's turn and speak as the system. We cannot see the server's
#: vocabulary, so every such spelling is broken with an invisible word joiner after its
#: first character: the text still reads the same, but no longer matches a marker.
_MARKER = re.compile(
    r"<\|[^\s<>|]{1,40}\|>|</?(?:start_of_turn|end_of_turn|s|bos|eos|pad|unk)>"
    r"|\[/?INST\]|<</?SYS>>"
    # DeepSeek's markers use fullwidth bars (`<｜User｜>`, `<｜end▁of▁sentence｜>`);
    # Mistral's newer templates add bracketed ones (`[SYSTEM_PROMPT]`, `[TOOL_RESULTS]`).
    r"|<\uff5c[^\s<>\uff5c]{1,40}\uff5c>"
    r"|\[/?(?:SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|TOOL_CONTENT)\]",
    re.IGNORECASE,
)
_JOINER = "\u2060"


def neutralize_markers(text: str) -> str:
    return _MARKER.sub(lambda m: m.group(0)[0] + _JOINER + m.group(0)[1:], text)


def wire_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """The messages as sent to the server: every text with its marker spellings broken."""
    return [{"role": m.role, "content": neutralize_markers(m.content)} for m in messages]


#: Per-message tokens the chat template adds around the content (role markers etc.).
TEMPLATE_TOKENS_PER_MESSAGE = 8
CHARS_PER_TOKEN_ESTIMATE = 3


class OpenAIGenerator:
    """Safe to call from several threads at once (`rag eval run --concurrency N`): the
    httpx client pools its connections under a lock, the tokenizer is found once under
    `_probe`, and every request keeps its own timings."""

    #: the server batches concurrent requests (see `rag.generators.base.serves_concurrently`)
    concurrent = True

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        context_size: int = 4096,
        api_key: str = "",
        seed: int = 0,
        timeout_s: float = 600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_name = f"openai:{self.base_url}#{model}" if model else f"openai:{self.base_url}"
        self.context_size = context_size
        self.parameters: int | None = None  # a remote model does not say
        self.seed = seed
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0))
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self._root = root
        self._tokenizer: Callable[[str], int] | None = None
        self._probe = threading.Lock()  # one thread looks for the tokenize endpoint
        self.exact_token_counts = True

    @classmethod
    def from_spec(cls, rest: str, settings: Settings) -> OpenAIGenerator:
        url, _, model = rest.partition("#")
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(
                f"Malformed model 'openai:{rest}': use openai:URL#MODEL, "
                "e.g. openai:http://127.0.0.1:8080/v1#phi-3-mini."
            )
        api_key = settings.openai_api_key or os.environ.get("OPENAI_API_KEY", "")
        return cls(
            url, model, context_size=settings.context_cap, api_key=api_key, seed=settings.seed
        )

    # -- token counting -------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            with self._probe:
                if self._tokenizer is None:
                    self._tokenizer = self._find_tokenizer()
        return self._tokenizer(text)

    def _find_tokenizer(self) -> Callable[[str], int]:
        """The first tokenize endpoint the server answers; else an estimate that errs high."""
        candidates: list[tuple[str, Callable[[str], dict], Callable[[dict], int]]] = [
            (  # llama-cpp-python's server
                "/extras/tokenize/count",
                lambda t: {"input": t, "model": self.model or None},
                lambda r: int(r["count"]),
            ),
            (  # llama.cpp's server
                "/tokenize",
                lambda t: {"content": t, "model": self.model, "prompt": t},
                lambda r: len(r["tokens"]) if "tokens" in r else int(r["count"]),
            ),
        ]
        for path, body, read in candidates:
            try:
                response = self._client.post(self._root + path, json=body("probe"))
                if response.status_code == 200:
                    read(response.json())
                    return lambda t, p=path, b=body, r=read: r(
                        self._client.post(self._root + p, json=b(t)).json()
                    )
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
        self.exact_token_counts = False
        return lambda t: -(-len(t) // CHARS_PER_TOKEN_ESTIMATE)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return sum(
            self.count_tokens(m["content"]) + TEMPLATE_TOKENS_PER_MESSAGE
            for m in wire_messages(messages)
        )

    # -- generation -----------------------------------------------------------------
    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Generation:
        try:
            prompt_tokens = self.count_prompt_tokens(messages)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        check_fits(prompt_tokens, max_tokens, self.context_size, self.model_name)
        body = {
            "messages": wire_messages(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": self.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.model:
            body["model"] = self.model
        timings = Timings(prompt_tokens=prompt_tokens)
        started = time.perf_counter()
        # Send now and read the status before returning: a server that refuses the prompt as
        # too long must raise here, where the orchestrator can retry with fewer passages.
        request = self._client.build_request("POST", self.base_url + "/chat/completions", json=body)
        try:
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code != 200:
            text = response.read().decode("utf-8", "replace")
            response.close()
            raise self._http_error(response.status_code, text)
        pieces = self._stream(response, timings)
        return Generation(TimedStream(timings).wrap(pieces, started=started), timings)

    def _stream(self, response: httpx.Response, timings: Timings) -> Iterator[tuple[str, int]]:
        counted = 0
        events = 0
        finished = False  # a choice said why it ended (stop, length)
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                events += 1
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                usage = chunk.get("usage")
                if usage:
                    timings.prompt_tokens = int(usage.get("prompt_tokens") or timings.prompt_tokens)
                    reported = int(usage.get("completion_tokens") or counted)
                    yield "", reported - counted
                    counted = reported
                for choice in chunk.get("choices") or []:
                    finished = finished or bool(choice.get("finish_reason"))
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        counted += 1
                        yield text, 1
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        except json.JSONDecodeError as exc:
            raise GenerationError(
                f"The model server at {self.base_url} sent a malformed stream ({exc})."
            ) from exc
        finally:
            response.close()
        if events == 0:
            # llama-cpp-python's server, for one, fails a too-long prompt after sending
            # "200 OK", so all we see is a stream that ends before it starts.
            raise GenerationError(
                f"The model server at {self.base_url} ended the answer before it began; its log "
                f"says why. A common cause is a prompt (here about {timings.prompt_tokens} "
                "tokens) longer than the server's context: set context_cap (RAG_CONTEXT_CAP) "
                "to the server's context size so pocketrag packs less."
            )
        if not finished:
            # The answer was cut short, and a short answer would be scored as if complete.
            # llama-cpp-python's server does this to a streaming answer as soon as another
            # request waits (its `interrupt_requests`, on by default).
            raise GenerationError(
                f"The model server at {self.base_url} ended the answer without a finish "
                "reason: it was cut short. llama-cpp-python's server cuts a streaming answer "
                "short whenever another request arrives: start it with "
                "`--interrupt_requests False` to send it several questions at once "
                "(rag eval run --concurrency), or use llama.cpp's llama-server."
            )

    def _unreachable(self, exc: Exception) -> GenerationError:
        return GenerationError(
            f"Cannot reach the model server at {self.base_url} ({type(exc).__name__}: {exc}). "
            "Is it running, and is the URL the API base (usually ending in /v1)?"
        )

    def _http_error(self, status: int, text: str) -> Exception:
        snippet = " ".join(text.split())[:300]
        if status == 400 and "context" in text.lower():
            return PromptTooLong(
                f"The model server refused the prompt as too long: {snippet}",
                prompt_tokens=0,
                limit=self.context_size,
            )
        hint = " Check RAG_OPENAI_API_KEY." if status in (401, 403) else ""
        return GenerationError(
            f"The model server at {self.base_url} answered HTTP {status}: {snippet}.{hint}"
        )


def wait_until_ready(base_url: str, timeout_s: float = 60.0) -> bool:
    """For tests and scripts that start a server: poll `/models` until it answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url.rstrip("/") + "/models", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False
