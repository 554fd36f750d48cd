"""Offline reproduction: NQ-open, closed-book vs a local Wikipedia index, with SmolLM2.

Runs on a machine with no network. It takes the three data files as paths (the
defaults point at `../shared/data/` as laid out for pocketrag's developers, but
nothing else depends on that folder):

1. builds a corpus JSONL (`title`, `text`): the gold 100-word Wikipedia passage of
   every NQ-open question in the oracle file, plus the lead sections of ~10,000
   vital articles as distractors (about 12,700 passages);
2. `rag index`es it as NAME (dense MiniLM + BM25 hybrid);
3. writes the questions with their gold passages: NQ-open dev questions whose gold
   passage is in the corpus (`--all-questions` keeps every dev question, so hit@k also
   shows missing evidence, and leaves out the oracle condition);
4. `rag eval run --conditions closed,oracle,index:NAME,index:NAME[k=5,rerank=none,...]` on
   a seeded sample of `--n` questions (`oracle`: each question's own gold passage, the
   reader's ceiling; the last: five whole passages, the selection before reranking);
5. `rag eval report`.

    python -m evals.recipes.offline_nq --n 300 --out runs/nq-offline

Each step is the public CLI, so the recipe doubles as an end-to-end check.
Re-running resumes: the index is incremental and the eval run resumes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
#: An evidence budget no context reaches: whole passages, as many as fit.
WHOLE = 100_000


def _read_jsonl(path: Path) -> Iterator[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def build_corpus(
    oracle: Path, wiki: Path, target: Path, *, wiki_limit: int | None
) -> dict[str, list[dict[str, str]]]:
    """Write the corpus JSONL; return each question whose gold passage it holds, with its
    gold passages (title, text)."""
    seen: set[tuple[str, str]] = set()
    covered: dict[str, list[dict[str, str]]] = {}
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with target.open("w", encoding="utf-8") as out:
        for record in _read_jsonl(oracle):
            for ctx in record.get("ctxs", []):
                if not ctx.get("isgold"):
                    continue
                covered.setdefault(record["question"], []).append(
                    {"title": ctx["title"], "text": ctx["text"]}
                )
                key = (ctx["title"], ctx["text"])
                if key in seen:
                    continue
                seen.add(key)
                out.write(json.dumps({"title": ctx["title"], "text": ctx["text"]}) + "\n")
                rows += 1
        for i, article in enumerate(_read_jsonl(wiki)):
            if wiki_limit is not None and i >= wiki_limit:
                break
            key = (article["title"], article["text"])
            if key in seen or not article.get("text", "").strip():
                continue
            seen.add(key)
            out.write(json.dumps({"title": article["title"], "text": article["text"]}) + "\n")
            rows += 1
    print(f"corpus: {rows} passages -> {target}", file=sys.stderr)
    return covered


def write_questions(
    dev: Path, target: Path, covered: dict[str, list[dict[str, str]]], *, all_questions: bool
) -> int:
    """NQ-open dev questions with their gold passages (for the `oracle` condition): only
    those with an indexed gold passage, unless `all_questions`."""
    count = 0
    with target.open("w", encoding="utf-8") as out:
        for record in _read_jsonl(dev):
            gold = covered.get(record["question"])
            if gold is None and not all_questions:
                continue
            row = {"question": record["question"], "answer": record["answer"]}
            if gold:
                row["gold_passages"] = gold
            out.write(json.dumps(row) + "\n")
            count += 1
    print(f"questions: {count} -> {target}", file=sys.stderr)
    return count


def rag(*args: str) -> None:
    command = [sys.executable, "-m", "rag.cli.app", *args]
    print("$ rag " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)


def add_data_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """The NQ files, the run folder, the index and the sample: the offline recipes' own."""
    parser.add_argument("--nq-dev", type=Path, default=DEFAULT_DATA / "nq-open-dev.jsonl")
    parser.add_argument("--oracle", type=Path, default=DEFAULT_DATA / "nq-open-oracle.jsonl.gz")
    parser.add_argument("--wiki", type=Path, default=DEFAULT_DATA / "wiki-vital-en.jsonl.gz")
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--index-name", default="nq-wiki")
    parser.add_argument("--n", type=int, default=300, help="questions to sample")
    parser.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, "runs/nq-offline")
    parser.add_argument(
        "--k", type=int, default=None, help="most sources in the prompt (default: the setting)"
    )
    parser.add_argument(
        "--compare",
        default=f"k=5,rerank=none,tokens={WHOLE}",
        help="options of a second index condition to compare with the default; the default "
        "is the selection before reranking existed (five whole passages); '' for none",
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--wiki-limit", type=int, default=None, help="use only the first N leads")
    parser.add_argument(
        "--all-questions",
        action="store_true",
        help="ask every dev question, not only those with an indexed gold passage",
    )
    parser.add_argument("--skip-index", action="store_true", help="reuse the existing index")
    args = parser.parse_args(argv)
    for path in (args.nq_dev, args.oracle, args.wiki):
        if not path.is_file():
            parser.error(f"no file at {path}; pass --nq-dev/--oracle/--wiki (see the README)")

    work = args.out / "data"
    corpus = work / "corpus" / "nq-wiki-corpus.jsonl"
    covered = build_corpus(args.oracle, args.wiki, corpus, wiki_limit=args.wiki_limit)
    questions = work / "nq-open-dev-questions.jsonl"
    write_questions(args.nq_dev, questions, covered, all_questions=args.all_questions)
    if not args.skip_index:
        rag("index", str(corpus), "--name", args.index_name)
    run_dir = args.out / "run"
    index = f"index:{args.index_name}"
    # the oracle (each question's gold passage) needs every question to have one
    conditions = ["closed", *([] if args.all_questions else ["oracle"]), index]
    if args.compare:
        conditions.append(f"{index}[{args.compare}]")
    rag(
        "eval",
        "run",
        "--benchmark",
        str(questions),
        "--conditions",
        ",".join(conditions),
        "--n",
        str(args.n),
        "--seed",
        str(args.seed),
        *(["--k", str(args.k)] if args.k else []),
        "--model",
        args.model,
        "--out",
        str(run_dir),
        "--snapshot",
        str(args.out / "retrieval-snapshot.jsonl"),
    )
    rag("eval", "report", str(run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
