"""Model runtimes behind one Generator protocol; `load_generator` picks one for a model spec."""

from __future__ import annotations

import sys
import threading

from rag.core import plugins
from rag.core.config import Settings
from rag.generators.base import Generation, Generator

__all__ = ["Generation", "Generator", "load_generator", "load_gguf", "prefetch"]

_LOADED: dict[tuple, Generator] = {}
# Held while a model loads, so a prefetch and the command that wants the model load it once.
_LOADING = threading.Lock()
PREFETCH_SWITCH_S = 0.0002


def load_generator(settings: Settings, model: str | None = None) -> Generator:
    """The generator for `model` (default: `settings.model`): the `generator` part its spec
    names (`openai:URL#MODEL`), or a local GGUF (`load_gguf`), which every other spec is."""
    spec = (model or settings.model).strip()
    return plugins.create("generator", spec, settings, hint=" (--model or RAG_MODEL)")


def load_gguf(spec: str, settings: Settings) -> Generator:
    """A local GGUF model (an alias, a path, `hf:OWNER/REPO/FILE`) on llama.cpp, loaded once
    per process and settings: the `gguf` part, which every model spec without a
    registered prefix names."""
    key = (spec, settings.context_cap, settings.threads, settings.seed, settings.weight_repack)
    with _LOADING:
        if key not in _LOADED:
            from rag.generators.llama import LlamaGenerator
            from rag.generators.model_files import resolve_model

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
        from rag.core.config import load_settings
        from rag.generators.model_files import resolve_model

        settings = load_settings(model=model)
        part, argument = plugins.resolve("generator", settings.model)
        if not part.fallback or resolve_model(argument).locate() is None:
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
