"""The layers hold: import-linter checks the contracts in pyproject.toml (`[tool.importlinter]`):
the kernel (rag.core) imports nothing above it, indexers/ and prompts/ sit on the kernel, the
application (the rest of rag) on those, evals/ on top; and no sibling modules import each
other in a circle. A wrong import fails here, in the suite, not in review."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("rag", "indexers", "prompts", "evals")


def lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter over the packages under `root`, with the repository's contracts."""
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(REPO / 'pyproject.toml')!r}, no_cache=True))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_of_packages(folder: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_the_import_contracts_hold() -> None:
    done = lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("rag/core/errors.py", "import rag.cli.app", "The kernel imports nothing above it"),
        ("indexers/chunking.py", "import rag.orchestrator", "Packages are layered"),
        ("rag/orchestrator.py", "import rag.serve.app", "Inside rag, the application sits"),
        ("rag/search.py", "import evals.runner", "Packages are layered"),
        ("indexers/stores/base.py", "import indexers.build", "No import circle"),
    ],
)
def test_a_wrong_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    root = copy_of_packages(tmp_path)
    target = root / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # wrong on purpose\n")
    done = lint(root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in done.stdout and "BROKEN" in done.stdout
