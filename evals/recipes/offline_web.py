"""Offline web reproduction: NQ-open through a local search engine, snippets vs pages vs index.

Runs on a machine with no network, on the data of evals.recipes.offline_nq:

1. builds the same corpus (gold NQ passages + Wikipedia vital leads) and questions;
2. `rag index`es it as NAME (for the `index` condition), unless it exists (`--skip-index`);
3. serves it on 127.0.0.1 as a small web (evals.recipes.local_web, web_pages): SearxNG's
   JSON API over the pages (one per article, BM25-ranked, engine-length snippets), and each
   page as HTML with site chrome; one page in 40 fails (404, too slow, PDF, too big);
4. `rag eval run --conditions closed,web[fetch=0],web[fetch=1],web[fetch=3],index:NAME`
   through the real CLI with the real searxng engine pointed at it, the real fetcher and
   selection, every question under every condition in turn (interleaved), no search cache (so the
   seconds are a search's, not the cache's); the fetcher may read this server alone
   (RAG_PRIVATE_FETCH_HOSTS=127.0.0.1:PORT), no other private address;
5. prints, per condition: accuracy with its 95% CI, hit@k of what the model read, prompt
   tokens, seconds per question, and how many pages were read or failed.

    python -m evals.recipes.offline_web --n 300 --out runs/nq-offline-web

Re-running resumes (same --out, --n, --seed): the eval run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from evals.recipes.local_web import SearchIndex, read_pages
from evals.recipes.offline_nq import add_data_arguments, build_corpus, write_questions
from evals.recipes.web_pages import serve_web

CONDITIONS = ("closed", "web[fetch=0]", "web[fetch=1]", "web[fetch=3]")


def rag(*args: str, env: dict[str, str] | None = None) -> None:
    print("$ rag " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "rag.cli.app", *args], check=True, env=env)


def web_env(url: str) -> dict[str, str]:
    """The environment of `rag eval run`: the searxng engine at the local web, the fetcher
    allowed to read that one address and port, and no cache between conditions."""
    env = dict(os.environ)
    env.update(
        RAG_ENGINE="searxng",
        RAG_ENGINE_SEARXNG_URL=url,
        RAG_PRIVATE_FETCH_HOSTS=url.split("//", 1)[1],
        RAG_SEARCH_CACHE_TTL="0",
    )
    env.pop("RAG_ALLOW_PRIVATE_FETCH", None)  # this server only, never the whole machine
    return env


def summary(run_dir: Path) -> str:
    """The table the recipe ends with, from the run's results.json and predictions."""
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    rows = [json.loads(x) for x in (run_dir / "predictions.jsonl").read_text().splitlines() if x]
    lines = [
        "| condition | n | accuracy | 95% CI | hit@k | prompt tokens | s/question | "
        "retrieval s | pages unread |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for name, m in results["conditions"].items():
        mine = [r for r in rows if r["condition"] == name]
        retrieval = sum(float(r.get("retrieval_s", 0)) for r in mine) / max(1, len(mine))
        unread = sum(sum("Could not read" in w for w in r.get("warnings") or []) for r in mine)
        low, high = m["accuracy_ci"]
        lines.append(
            f"| {name} | {m['n']} | {pct(m['accuracy'])} | {pct(low)}–{pct(high)} | "
            f"{pct(m['hit_at_k'])} | {m['mean_prompt_tokens']:.0f} | "
            f"{m['mean_latency_s']:.2f} | {retrieval:.2f} | {unread} |"
        )
    return "\n".join(lines)


def evidence_only(
    questions: Path, conditions: str, args: argparse.Namespace, run_dir: Path, env: dict
) -> None:
    """The eval runner in this process, its model answering nothing (EvidenceOnly)."""
    from evals.conditions import parse_conditions
    from evals.recipes.evidence_only import EvidenceOnly
    from evals.runner import EvalConfig, run_eval
    from rag.core.config import load_settings
    from rag.generators import load_generator

    os.environ.update({k: v for k, v in env.items() if k.startswith("RAG_")})
    os.environ.pop("RAG_ALLOW_PRIVATE_FETCH", None)
    settings = load_settings(model=args.model, max_tokens=32)
    config = EvalConfig(
        benchmark=str(questions),
        conditions=parse_conditions(conditions),
        out_dir=run_dir,
        n=args.n,
        seed=args.seed,
    )

    def progress(done: int, total: int, _: str) -> None:
        if done % 50 == 0 or done == total:
            print(f"evidence: {done}/{total}", file=sys.stderr, flush=True)

    generator = EvidenceOnly(load_generator(settings))
    run_eval(config, settings, generator=generator, progress=progress, warn=print)


def main(argv: list[str] | None = None, *, run: Callable[..., None] = rag) -> int:
    """`run(*args, env=...)` runs one `rag` command (tests run the CLI in process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, "runs/nq-offline-web")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--wiki-limit", type=int, default=None, help="use only the first N leads")
    parser.add_argument(
        "--conditions",
        default=",".join(CONDITIONS) + ",index:{index}",
        help="the conditions, {index} standing for index:NAME (default: %(default)s)",
    )
    parser.add_argument(
        "--delay",
        default="0.1,0.6",
        help="LOW,HIGH: seconds each page waits before it is sent, fixed per page (a web "
        "server's and the network's time); default %(default)s",
    )
    parser.add_argument("--skip-index", action="store_true", help="reuse the existing index")
    parser.add_argument(
        "--evidence-only",
        action="store_true",
        help="no answers: the model's tokenizer and context only, for hit@k of what it would "
        "read, prompt tokens and retrieval seconds of many questions fast (into OUT/evidence)",
    )
    args = parser.parse_args(argv)
    for path in (args.nq_dev, args.oracle, args.wiki):
        if not path.is_file():
            parser.error(f"no file at {path}; pass --nq-dev/--oracle/--wiki (see the README)")
    try:
        low, high = (float(x) for x in args.delay.split(","))
    except ValueError:
        parser.error(f"--delay takes LOW,HIGH in seconds, got {args.delay!r}")

    work = args.out / "data"
    corpus = work / "corpus" / "nq-wiki-corpus.jsonl"
    covered = build_corpus(args.oracle, args.wiki, corpus, wiki_limit=args.wiki_limit)
    questions = work / "nq-open-dev-questions.jsonl"
    write_questions(args.nq_dev, questions, covered, all_questions=False)
    conditions = args.conditions.replace("{index}", args.index_name)
    if "index:" in conditions and not args.skip_index:
        run("index", str(corpus), "--name", args.index_name)
    pages = read_pages(corpus)
    index = SearchIndex(pages)
    print(f"web: {len(pages)} pages", file=sys.stderr)
    run_dir = args.out / ("evidence" if args.evidence_only else "run")
    with serve_web(index, delay=(low, high)) as (url, state):
        print(f"web: serving {url} (SearxNG JSON at {url}/search)", file=sys.stderr)
        if args.evidence_only:
            evidence_only(questions, conditions, args, run_dir, web_env(url))
        else:
            run(
                "eval", "run",
                "--benchmark", str(questions),
                "--conditions", conditions,
                "--n", str(args.n),
                "--seed", str(args.seed),
                "--model", args.model,
                "--out", str(run_dir),
                env=web_env(url),
            )  # fmt: skip
        print(f"web: {state.searches} searches, {state.page_requests} pages", file=sys.stderr)
    print(summary(run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
