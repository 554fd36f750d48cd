"""Export a sentence-transformers model (an embedder or a cross-encoder) to ONNX once, so
later processes embed and rerank without torch.

Importing torch and transformers costs seconds on every cold `rag search`; ONNX Runtime plus
`tokenizers` load in a fraction of that. The export runs the installed model through
`torch.onnx` once (pooling and normalisation inside the graph, so the runtime only
tokenises and runs it), quantises a int8 copy, and caches both under
`$RAG_HOME/cache/onnx/`, keyed by where the weights came from and when they changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.errors import ModelUnavailable, RagError
from rag.core.files import read_small, read_small_text, write_atomic

# Bump when the exported graph or the files beside it change meaning.
EXPORT_FORMAT = 2  # 2: the graphs carry their position table's size (POSITIONS_KEY)
FLOAT_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "export.json"


@dataclass(frozen=True)
class ExportedModel:
    """A cached export: the graphs, the tokenizer, and what the runtime must know."""

    folder: Path
    model_id: str
    dim: int
    max_tokens: int
    pad_id: int
    inputs: tuple[str, ...]

    def graph(self, int8: bool) -> Path:
        return self.folder / (INT8_FILE if int8 else FLOAT_FILE)

    @property
    def tokenizer(self) -> Path:
        return self.folder / TOKENIZER_FILE


def export_root() -> Path:
    """`$RAG_ONNX_CACHE`, else `$RAG_HOME/cache/onnx` (tests share one across homes)."""
    from rag.core.config import expand_path, rag_home

    override = os.environ.get("RAG_ONNX_CACHE")
    return expand_path(override, "RAG_ONNX_CACHE") if override else rag_home() / "cache" / "onnx"


def hub_snapshot(name: str) -> Path | None:
    """The Hugging Face cache folder of hub model `name`, found without importing the hub client.

    sentence-transformers reads a bare name as `sentence-transformers/NAME`.
    """
    repo = name if "/" in name else f"sentence-transformers/{name}"
    cache = os.environ.get("HF_HUB_CACHE")
    if not cache:
        hf_home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
        )
        cache = os.path.join(hf_home, "hub")
    repo_dir = Path(cache) / f"models--{repo.replace('/', '--')}"
    try:
        commit = read_small_text(repo_dir / "refs" / "main", MAX_META_BYTES).strip()
    except (OSError, ValueError):  # none, or a FIFO or garbage in its place
        return None
    snapshot = repo_dir / "snapshots" / commit
    return snapshot if (snapshot / "config.json").is_file() else None


def fingerprint(source: Path) -> str:
    """Changes whenever the weights at `source` do (a reinstall, an update, another commit)."""
    parts = [str(source.resolve()), f"format {EXPORT_FORMAT}"]
    for child in sorted(source.rglob("*")):
        if child.is_file() and child.suffix in {".json", ".safetensors", ".bin", ".txt"}:
            stat = child.stat()
            parts.append(f"{child.relative_to(source)} {stat.st_size} {stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_folder(name: str, source: Path) -> Path:
    """`<readable tail of the name>-<name hash>-<fingerprint>`: two long model paths that
    end alike still get folders of their own (pruning one must not remove the other)."""
    tail = "".join(c if c.isalnum() or c in "_." else "-" for c in name)[-40:]
    slug = f"{tail}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return export_root() / f"{slug}-{fingerprint(source)}"


#: A failed export is not retried for this long: each try loads the model with torch
#: (seconds), and a cache that cannot be written would make every query pay that again.
RETRY_AFTER_S = 3600


def failure_marker(folder: Path) -> Path:
    return folder.parent / f".failed-{folder.name}"


def recent_failure(folder: Path) -> str | None:
    """Why exporting into `folder` failed within the last RETRY_AFTER_S, if it did. Only a
    small regular file is such a note (`read_small`): a FIFO in its place would block the
    query forever; it, or any other file that is no note, is no failure."""
    marker = failure_marker(folder)
    try:
        if time.time() - marker.stat().st_mtime >= RETRY_AFTER_S:
            return None
        text = read_small_text(marker, MAX_META_BYTES)
    except (OSError, ValueError):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "an earlier export failed"


def remember_failure(folder: Path, reason: str) -> None:
    with contextlib.suppress(OSError, RagError):  # a cache that cannot be written cannot
        folder.parent.mkdir(parents=True, exist_ok=True)  # keep this
        write_atomic(failure_marker(folder), reason)  # replaces whatever is there


def check_writable(root: Path) -> None:
    """Fail before loading the model with torch (seconds) when the export could not be
    written anyway."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
        probe.rmdir()
    except OSError as exc:
        raise ModelUnavailable(
            f"Cannot write the ONNX export cache {root} ({exc.strerror or exc})."
        ) from None


