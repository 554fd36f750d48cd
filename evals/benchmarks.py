"""Benchmark loaders: a local file first, the official file when online, a clear error offline.

Every loader yields `Question(id, question, answers)`; `answers` is every gold
string (TriviaQA aliases, PopQA possible answers), since scoring takes the best
match over them. A known benchmark name (`nq_open`, `triviaqa`, `popqa`,
`simpleqa`) is looked for in `<cache>/benchmarks/`, then downloaded there;
anything else is a path whose format is sniffed from its name and columns.

Each format's rows and the question in a row are `evals.benchmark_rows`'s.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evals.benchmark_rows import Question, questions_from, read_rows
from rag.core.config import Settings
from rag.core.errors import RagError, UsageError
from rag.core.files import storage_error


@dataclass
class Benchmark:
    """Questions plus where they came from; `sha256` of the file goes into the manifest."""

    name: str
    path: Path
    questions: list[Question]
    sha256: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    #: rows without a question or a gold answer, left out (the run says how many)
    skipped: int = 0


@dataclass(frozen=True)
class KnownBenchmark:
    """An official file: where to get it and the name it is cached under."""

    name: str
    filename: str
    url: str | None = None
    hf_dataset: tuple[str, str] | None = None  # (repo_id, file in repo)
    hint: str = ""


KNOWN: dict[str, KnownBenchmark] = {
    "nq_open": KnownBenchmark(
        "nq_open",
        "NQ-open.dev.jsonl",
        url="https://raw.githubusercontent.com/google-research-datasets/natural-questions/"
        "master/nq_open/NQ-open.dev.jsonl",
        hint="NQ-open dev JSONL with `question` and `answer` (list)",
    ),
    "triviaqa": KnownBenchmark(
        "triviaqa",
        "triviaqa-rc.nocontext-validation.parquet",
        hf_dataset=("mandarjoshi/trivia_qa", "rc.nocontext/validation-00000-of-00001.parquet"),
        hint="TriviaQA rc.nocontext validation (parquet or JSONL rows, or the official "
        "JSON with `Data`)",
    ),
    "popqa": KnownBenchmark(
        "popqa",
        "popQA.tsv",
        url="https://raw.githubusercontent.com/AlexTMallen/adaptive-retrieval/main/data/popQA.tsv",
        hint="PopQA TSV with `question` and `possible_answers`",
    ),
    "simpleqa": KnownBenchmark(
        "simpleqa",
        "simple_qa_test_set.csv",
        url="https://openaipublic.blob.core.windows.net/simple-evals/simple_qa_test_set.csv",
        hint="SimpleQA CSV with `problem` and `answer`",
    ),
}
ALIASES = {"nq": "nq_open", "nq-open": "nq_open", "trivia_qa": "triviaqa", "simple_qa": "simpleqa"}


def load_benchmark(name_or_file: str, settings: Settings) -> Benchmark:
    """A benchmark by known name or by path. Raises UsageError when it cannot be had."""
    key = ALIASES.get(name_or_file.lower(), name_or_file.lower())
    path = Path(name_or_file).expanduser()
    if path.is_file():
        return _load_path(path, name=path.name, kind=None)
    if key in KNOWN:
        known = KNOWN[key]
        return _load_path(fetch_known(known, settings), name=known.name, kind=known.name)
    if path.is_dir():
        raise UsageError(f"--benchmark {path} is a folder. Give the benchmark file in it.")
    if path.suffix or "/" in name_or_file:
        raise UsageError(f"No benchmark file at {path}. Check the path given to --benchmark.")
    raise UsageError(
        f"Unknown benchmark {name_or_file!r}: use one of {', '.join(KNOWN)} or a path to a "
        "JSONL/CSV/TSV/JSON/parquet file with questions and answers."
    )


def cached_path(known: KnownBenchmark, settings: Settings) -> Path:
    return settings.cache_dir / "benchmarks" / known.filename


def fetch_known(known: KnownBenchmark, settings: Settings) -> Path:
    """The cached official file, downloading it when the network allows."""
    target = cached_path(known, settings)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(target.parent, exc, "create the folder") from None
    try:
        if known.hf_dataset:
            _download_hf(known.hf_dataset, target)
        elif known.url:
            _download_url(known.url, target)
    except RagError:
        raise  # writing the cache failed (a full disk): not a download problem
    except Exception as exc:  # offline, DNS, HTTP errors: all mean "provide the file yourself"
        cause = " ".join(str(exc).split())[:200] or type(exc).__name__
        source = known.url or f"the Hugging Face dataset {known.hf_dataset[0]}"  # type: ignore[index]
        raise UsageError(
            f"Benchmark {known.name!r} is not cached and could not be downloaded from {source} "
            f"({type(exc).__name__}: {cause}). Provide the file yourself: put {known.hint} at "
            f"{target}, or pass its path: --benchmark PATH."
        ) from None
    return target


def _save(target: Path, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to `target` whole or not at all: into a temporary file next to it,
    renamed over it once complete, so an interrupted download or a full disk never leaves a
    truncated file in the cache that later runs would read as the benchmark. A local write
    failure is a StorageError; a failure of `chunks` (the network) propagates as it is."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    handle = None
    try:
        try:
            handle = partial.open("wb")
        except OSError as exc:
            raise storage_error(target, exc) from None
        with handle:
            for chunk in chunks:
                try:
                    handle.write(chunk)
                except OSError as exc:
                    raise storage_error(target, exc) from None
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                raise storage_error(target, exc) from None
        try:
            os.replace(partial, target)
        except OSError as exc:
            raise storage_error(target, exc) from None
    finally:
        partial.unlink(missing_ok=True)


def _download_url(url: str, target: Path) -> None:
    import httpx

    with httpx.stream("GET", url, follow_redirects=True, timeout=30.0) as response:
        response.raise_for_status()
        _save(target, response.iter_bytes())


def _download_hf(dataset: tuple[str, str], target: Path) -> None:
    from huggingface_hub import hf_hub_download

    found = hf_hub_download(dataset[0], dataset[1], repo_type="dataset")

    def blocks() -> Iterator[bytes]:
        with open(found, "rb") as fh:
            while block := fh.read(1 << 20):
                yield block

    _save(target, blocks())


# --- formats -------------------------------------------------------------------------------


def _load_path(path: Path, *, name: str, kind: str | None) -> Benchmark:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise storage_error(path, exc, "read") from None
    digest = hashlib.sha256(data).hexdigest()
    lower = path.name.lower().removesuffix(".gz")
    if not lower.endswith((".parquet", ".jsonl", ".ndjson", ".json", ".tsv", ".csv")):
        raise UsageError(
            f"Cannot tell the format of {path}: name it .jsonl, .json, .csv, .tsv or .parquet."
        )
    if path.name.lower().endswith(".gz"):
        try:
            data = _gunzip(data, path)
        except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated, corrupt
            raise UsageError(
                f"{path} is not a readable gzip file ({type(exc).__name__}: {exc or 'cut short'}"
                "). Download it again, or pass the uncompressed file."
            ) from None
    rows = read_rows(data, path, lower)
    questions = questions_from(rows, path)
    if not questions:
        raise UsageError(
            f"{path} has no usable questions: each row needs a question (`question`, `problem` "
            "or `Question`) and gold answers (`answers`, `answer`, `possible_answers` or a "
            "TriviaQA `Answer`/`answer` object with aliases)."
        )
    _dedupe_ids(questions)
    return Benchmark(
        name=kind or name,
        path=path,
        questions=questions,
        sha256=digest,
        skipped=len(rows) - len(questions),
    )


#: The most a gzipped benchmark may hold once decompressed; the official files are a few MB.
#: A gzip bomb (1 MB of zeros is 1 GB inflated) is refused instead of filling the memory.
MAX_DECOMPRESSED = 512 * 1024 * 1024


def _gunzip(data: bytes, path: Path) -> bytes:
    """`gzip.decompress`, refusing more than MAX_DECOMPRESSED bytes of output."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
        out = unzipped.read(MAX_DECOMPRESSED + 1)
    if len(out) > MAX_DECOMPRESSED:
        raise UsageError(
            f"{path} decompresses to more than {MAX_DECOMPRESSED // (1024 * 1024)} MiB: not a "
            "benchmark file pocketrag reads. Check the file (a gzip bomb?), or pass it "
            "uncompressed."
        )
    return out


def _dedupe_ids(questions: list[Question]) -> None:
    """Give repeated ids a `#N` suffix no other row uses: predictions are keyed by id, so
    two questions sharing one would count as one (and a resume would skip the second)."""
    taken = {q.id for q in questions}
    seen: set[str] = set()
    for i, q in enumerate(questions):
        if q.id not in seen:
            seen.add(q.id)
            continue
        n = 1
        while f"{q.id}#{n}" in taken:
            n += 1
        new_id = f"{q.id}#{n}"
        taken.add(new_id)
        seen.add(new_id)
        questions[i] = replace(q, id=new_id)


def sample_questions(questions: Sequence[Question], n: int | None, seed: int) -> list[Question]:
    """`n` questions drawn with `random.Random(seed)`, kept in file order; None or n >= all: all.

    The same file, n and seed always give the same questions, on any machine.
    """
    if n is None or n >= len(questions):
        return list(questions)
    if n < 1:
        raise UsageError("--n must be at least 1.")
    picked = sorted(random.Random(seed).sample(range(len(questions)), n))
    return [questions[i] for i in picked]
