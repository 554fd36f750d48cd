"""Model runtimes behind one Generator protocol; `load_generator` picks one for a model spec."""

from __future__ import annotations

from rag.config import Settings
from rag.generators.base import REGISTRY, Generation, Generator, register_generator

__all__ = ["Generation", "Generator", "load_generator", "register_generator"]

_LOADED: dict[tuple, Generator] = {}


def _openai(rest: str, settings: Settings) -> Generator:
    from rag.generators.openai_http import OpenAIGenerator

    return OpenAIGenerator.from_spec(rest, settings)


register_generator("openai", _openai)


def load_generator(settings: Settings, model: str | None = None) -> Generator:
    """The generator for `model` (default: `settings.model`), loaded once per process."""
    spec = (model or settings.model).strip()
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in REGISTRY:
        return REGISTRY[prefix](rest, settings)
    key = (spec, settings.context_cap, settings.threads, settings.seed, settings.weight_repack)
    if key not in _LOADED:
        from rag.generators.llama import LlamaGenerator
        from rag.models import resolve_model

        path = resolve_model(spec).fetch()
        _LOADED[key] = LlamaGenerator(
            path,
            model_name=spec,
            context_cap=settings.context_cap,
            threads=settings.threads,
            seed=settings.seed,
            weight_repack=settings.weight_repack,
        )
    return _LOADED[key]
