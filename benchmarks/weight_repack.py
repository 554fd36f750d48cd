"""What llama.cpp's weight repack (its "extra buffer types") buys on this CPU.

pocketrag turns the repack off on AMX CPUs, where it crashes, and keeps it on elsewhere.
This measures whether keeping it is worth it: the same GGUF loaded twice through rag's
generator, `weight_repack=on` and `off`, one answer each in interleaved rounds (a
~400-token prompt from an empty KV cache, then greedy generation), best round each. Prints
the off/on ratios: below 1.0 means turning the repack off would cost that much speed.

    python benchmarks/weight_repack.py [--model smollm2-135m | PATH.gguf] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse

from rag.core.types import Message
from rag.generators.llama import AMX_FLAGS, LlamaGenerator, cpu_flags
from rag.generators.model_files import resolve_model

TEXT = (
    "Summarise this in one long paragraph: "
    + "The quick brown fox jumps over the lazy dog while the farmer watches. " * 24
)


def measure(generator: LlamaGenerator, tokens: int) -> tuple[float, float]:
    """(prompt tokens/s, generated tokens/s) of one answer through rag's generator, from an
    empty KV cache: the prompt rate is prompt tokens over the time to the first token."""
    generator.llama.reset()
    generation = generator.generate([Message("user", TEXT)], max_tokens=tokens)
    _ = generation.text
    t = generation.timings
    return t.prompt_tokens / t.ttft_s, t.tokens_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="0: rag's default")
    args = parser.parse_args()
    path = resolve_model(args.model).fetch()
    flags = cpu_flags()
    print(f"model {path.name}; CPU has AMX: {bool(AMX_FLAGS & flags)}, AVX2: {'avx2' in flags}")
    loaded = {
        setting: LlamaGenerator(
            path,
            model_name=args.model,
            context_cap=1024,
            threads=args.threads,
            weight_repack=setting,
        )
        for setting in ("on", "off")
    }
    best: dict[str, tuple[float, float]] = {"on": (0.0, 0.0), "off": (0.0, 0.0)}
    for round_number in range(1, args.rounds + 1):
        for setting, generator in loaded.items():
            prompt_rate, gen_rate = measure(generator, args.tokens)
            best[setting] = (max(best[setting][0], prompt_rate), max(best[setting][1], gen_rate))
            print(f"round {round_number}: repack {setting:3} prompt {prompt_rate:7.1f} tok/s, "
                  f"generation {gen_rate:6.1f} tok/s")  # fmt: skip
    on, off = best["on"], best["off"]
    print(f"best: repack on  prompt {on[0]:.1f} tok/s, generation {on[1]:.1f} tok/s")
    print(f"best: repack off prompt {off[0]:.1f} tok/s, generation {off[1]:.1f} tok/s")
    print(f"ratio off/on: prompt {off[0] / on[0]:.3f}, generation {off[1] / on[1]:.3f}")


if __name__ == "__main__":
    main()