#: What the runtime feeds a graph; an export names the ones its graph takes.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: Graph metadata (ONNX `metadata_props`) holding how many positions the model's table has:
#: the one fact about the graph that export.json's `max_tokens` must fit and that ONNX
#: Runtime does not expose. Absent for a model without a table (rotary positions).
POSITIONS_KEY = "pocketrag.max_positions"
#: Loose bounds for a model without a position table, and for every value before the graph
#: is opened: what no real embedder or cross-encoder exceeds.
MAX_TOKENS_LIMIT = 1 << 16
MAX_DIM = 1 << 16
MAX_VOCAB = 1 << 24
MAX_META_BYTES = 64 * 1024


def load_export(folder: Path) -> ExportedModel | None:
    """The export in `folder` if it is complete and export.json holds sane values, else None:
    a crash mid-export leaves none, and a damaged or edited export.json is exported again.

    Each value is checked for its type and range here; what needs the graph or the
    tokenizer (input names, pad id within the vocabulary, max_tokens within the position
    table) is checked when the runtime opens them (`indexers.onnx_embedder`).
    """
    try:
        meta = json.loads(_read_meta(folder / META_FILE), parse_constant=_no_constant)
        if not isinstance(meta, dict) or _exact_int(meta.get("format")) != EXPORT_FORMAT:
            return None
        inputs = meta["inputs"]
        if (
            not isinstance(inputs, list)
            or not {"input_ids", "attention_mask"} <= set(inputs) <= set(INPUT_NAMES)
            or len(set(inputs)) != len(inputs)
        ):
            return None
        model_id = meta["model_id"]
        if not isinstance(model_id, str) or not model_id:
            return None
        exported = ExportedModel(
            folder=folder,
            model_id=model_id,
            dim=_bounded(meta["dim"], 1, MAX_DIM),
            # Below a few tokens, `tokenizers` stops truncating at all (the special tokens
            # do not fit): a long text would run past the position table.
            max_tokens=_bounded(meta["max_tokens"], 16, MAX_TOKENS_LIMIT),
            pad_id=_bounded(meta["pad_id"], 0, MAX_VOCAB),
            inputs=tuple(inputs),
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    files = (exported.graph(False), exported.graph(True), exported.tokenizer)
    return exported if all(f.is_file() for f in files) else None


def _read_meta(path: Path) -> bytes:
    """export.json's bytes, if it is a small regular file: a FIFO in its place would block
    a plain read forever, a device never end (`read_small` raises ValueError for both)."""
    return read_small(path, MAX_META_BYTES)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")  # NaN, Infinity: JSON allows neither


def _exact_int(value: Any) -> int | None:
    """`value` if it is an int (not a bool, not 1e9 or 256.0), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bounded(value: Any, low: int, high: int) -> int:
    number = _exact_int(value)
    if number is None or not low <= number <= high:
        raise ValueError(f"{value!r} is not a whole number from {low} to {high}")
    return number


def graph_positions(custom: dict[str, str]) -> int:
    """The most tokens a graph can read, from its metadata map (`custom`): its stamped
    position table, else MAX_TOKENS_LIMIT for a model without one. ValueError when the
    stamp is not a number in range (a damaged graph)."""
    raw = custom.get(POSITIONS_KEY)
    if raw is None:
        return MAX_TOKENS_LIMIT
    if not raw.isdecimal() or len(raw) > 6:
        raise ValueError(f"the graph's {POSITIONS_KEY} is {raw!r}")
    return _bounded(int(raw), 1, MAX_TOKENS_LIMIT)


def export(model: Any, model_id: str, folder: Path, cross: bool = False) -> ExportedModel:
    """Export the loaded SentenceTransformer `model` (a CrossEncoder if `cross`: its
    scores, after its activation) into `folder`, atomically.

    Two processes exporting at once both succeed: each writes its own temporary folder and
    the first rename wins.
    """
    import torch

    tokenizer = model.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelUnavailable(f"{model_id} has no fast tokenizer, so it cannot run on ONNX.")
    inputs: tuple[str, ...] = ("input_ids", "attention_mask")
    if "token_type_ids" in tokenizer.model_input_names:
        inputs += ("token_type_ids",)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(folder.parent)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        graph = (_CrossGraph if cross else _SentenceGraph)(model, inputs).eval()
        example = tuple(
            (torch.zeros if n == "token_type_ids" else torch.ones)(2, 8, dtype=torch.long)
            for n in inputs
        )
        axes = {n: {0: "batch", 1: "tokens"} for n in inputs}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on branches fixed for any input
            torch.onnx.export(
                graph,
                example,
                str(work / FLOAT_FILE),
                input_names=list(inputs),
                output_names=["output"],
                dynamic_axes={**axes, "output": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        table = _position_table(model)
        if table is not None:  # about a second; the int8 copy keeps it (quantise copies it)
            _stamp(work / FLOAT_FILE, {POSITIONS_KEY: str(table)})
        _quantise(work / FLOAT_FILE, work / INT8_FILE)
        backend.save(str(work / TOKENIZER_FILE))
        if cross:
            length = getattr(model, "max_seq_length", None) or getattr(model, "max_length", 512)
            dim, max_tokens = int(model.num_labels), int(length or 512)
        else:
            get_dim = (
                getattr(model, "get_embedding_dimension", None)
                or model.get_sentence_embedding_dimension
            )
            dim, max_tokens = int(get_dim()), int(model.max_seq_length or 256)
        max_tokens = min(max_tokens, table or max_tokens)  # more would index past the table
        meta = {
            "format": EXPORT_FORMAT,
            "model_id": model_id,
            "dim": dim,
            "max_tokens": max_tokens,
            "pad_id": int(tokenizer.pad_token_id or 0),
            "inputs": list(inputs),
            "torch": torch.__version__,
        }
        (work / META_FILE).write_text(json.dumps(meta, indent=1))
        work.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users
        try:
            os.replace(work, folder)
        except OSError:  # another process finished first, or a damaged leftover is in the way
            if load_export(folder) is None:
                _remove(folder)
                os.replace(work, folder)
        _prune_older(folder)
        failure_marker(folder).unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    exported = load_export(folder)
    if exported is None:  # pragma: no cover - we just wrote it
        raise ModelUnavailable(f"The ONNX export of {model_id} in {folder} is incomplete.")
    return exported


def _position_table(model: Any) -> int | None:
    """How many tokens the model's position table holds (RoBERTa's first padding_idx + 1
    rows are not positions), or None for a model without one (rotary or relative)."""
    import torch

    root = model if isinstance(model, torch.nn.Module) else getattr(model, "model", None)
    if not isinstance(root, torch.nn.Module):
        return None
    for name, module in root.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0
            return module.num_embeddings - offset
    return None


def _stamp(graph: Path, props: dict[str, str]) -> None:
    """Add `props` to the graph's metadata (read back by ONNX Runtime's `get_modelmeta`);
    weights kept in files beside a large graph are left where they are."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    kept = {p.key: p.value for p in model.metadata_props if p.key not in props}
    onnx.helper.set_model_props(model, {**kept, **props})
    onnx.save(model, str(graph))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_stale_work(root: Path) -> None:
    """Temporary folders of exports killed part-way (kill -9, a power cut): about 90 MB
    each, and nothing else would ever remove them."""
    for work in root.glob(".export-*"):
        with contextlib.suppress(OSError):
            if time.time() - work.stat().st_mtime > RETRY_AFTER_S:
                shutil.rmtree(work, ignore_errors=True)


