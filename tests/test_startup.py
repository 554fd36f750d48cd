"""`rag --help` must stay light: none of the heavy libraries may load for it."""

import importlib.util
from pathlib import Path

from conftest import child_environ


def test_help_imports_no_heavy_library() -> None:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "startup.py"
    spec = importlib.util.spec_from_file_location("startup_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.heavy_modules_loaded_by_help() == []


def test_a_cold_search_imports_no_reader_of_files(tmp_path: Path) -> None:
    """Before: opening a local index imported the index-target checks, hence the walk and
    every format's reader (about 60 ms of a cold `rag search`), which only writing needs."""
    import os
    import subprocess
    import sys

    tests = Path(__file__).resolve().parent
    repo = tests.parent
    env = child_environ()
    env.update(RAG_HOME=str(tmp_path / "home"), RAG_EMBEDDER="fake",
               PYTHONPATH=os.pathsep.join(map(str, (repo, tests, tests / "plugins"))))  # fmt: skip
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lake.md").write_text("Lake Baikal is the deepest lake in the world.\n")
    run = [sys.executable, "-m", "rag.cli.app"]
    subprocess.run([*run, "index", str(docs), "--name", "n"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    probe = (
        "import sys; from rag.cli.app import main; sys.argv = ['rag', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED:' + ','.join(sorted(m for m in sys.modules if m.startswith("
        "('indexers.formats', 'indexers.discovery', 'indexers.ocr')))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, "search", "deepest lake", "--index",
                           "n"], env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert "Lake Baikal" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "LOADED:", done.stdout


def test_onnx_runtime_is_told_to_send_no_telemetry_before_it_is_imported() -> None:
    """ONNX Runtime's native library looked up mobile.events.data.microsoft.com while
    quantising an export (found by logging the DNS queries of a test run)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    code = (
        "import os, sys, indexers.onnx_embedder; "
        "assert 'onnxruntime' not in sys.modules or os.environ['ORT_DISABLE_TELEMETRY']; "
        "import onnxruntime; print(os.environ.get('ORT_DISABLE_TELEMETRY'))"
    )
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=repo
    )
    assert done.stdout.strip() == "1", done.stderr
