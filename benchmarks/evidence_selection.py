"""What reranking and selection cost on the way to the first token, and what they save.

For each question, against a local index and a real model, in one process:
- today's k=5: the retrievers' top 5 passages, whole (`reranker = "none"`);
- the default: 10 candidates reranked, the best sentences kept within the model's budget.
Each question starts from an empty KV cache, as a single `rag ask` does, and generates one
token. Printed, as ratios within this run (absolute times on these machines are noisy):
- overhead: reranking + selection time over the rest of the default's question-to-first-
  token (retrieval + prompt evaluation), i.e. what selection adds on the same prompt size;
- speed-up: question-to-first-token of the default against today's k=5;
- mean prompt tokens of both.

The index comes from the offline NQ recipe (`python -m evals.recipes.offline_nq`):

    RAG_HOME=... python benchmarks/evidence_selection.py --index nq-wiki \
        --questions runs/nq-offline/data/nq-open-dev-questions.jsonl [--n 40] [--model M]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.core.config import load_settings  # noqa: E402
from rag.evidence import choose_evidence  # noqa: E402
from rag.generators import load_generator  # noqa: E402
from rag.orchestrator import build_prompt, evidence_room, retrieve  # noqa: E402
from rag.sources import build_retriever  # noqa: E402


def first_token(question: str, settings, retriever, generator) -> dict[str, float]:  # noqa: ANN001
    started = time.perf_counter()
    retrieved = retrieve(question, [retriever], settings)
    retrieval_s = time.perf_counter() - started
    room = evidence_room(question, generator, max_tokens=1, family="eval")
    selection = choose_evidence(
        question,
        retrieved.passages,
        settings=settings,
        parameters=generator.parameters,
        room=room,
        count_tokens=generator.count_tokens,
    )
    selected = time.perf_counter()
    messages, _ = build_prompt(
        question, selection.passages, generator, max_tokens=1, family="eval", room=room
    )
    generator.llama.reset()  # no KV cache carried over from the last question
    generation = generator.generate(messages, max_tokens=1)
    for _ in generation:
        break
    done = time.perf_counter()
    return {
        "retrieval": retrieval_s,
        "selection": selected - started - retrieval_s,
        "model": done - selected,
        "total": done - started,
        "prompt_tokens": generation.timings.prompt_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", default="nq-wiki")
    parser.add_argument("--questions", type=Path, required=True, help="JSONL with `question`")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--model", default="smollm2-135m")
    args = parser.parse_args()

    base = load_settings(model=args.model)
    today = base.with_overrides(k=5, reranker="none", evidence_tokens=1_048_576)
    default = base
    generator = load_generator(base)
    retriever = build_retriever(f"index:{args.index}", base)
    with args.questions.open(encoding="utf-8") as handle:
        questions = [json.loads(line)["question"] for line in handle if line.strip()][: args.n]
    for warm in questions[:3]:  # load the embedder and reranker, fill caches
        first_token(warm, default, retriever, generator)
        first_token(warm, today, retriever, generator)
    runs: dict[str, list[dict[str, float]]] = {"today": [], "default": []}
    for question in questions:  # interleaved, so drift in machine speed hits both alike
        runs["today"].append(first_token(question, today, retriever, generator))
        runs["default"].append(first_token(question, default, retriever, generator))

    def total(name: str, key: str) -> float:
        return sum(r[key] for r in runs[name])

    overhead = total("default", "selection") / (
        total("default", "retrieval") + total("default", "model")
    )
    speedup = total("today", "total") / total("default", "total")
    print(f"model {generator.model_name}, index {args.index}, {len(questions)} questions")
    for name, rows in runs.items():
        tokens = statistics.mean(r["prompt_tokens"] for r in rows)
        to_first = statistics.median(r["total"] for r in rows)
        selecting = statistics.median(r["selection"] for r in rows) * 1000
        print(
            f"{name:8s} mean prompt tokens {tokens:6.1f}  median question-to-first-token "
            f"{to_first:.3f} s (selection {selecting:.1f} ms)"
        )
    print(f"rerank+select adds {overhead:.1%} to question-to-first-token on the same prompt")
    print(f"question-to-first-token, today's k=5 / default: {speedup:.2f}x")


if __name__ == "__main__":
    main()
