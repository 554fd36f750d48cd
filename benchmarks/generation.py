"""Tokens/s of rag's generator vs. calling llama_cpp.Llama directly (goal: ratio >= 0.97).

Same GGUF, same rendered prompt tokens, same greedy settings, same thread count;
runs are interleaved (rag, raw, rag, raw, ...) so machine noise hits both alike,
and each run starts from an empty KV cache. Decode rate is counted the same way
on both sides: tokens after the first, over the time after the first token.

    python benchmarks/generation.py [--model smollm2-135m] [--tokens 128] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from rag.core.config import load_settings
from rag.core.types import Message
from rag.generators import load_generator

PROMPT = [Message("user", "Write a long, detailed story about a dragon who learns to bake bread.")]


def raw_tokens_per_s(llm, tokens: list[int], max_tokens: int) -> tuple[float, int]:
    import llama_cpp

    llm.reset()
    first_at = None
    produced = 0
    for token in llm.generate(
        tokens, temp=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0
    ):
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            break
        llm.detokenize([token])
        produced += 1
        if first_at is None:
            first_at = time.perf_counter()
        if produced >= max_tokens:
            break
    elapsed = time.perf_counter() - (first_at or time.perf_counter())
    return (produced - 1) / elapsed if produced > 1 else 0.0, produced


def rag_tokens_per_s(generator, max_tokens: int) -> tuple[float, int]:
    generator.llama.reset()
    generation = generator.generate(PROMPT, max_tokens=max_tokens)
    _ = generation.text
    return generation.timings.tokens_per_s, generation.timings.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import llama_cpp

    settings = load_settings(model=args.model)
    generator = load_generator(settings)
    tokens, _ = generator.render(PROMPT)
    raw = llama_cpp.Llama(
        model_path=str(generator.model_path),
        n_ctx=generator.llama.n_ctx(),
        n_threads=generator.llama.n_threads,
        n_threads_batch=generator.llama.n_threads_batch,
        seed=settings.seed,
        verbose=False,
    )
    rag_rates, raw_rates = [], []
    for _ in range(args.rounds):
        rate, n_rag = rag_tokens_per_s(generator, args.tokens)
        rag_rates.append(rate)
        rate, n_raw = raw_tokens_per_s(raw, tokens, args.tokens)
        raw_rates.append(rate)
        if n_rag != n_raw:
            raise SystemExit(f"the two sides generated different lengths ({n_rag} vs {n_raw})")
    rag_rate, raw_rate = statistics.median(rag_rates), statistics.median(raw_rates)
    print(
        f"model: {generator.model_name} ({generator.model_path.name}), {n_rag} tokens, "
        f"{len(tokens)} prompt tokens, {args.rounds} interleaved rounds"
    )
    print(f"rag generator:   {rag_rate:.1f} tokens/s (median)")
    print(f"llama_cpp.Llama: {raw_rate:.1f} tokens/s (median)")
    print(f"ratio rag/raw: {rag_rate / raw_rate:.3f} (goal >= 0.97)")


if __name__ == "__main__":
    main()
