"""manifest.json: what a run's numbers depend on, and the check that lets a run resume.

A run may only resume into a folder whose manifest pins the same benchmark file,
model file, decoding, retrieval settings, prompts and question sample, and whose
local indexes are the same generations: answers from two versions of anything the
numbers depend on are never mixed in one predictions.jsonl.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import prompts
from evals.jsonl import read_regular
from rag.core.config import Settings
from rag.core.errors import RagError, StorageError, UsageError
from rag.core.files import sha256_of, storage_error, write_atomic

if TYPE_CHECKING:
    from evals.benchmarks import Benchmark, Question
    from evals.config import EvalConfig

MANIFEST = "manifest.json"
PROMPTS = ("eval_closed_book", "eval_with_sources")
PACKAGES = (
    "pocketrag",
    "llama-cpp-python",
    "sentence-transformers",
    "faiss-cpu",
    "ddgs",
    "numpy",
    "torch",
)
#: Manifest keys that must match for a run to resume into an existing --out folder.
PINNED = (
    "benchmark_sha256",
    "model",
    "model_sha256",
    "seed",
    "n",
    "k",
    "max_tokens",
    "temperature",
    "context_cap",
    "embedder",
    "hybrid",
    "selection",
    "prompts",
    "question_ids",
)


def file_sha256(path: Path, settings: Settings) -> str:
    """SHA-256 of a (possibly multi-GB) model file, cached by path, size and mtime."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    cache = settings.cache_dir / "file-hashes" / key
    try:
        cached = cache.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        cached = ""
    if len(cached) == 64 and all(c in "0123456789abcdef" for c in cached):
        return cached  # anything else (an empty file left by a full disk) is hashed again
    try:
        with path.open("rb") as fh:
            hexdigest = sha256_of(fh)
    except OSError as exc:
        raise storage_error(path, exc, "read") from None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, hexdigest)
    except (OSError, StorageError):
        pass  # only a cache: the next run hashes the file again
    return hexdigest


def model_file(spec: str) -> Path | None:
    """The GGUF file behind a model spec, or None for a remote/registered backend."""
    from rag.core import plugins
    from rag.generators.model_files import resolve_model

    part, argument = plugins.resolve("generator", spec)
    return resolve_model(argument).locate() if part.fallback else None


def package_versions() -> dict[str, str | None]:
    import sqlite3

    # SQLite's FTS5 ranks the BM25 half of hybrid retrieval: its version is part of the result.
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def index_fingerprint(spec: str, settings: Settings, retriever: Any = None) -> dict | None:
    """Which version of an index answers an `index:NAME` source, as its store tells it
    (generation, embedder, params hash), or None when there is no such index (a stand-in
    retriever). The version the retriever opened is preferred over the live one, which a
    concurrent `rag index` may have moved on."""
    from indexers import stores

    fingerprint = getattr(retriever, "fingerprint", None)
    try:
        if callable(fingerprint):
            return fingerprint()
        return stores.open_store(spec[len("index:") :], settings).fingerprint()
    except (RagError, OSError, ValueError):
        return None


#: Fingerprint fields that must match to resume (the folder may move with RAG_HOME).
INDEX_IDENTITY = ("generation", "params_sha256", "embedder")


def build_manifest(
    config: EvalConfig,
    settings: Settings,
    bench: Benchmark,
    questions: list[Question],
    indexes: dict[str, dict | None] | None = None,
) -> dict[str, Any]:
    path = model_file(settings.model)
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "benchmark": bench.name,
        "benchmark_file": str(bench.path),
        "benchmark_sha256": bench.sha256,
        "benchmark_size": len(bench.questions),
        "model": settings.model,
        "model_file": str(path) if path else None,
        "model_sha256": file_sha256(path, settings) if path else None,
        "conditions": [c.name for c in config.conditions],
        "n": len(questions),
        "seed": config.seed,
        "k": settings.k,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "context_cap": settings.context_cap,
        "embedder": settings.embedder,
        "hybrid": settings.hybrid,
        # how evidence is chosen (a condition's own options are in its name)
        "selection": {
            "reranker": settings.reranker,
            "evidence_tokens": settings.evidence_tokens,
            "relevance_cut": settings.relevance_cut,
            "evidence_order": settings.evidence_order,
        },
        "indexes": indexes or {},
        "prompts": {name: prompts.load(name).sha256 for name in PROMPTS},
        "packages": package_versions(),
        "snapshot": str(config.snapshot) if config.snapshot else None,
        "replay": str(config.replay) if config.replay else None,
        "question_ids": [q.id for q in questions],
    }


