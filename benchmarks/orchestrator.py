"""Question -> first token: how much of it is orchestration, how much is the model?

Runs the real `rag ask --search` path (web retriever with its SQLite cache,
fusion, packing with the model's own tokenizer, prompt template) against a fake
search engine that answers instantly, with SmolLM2 as the model, and splits the
time to the first token into:
- retrieval: the web retriever (engine call, cache read/write) and merge/dedupe;
- packing: the prompt frame and every source block counted in model tokens;
- prompt evaluation: the model renders the chat template, tokenizes, prefills the
  prompt and produces the first token.
Orchestration overhead = everything but the model's part, as a fraction of the
total; the goal is < 5%. Model loading is excluded (once per process). Each
question starts from an empty KV cache, as a single `rag ask` does.

    python benchmarks/orchestrator.py [--questions 8] [--k 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.core import plugins  # noqa: E402
from rag.core.config import Settings  # noqa: E402
from rag.generators import load_generator  # noqa: E402
from rag.orchestrator import build_prompt, retrieve  # noqa: E402
from rag.web import WebResult, build_web_retriever  # noqa: E402

TOPICS = [
    "Who wrote the novel Emma?",
    "When was the Eiffel Tower completed?",
    "What is the boiling point of water at sea level?",
    "Who painted the Mona Lisa?",
    "What is the capital of Australia?",
    "How many moons does Mars have?",
    "Who discovered penicillin?",
    "What language is spoken in Brazil?",
    "When did the first person walk on the Moon?",
    "What is the largest ocean on Earth?",
    "Who composed the Moonlight Sonata?",
    "What is the chemical symbol for gold?",
]


class InstantEngine:
    """A search engine with no network cost: k results with snippet-sized text (~45 words)."""

    name = "instant"

    def cache_identity(self) -> dict:
        return {}

    def search(self, query: str, max_results: int) -> list[WebResult]:
        words = query.rstrip("?").split()
        return [
            WebResult(
                title=f"{' '.join(words[-3:])} - result {i}",
                url=f"https://example{i}.org/{'-'.join(words).lower()}",
                snippet=(
                    f"{query} Result {i} explains that {' '.join(words[2:])} has a long history, "
                    "documented by encyclopedias, historians and reference works, with dates, "
                    f"names and places given in detail; see section {i} for sources."
                ),
            )
            for i in range(1, max_results + 1)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--model", default="smollm2-135m")
    args = parser.parse_args()

    plugins.register(plugins.Part("engine", "instant", lambda *a, **k: InstantEngine()))
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), model=args.model, engine="instant", k=args.k)
        started = time.perf_counter()
        generator = load_generator(settings)
        print(f"model {args.model}: loaded in {time.perf_counter() - started:.2f}s (excluded)")
        retriever = build_web_retriever(settings)
        llama = getattr(generator, "llama", None)

        # One warm-up question so first-call costs (imports, SQLite file creation) are not timed.
        questions = ["Warm-up: who built the pyramids?"] + [
            TOPICS[i % len(TOPICS)] + ("" if i < len(TOPICS) else f" ({i})")
            for i in range(args.questions)
        ]
        rows = []
        for n, question in enumerate(questions):
            if llama is not None:
                llama.reset()  # an empty KV cache, as for a single `rag ask`
            t0 = time.perf_counter()
            retrieved = retrieve(question, [retriever], settings)
            t1 = time.perf_counter()
            messages, packed = build_prompt(
                question, retrieved.passages, generator,
                max_tokens=settings.max_tokens, family="answer",
            )  # fmt: skip
            t2 = time.perf_counter()
            generation = generator.generate(messages, max_tokens=1)
            next(iter(generation), None)
            t3 = time.perf_counter()
            generation.text  # noqa: B018 - finish the stream
            if n == 0:
                continue
            rows.append(
                {
                    "retrieval": t1 - t0,
                    "packing": t2 - t1,
                    "prompt_eval": t3 - t2,
                    "total": t3 - t0,
                    "prompt_tokens": generation.timings.prompt_tokens,
                    "sources": len(packed),
                }
            )

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(
        f"{len(rows)} questions, {args.k} web results each, "
        f"median {med('prompt_tokens'):.0f} prompt tokens, {med('sources'):.0f} sources packed"
    )
    print("median seconds from question to first token:")
    for key, label in [
        ("retrieval", "retrieval (engine, cache, fusion)"),
        ("packing", "packing (token counting, template)"),
        ("prompt_eval", "prompt evaluation (model, to first token)"),
        ("total", "total"),
    ]:
        print(f"  {label:<44} {med(key) * 1000:9.1f} ms")
    overhead = sum(r["retrieval"] + r["packing"] for r in rows) / sum(r["total"] for r in rows)
    print(f"orchestration overhead: {overhead:.2%} of question-to-first-token (goal < 5%)")


if __name__ == "__main__":
    main()
