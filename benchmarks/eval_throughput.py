"""Questions/minute of `rag eval` vs a plain loop over `llama_cpp.Llama` on the same prompts.

Goal: ratio >= 0.95, i.e. the eval's bookkeeping (prompt building through
`rag.orchestrator.ask`, streaming, scoring, a flushed JSON line per answer) costs
under 5% next to the model itself. Both sides:
- use one loaded model (the same `llama_cpp.Llama` object);
- answer exactly the same rendered prompts (recorded from the eval run);
- keep llama.cpp's KV-cache prefix reuse (a plain loop over `create_completion` gets
  it too), and decode greedily up to the same token limit.
Rounds alternate (plain, eval, plain, eval, ...) so machine noise hits both; each
side's best round counts. With `--replay SNAPSHOT --conditions closed,index:NAME`
the prompts carry retrieved passages (from `rag eval run --snapshot`).

    python benchmarks/eval_throughput.py [--benchmark FILE] [--n 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from evals.conditions import parse_conditions
from evals.runner import EvalConfig, run_eval
from rag.core.config import load_settings
from rag.generators import load_generator

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "nq-open-dev.jsonl"
FIXTURE = HERE.parent / "tests" / "fixtures" / "eval" / "nq_open.jsonl"


class Recording:
    """Passes calls through to the real generator and keeps every prompt it was given."""

    def __init__(self, inner) -> None:  # noqa: ANN001 - a LlamaGenerator
        self.inner = inner
        self.prompts: list = []
        self.model_name = inner.model_name
        self.context_size = inner.context_size

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def count_prompt_tokens(self, messages) -> int:  # noqa: ANN001
        return self.inner.count_prompt_tokens(messages)

    def generate(self, messages, **kw):  # noqa: ANN001, ANN003, ANN201
        self.prompts.append(list(messages))
        return self.inner.generate(messages, **kw)


def eval_round(args, settings, generator, workdir: Path, number: int) -> tuple[float, int]:  # noqa: ANN001
    config = EvalConfig(
        benchmark=args.benchmark,
        conditions=parse_conditions(args.conditions),
        out_dir=workdir / f"run{number}",
        n=args.n,
        seed=args.seed,
        max_tokens=args.max_tokens,
        replay=args.replay,
    )
    outcome = run_eval(config, settings, generator=generator)
    rows = (config.out_dir / "predictions.jsonl").read_text().splitlines()
    tokens = sum(json.loads(r)["completion_tokens"] for r in rows)
    return outcome.answers_per_minute, tokens


def plain_round(llm, rendered: list[tuple[list[int], list[str]]], max_tokens: int):  # noqa: ANN001, ANN201
    started = time.perf_counter()
    tokens = 0
    for prompt, stops in rendered:
        out = llm.create_completion(
            prompt=prompt, max_tokens=max_tokens, temperature=0.0, stop=stops or None
        )
        tokens += out["usage"]["completion_tokens"]
    return 60.0 * len(rendered) / (time.perf_counter() - started), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = SHARED if SHARED.is_file() else FIXTURE
    parser.add_argument("--benchmark", default=str(default))
    parser.add_argument("--conditions", default="closed")
    parser.add_argument("--replay", type=Path, default=None)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    settings = load_settings(model=args.model)
    base = load_generator(settings)
    llm = base.llama
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings = settings.with_overrides(home=workdir / "home")  # leave the user's state alone
        recorder = Recording(base)
        eval_round(args, settings, recorder, workdir, 0)  # warm-up, and records the prompts
        rendered = [base.render(messages) for messages in recorder.prompts]
        print(f"{len(rendered)} prompts, model {args.model}, conditions {args.conditions}")
        plain_best = eval_best = 0.0
        for i in range(1, args.rounds + 1):
            plain, plain_tokens = plain_round(llm, rendered, args.max_tokens)
            ours, our_tokens = eval_round(args, settings, base, workdir, i)
            print(
                f"round {i}: plain llama_cpp {plain:.1f} q/min ({plain_tokens} tokens), "
                f"rag eval {ours:.1f} q/min ({our_tokens} tokens)"
            )
            plain_best, eval_best = max(plain_best, plain), max(eval_best, ours)
    print(f"plain llama_cpp loop: {plain_best:.1f} questions/minute (best round)")
    print(f"rag eval:             {eval_best:.1f} questions/minute (best round)")
    print(f"ratio rag eval / plain: {eval_best / plain_best:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
