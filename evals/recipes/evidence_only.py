"""What the model would read, without the model answering: hit@k and prompt tokens fast.

Why: on a small shared machine generation is most of an eval's time, yet which evidence
reaches the prompt (hit@k of what the model read, prompt tokens, retrieval seconds) does
not depend on the answer at all: it depends on the model's tokenizer and context only.
`EvidenceOnly(generator)` keeps those and answers nothing (every answer is scored wrong),
so `run_eval` measures the evidence of many more questions in the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag.core.types import Message, Timings
from rag.generators.base import Generation, TimedStream


class EvidenceOnly:
    """`inner`'s tokenizer, context size and parameters; `generate` returns an empty answer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_name = f"{inner.model_name} (evidence only)"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(
        self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.0
    ) -> Generation:
        timings = Timings(prompt_tokens=self.inner.count_prompt_tokens(messages))
        return Generation(TimedStream(timings).wrap(iter(())), timings)
