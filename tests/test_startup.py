"""`rag --help` must stay light: none of the heavy libraries may load for it."""

import importlib.util
from pathlib import Path


def test_help_imports_no_heavy_library() -> None:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "startup.py"
    spec = importlib.util.spec_from_file_location("startup_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.heavy_modules_loaded_by_help() == []
