"""The llama.cpp generator on the real bundled SmolLM2-135M model."""

from pathlib import Path

import pytest

from rag.errors import PromptTooLong
from rag.generators.llama import LlamaGenerator, _stop_prefix_len
from rag.types import Message

QUESTION = [Message("user", "What is the capital of France? Answer in one word.")]


@pytest.fixture(scope="module")
def generator() -> LlamaGenerator:
    from rag.models import ALIASES

    return LlamaGenerator(
        ALIASES["smollm2-135m"].fetch(), model_name="smollm2-135m", context_cap=1024
    )


def test_streams_text_with_exact_timings(generator: LlamaGenerator) -> None:
    generation = generator.generate(QUESTION, max_tokens=24)
    chunks = list(generation)
    assert len(chunks) >= 1 and "".join(chunks) == generation.text
    t = generation.timings
    assert t.prompt_tokens == generator.count_prompt_tokens(QUESTION) > 10
    assert 1 <= t.completion_tokens <= 24
    assert 0 < t.ttft_s <= t.total_s


def test_greedy_is_deterministic_and_reuses_the_prompt_cache(generator: LlamaGenerator) -> None:
    first = generator.generate(QUESTION, max_tokens=16)
    second = generator.generate(QUESTION, max_tokens=16)
    assert first.text == second.text
    assert second.timings.cached_prompt_tokens > 0


def test_chat_template_comes_from_the_gguf(generator: LlamaGenerator) -> None:
    tokens, _ = generator.render(QUESTION)
    text = generator.llama.detokenize(tokens, special=True).decode()
    assert "<|im_start|>user" in text and text.rstrip().endswith("<|im_start|>assistant")


def test_too_long_prompt_is_refused_not_truncated(generator: LlamaGenerator) -> None:
    long = [Message("user", "word " * 2000)]
    with pytest.raises(PromptTooLong) as info:
        generator.generate(long, max_tokens=32)
    assert info.value.prompt_tokens > 1024 - 32
    assert "context of 1024 tokens" in str(info.value)


def test_max_tokens_bounds_the_answer(generator: LlamaGenerator) -> None:
    generation = generator.generate(
        [Message("user", "Count from one to one hundred.")], max_tokens=5
    )
    assert generation.text and generation.timings.completion_tokens == 5


def test_stop_prefix_hold_back() -> None:
    assert _stop_prefix_len("hello <|im", ["<|im_end|>"]) == 4
    assert _stop_prefix_len("hello", ["<|im_end|>"]) == 0


def test_context_size_is_capped_by_training_context(smollm2_path: Path) -> None:
    generator = LlamaGenerator(smollm2_path, model_name="s", context_cap=512)
    assert generator.context_size == 512


def test_an_abandoned_stream_does_not_block_the_next_answer(generator: LlamaGenerator) -> None:
    first = iter(generator.generate(QUESTION, max_tokens=20))
    next(first)  # the caller stops reading here
    assert generator.generate(QUESTION, max_tokens=5).text


def test_a_cap_llama_cpp_rounds_up_is_still_the_real_limit(smollm2_path: Path) -> None:
    generator = LlamaGenerator(smollm2_path, model_name="s", context_cap=300)
    assert generator.context_size == 300
    with pytest.raises(PromptTooLong):
        generator.generate([Message("user", "word " * 330)], max_tokens=10)
    prompt = [Message("user", "word " * 200)]
    fits = 300 - generator.count_prompt_tokens(prompt)
    assert generator.generate(prompt, max_tokens=min(fits, 8)).text is not None