def _prune_older(folder: Path) -> None:
    """Exports of an earlier install of the same model are never read again."""
    slug = folder.name.rsplit("-", 1)[0]
    for sibling in folder.parent.glob(f"{slug}-*"):
        if sibling != folder and sibling.name.rsplit("-", 1)[0] == slug:
            shutil.rmtree(sibling, ignore_errors=True)


def _quantise(source: Path, target: Path) -> None:
    """Int8 weights for the matrix products only, one scale per output channel.

    Quantising every op (the library's default) moved MiniLM's vectors to a mean cosine of
    0.959 against float; MatMul-only per-channel keeps 0.994 and most of the speed.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing" is advice, not news
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        root.setLevel(level)


def _SentenceGraph(model: Any, inputs: tuple[str, ...]) -> Any:
    """The whole sentence-transformers pipeline (transformer, pooling, any dense layers) as
    one module of positional tensors, then L2 normalisation, as `embed` asks of it."""
    import torch

    class SentenceGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            features = dict(zip(inputs, tensors, strict=True))
            vectors = self.model(features)["sentence_embedding"]
            return torch.nn.functional.normalize(vectors, p=2.0, dim=1)

    return SentenceGraph()


def _CrossGraph(model: Any, inputs: tuple[str, ...]) -> Any:
    """A CrossEncoder's scores for (question, text) pairs, after the activation its
    `predict` applies (a sigmoid for one label), so ONNX scores equal torch's."""
    import torch

    activation = getattr(model, "activation_fn", None) or torch.nn.Identity()

    class CrossGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.activation = activation

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            features = dict(zip(inputs, tensors, strict=True))
            return self.activation(self.model(features)["scores"])

    return CrossGraph()
