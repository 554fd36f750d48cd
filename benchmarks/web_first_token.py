"""Web search, question to first token: snippets only vs `--fetch 3`, and what reading the
pages in parallel saves over one after another.

On the offline web of evals.recipes.offline_web (the NQ corpus as pages, ../shared/data),
served on 127.0.0.1 with a fixed delay per page drawn from --delay (a site's and the
network's time; one page in 40 fails, a few of them slower than the fetch budget), the
real searxng engine, fetcher, selection and model (SmolLM2-135M by default). No cache:
every variant searches and fetches anew. For each NQ question, in an order that rotates:

- `snippets`: search, select, first token;
- `fetch3`: search, read the top 3 pages at once (rag.web.fetch), select, first token;
- `fetch3-seq`: the same with the pages read one after another (rag.web.fetch's
  MAX_PARALLEL set to 1 for that variant alone).

Prints each variant's median seconds to the first token, its median fetch step, and the
ratios. Timings on a shared machine are noisy: compare medians of one interleaved run.

    python benchmarks/web_first_token.py [--questions 20] [--delay 0.3,1.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from evals.recipes.local_web import SearchIndex, read_pages
from evals.recipes.offline_nq import DEFAULT_DATA, build_corpus
from evals.recipes.web_pages import serve_web

VARIANTS = ("snippets", "fetch3", "fetch3-seq")


def first_token(question: str, retriever, generator, settings) -> tuple[float, float]:
    """(seconds to the first non-empty piece of the answer, seconds of retrieval)."""
    from rag.orchestrator import answer, retrieve

    started = time.perf_counter()
    first: list[float] = []

    def on_text(piece: str) -> None:
        if piece.strip() and not first:
            first.append(time.perf_counter() - started)

    got = retrieve(question, [retriever], settings)
    retrieval = time.perf_counter() - started
    answer(question, got, generator, settings, family="answer", on_text=on_text)
    return (first[0] if first else time.perf_counter() - started), retrieval


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--delay", default="0.3,1.5", help="LOW,HIGH seconds per page")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("runs/web-first-token"))
    args = parser.parse_args(argv)
    low, high = (float(x) for x in args.delay.split(","))

    import rag.web.fetch as fetch_module
    from rag.core.config import load_settings
    from rag.generators import load_generator
    from rag.web import WebRetriever
    from rag.web.fetch import parse_private_hosts
    from rag.web.searxng import SearxngEngine

    corpus = args.work / "corpus.jsonl"
    covered = build_corpus(
        args.data / "nq-open-oracle.jsonl.gz", args.data / "wiki-vital-en.jsonl.gz", corpus,
        wiki_limit=None,
    )  # fmt: skip
    asked = []
    with (args.data / "nq-open-dev.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            question = json.loads(line)["question"]
            if question in covered:
                asked.append(question)
            if len(asked) == args.questions:
                break
    index = SearchIndex(read_pages(corpus))
    settings = load_settings(model=args.model, max_tokens=8)
    generator = load_generator(settings)
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    fetching: dict[str, list[float]] = {v: [] for v in VARIANTS}
    parallel = fetch_module.MAX_PARALLEL
    with serve_web(index, delay=(low, high)) as (url, _):
        engine = SearxngEngine(url)
        hosts = parse_private_hosts(url.split("//", 1)[1])
        snippets = WebRetriever(engine, private_hosts=hosts)
        pages = snippets.with_fetch(3)
        first_token(asked[0], snippets, generator, settings)  # warm: model, prompt prefix
        for n, question in enumerate(asked):
            order = VARIANTS[n % 3 :] + VARIANTS[: n % 3]
            searched = {}
            for variant in order:
                fetch_module.MAX_PARALLEL = 1 if variant == "fetch3-seq" else parallel
                try:
                    retriever = snippets if variant == "snippets" else pages
                    took, retrieval = first_token(question, retriever, generator, settings)
                finally:
                    fetch_module.MAX_PARALLEL = parallel
                seconds[variant].append(took)
                searched[variant] = retrieval
            for variant in VARIANTS:  # the fetch step: retrieval beyond the snippets' own
                fetching[variant].append(searched[variant] - searched["snippets"])
            print(
                f"{n + 1}/{len(asked)} " + " ".join(f"{v} {seconds[v][-1]:.2f}s" for v in VARIANTS),
                file=sys.stderr,
            )

    med = {v: statistics.median(seconds[v]) for v in VARIANTS}
    fetch_med = {v: statistics.median(fetching[v]) for v in VARIANTS}
    print(f"questions: {len(asked)}, page delay {low:g}-{high:g}s, model {args.model}")
    print("| variant | median s to first token | median fetch step s |")
    print("|---|---|---|")
    for v in VARIANTS:
        print(f"| {v} | {med[v]:.2f} | {fetch_med[v]:.2f} |")
    print(f"fetch3 / snippets, first token: {med['fetch3'] / med['snippets']:.2f}x")
    print(f"fetch3-seq / fetch3, first token: {med['fetch3-seq'] / med['fetch3']:.2f}x")
    seq, par = fetch_med["fetch3-seq"], fetch_med["fetch3"]
    if par > 0:
        print(
            f"fetch step, sequential / parallel: {seq / par:.2f}x (parallel saves {seq - par:.2f}s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
