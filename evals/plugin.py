"""`evals` as a plugin of pocketrag: it contributes the `rag eval` command.

`evals` sits above the application (it runs the orchestrator under conditions), so the
CLI cannot import it; it registers its command the way any package would, and the CLI
adds the group when `rag eval` is asked for.
"""

from __future__ import annotations

from typing import Any

from rag.core.plugins import Part, Registry


def _eval_commands() -> Any:
    from evals.cli import app

    return app


def register(registry: Registry) -> None:
    registry.register(
        Part(
            "command",
            "eval",
            _eval_commands,
            help="Measure answer accuracy with and without evidence.",
        )
    )
