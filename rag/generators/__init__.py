"""Model runtimes behind one Generator protocol; `load_generator` picks one for a model spec."""

from __future__ import annotations

import sys
import threading

from rag.config import Settings
from rag.generators.base import REGISTRY, Generation, Generator, register_generator
from rag.plugins import create

__all__ = ["Generation", "Generator", "load_generator", "prefetch", "register_generator"]

_LOADED: dict[tuple, Generator] = {}
# Held while a model loads, so a prefetch and the command that wants the model load it once.
_LOADING = threading.Lock()
PREFETCH_SWITCH_S = 0.0002


def load_generator(settings: Settings, model: str | None = None) -> Generator:
    """The generator for `model` (default: `settings.model`), loaded once per process."""
    spec = (model or settings.model).strip()
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in REGISTRY:  # a spec without `:` never loads the plugins
        return create("generator", prefix, rest, settings, settings=settings)
    key = (spec, settings.context_cap, settings.threads, settings.seed, settings.weight_repack)
    with _LOADING:
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


def prefetch(model: str | None) -> threading.Thread | None:
    """Start loading the model a command is about to ask for, on a thread, if its file is
    already here (a prefetch never downloads). llama.cpp loads in C without holding the
    GIL, so the load overlaps with importing and parsing the command line; when the
    command calls `load_generator` with the same settings it waits for this load instead
    of starting another. Any failure is left for that call to meet and report.

    Settings and the model file are resolved before the thread starts: Python work on the
    thread would only compete for the GIL with the imports it is meant to overlap. The
    thread is not a daemon: a process that exits early (a usage error) lets the load
    finish rather than tear down the interpreter under a native call.
    """
    try:
        from rag.config import load_settings
        from rag.models import resolve_model

        settings = load_settings(model=model)
        prefix, sep, _ = settings.model.partition(":")
        if (sep and prefix in REGISTRY) or resolve_model(settings.model).locate() is None:
            return None
        import rag.generators.llama  # noqa: F401 - on this thread, while nothing else runs
    except Exception:  # the command's own settings and load report any problem properly
        return None

    def load() -> None:
        interval = sys.getswitchinterval()
        # llama.cpp logs each loading step through a Python callback, which needs the GIL:
        # at the default 5 ms hand-over, every log line would wait for the main thread.
        sys.setswitchinterval(PREFETCH_SWITCH_S)
        try:
            load_generator(settings)
        except Exception:  # noqa: S110 - the command's own load reports it properly
            pass
        finally:
            sys.setswitchinterval(interval)

    thread = threading.Thread(target=load, name="rag-model-prefetch")
    thread.start()
    return thread
