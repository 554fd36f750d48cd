"""Models on ONNX Runtime: a model's cached export, made once through torch when there is
none, and an ONNX session over it. The embedder and the cross-encoder (rag.evidence)
both load this way, so a query never imports torch."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import Any

from indexers.model_files import model_source
from rag.core.errors import ModelUnavailable

log = logging.getLogger(__name__)


def load_onnx(
    name: str,
    make: Callable[[Any], Any],
    reference: Callable[[], tuple[Any, str]],
    cross: bool = False,
) -> Any:
    """`make(export)` of `name`'s cached ONNX export, exporting the `reference()` model
    (loaded by torch: the slow path, once per model and install) when there is none.
    ModelUnavailable when ONNX Runtime or the export cannot serve."""
    from indexers import onnx_export

    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ModelUnavailable(f"ONNX Runtime cannot load here ({exc}).") from None
    label = f"cross-encoder-{name}" if cross else name
    source = model_source(name)
    folder = onnx_export.cache_folder(label, source) if source else None
    exported = onnx_export.load_export(folder) if folder else None
    if exported is not None:
        try:
            return make(exported)
        except ModelUnavailable as exc:  # a damaged cache costs one export, not an error
            log.warning("%s. Exporting it again.", str(exc).rstrip("."))
            shutil.rmtree(exported.folder, ignore_errors=True)
    earlier = onnx_export.recent_failure(folder) if folder else None
    if folder and earlier:
        raise ModelUnavailable(
            f"{earlier.rstrip('.')} (not retried for an hour; delete "
            f"{onnx_export.failure_marker(folder)} to retry now)."
        )
    onnx_export.check_writable(onnx_export.export_root())
    model, model_id = reference()
    source = source or model_source(name)  # a hub model is on disk once it has loaded
    if source is None:
        raise ModelUnavailable(f"Cannot find the files of {name!r} to export them to ONNX.")
    folder = onnx_export.cache_folder(label, source)
    try:
        exported = onnx_export.export(model, model_id, folder, cross=cross)
    except Exception as exc:  # an architecture torch.onnx cannot trace, a full disk...
        reason = f"Cannot export {name!r} to ONNX: {type(exc).__name__}: {exc}"
        onnx_export.remember_failure(folder, reason)
        raise ModelUnavailable(reason) from None
    return make(exported)


def onnx_session(kind: Callable[..., Any], name: str, exported: Any, int8: bool) -> Any:
    """`kind(name, exported, ...)` (an ONNX graph class), its load failure as one line."""
    from rag.core.threads import session_pool_size

    try:
        return kind(name, exported, int8=int8, threads=session_pool_size())
    except Exception as exc:  # a truncated graph file, an op this ONNX Runtime lacks
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if not _tokenizer_loads(exported.tokenizer):  # the damage is there, not the graph's
            raise ModelUnavailable(
                f"Cannot read the tokenizer {exported.tokenizer}: {type(exc).__name__}: {first}."
            ) from None
        raise ModelUnavailable(
            f"ONNX Runtime cannot run {exported.graph(int8)}: {type(exc).__name__}: {first}."
        ) from None


def _tokenizer_loads(path: Any) -> bool:
    """Whether `tokenizers` reads the export's tokenizer file: asked only once a session
    failed, to name the file that is damaged."""
    try:
        from tokenizers import Tokenizer

        Tokenizer.from_file(str(path))
    except Exception:
        return False
    return True


def load_onnx_embedder(name: str, int8: bool) -> Any:
    """The model on ONNX Runtime, exported once (through torch) when no export is cached."""
    from indexers.onnx_embedder import OnnxEmbedder

    def reference() -> tuple[Any, str]:
        from indexers.st_embedder import SentenceTransformerEmbedder

        st_embedder = SentenceTransformerEmbedder(name)  # downloads it if need be
        return st_embedder.model, st_embedder.id

    return load_onnx(name, lambda e: onnx_session(OnnxEmbedder, name, e, int8), reference)