def _generation(fingerprint: dict | None) -> str:
    if not fingerprint:
        return "no index on disk"
    sha = str(fingerprint.get("params_sha256"))[:12]
    return f"generation {fingerprint.get('generation')} (params.json sha256 {sha})"


MANIFEST_FIX = (
    "The run's settings cannot be read from it: restore the file from a copy, or start over "
    "with a new --out folder."
)
#: Keys every manifest has, and the JSON type the report and the resume check rely on.
REQUIRED: dict[str, type] = {
    "benchmark": str,
    "model": str,
    "conditions": list,
    "question_ids": list,
}
#: Optional keys with a fixed type when present.
OPTIONAL: dict[str, type] = {"indexes": dict, "prompts": dict, "packages": dict}


def manifest_problem(data: Any) -> str | None:
    """What is wrong with a parsed manifest.json, or None: checked on every read, so a damaged
    or hand-edited file is named instead of failing deep inside the report or the resume."""
    if not isinstance(data, dict):
        return "is not a JSON object"
    for key, kind in REQUIRED.items():
        if not isinstance(data.get(key), kind):
            return f"has no `{key}` ({kind.__name__})"
    for key in ("conditions", "question_ids"):
        if not all(isinstance(x, str) for x in data[key]):
            return f"has a `{key}` list that is not all strings"
    for key, kind in OPTIONAL.items():
        if data.get(key) is not None and not isinstance(data[key], kind):
            return f"has a `{key}` value that is not a {kind.__name__}"
    if not all(isinstance(v, dict) or v is None for v in (data.get("indexes") or {}).values()):
        return "has an `indexes` entry that is not an object"
    if not all(isinstance(v, str) for v in (data.get("prompts") or {}).values()):
        return "has a `prompts` entry that is not a string"
    return None


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of the run in `out_dir`, checked; None when there is none."""
    path = out_dir / MANIFEST
    try:
        raw = read_regular(path, MANIFEST_FIX)  # a FIFO would block for ever
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise storage_error(path, exc, "read") from None
    if not raw.strip():
        raise UsageError(f"{path} is empty (a write cut short by an old version?). {MANIFEST_FIX}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not UTF-8 text (byte {exc.start + 1}). {MANIFEST_FIX}"
        ) from None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path} is not JSON ({exc.msg} at line {exc.lineno}). {MANIFEST_FIX}"
        ) from None
    except RecursionError:
        raise UsageError(
            f"{path} is not JSON this reader accepts (nested too deeply). {MANIFEST_FIX}"
        ) from None
    problem = manifest_problem(data)
    if problem:
        raise UsageError(f"{path} {problem}. {MANIFEST_FIX}")
    return data


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Replaced atomically: a full disk leaves the old manifest (or none), never half of one."""
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def reconcile_manifest(out_dir: Path, fresh: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest, or check that an existing run in `out_dir` can be resumed."""
    old = read_manifest(out_dir)
    if old is None:
        write_manifest(out_dir, fresh)
        return fresh
    differ = [key for key in PINNED if old.get(key) != fresh.get(key)]
    if differ:
        raise UsageError(
            f"{out_dir} holds a run with different settings ({', '.join(differ)} differ), so "
            "its answers cannot be mixed with these. Resume with the same options, or use a "
            "new --out folder."
        )
    old_indexes = old.get("indexes") or {}
    for spec, now in (fresh.get("indexes") or {}).items():
        then = old_indexes.get(spec)
        if spec not in old_indexes or then == now:
            continue
        if then and now and all(then.get(f) == now.get(f) for f in INDEX_IDENTITY):
            continue
        raise UsageError(
            f"{spec} changed since the run in {out_dir} began: it answered from "
            f"{_generation(then)}, the index is now {_generation(now)}. Answers from two "
            "versions of an index cannot be mixed, and a rebuilt index is a new version "
            "even from the same files. Run again with a new --out folder, so that every "
            "answer of the run comes from the current index."
        )
    merged = dict(old)
    merged["indexes"] = {**(fresh.get("indexes") or {}), **old_indexes}
    merged["conditions"] = old["conditions"] + [
        c for c in fresh["conditions"] if c not in old["conditions"]
    ]
    merged["resumed"] = fresh["created"]
    write_manifest(out_dir, merged)
    return merged
