"""`evals` as a plugin of pocketrag: it contributes the `rag eval` command and the
server's eval-run routes (GET /v1/runs, for `rag serve --runs DIR`).

`evals` sits above the application (it runs the orchestrator under conditions), so neither
the CLI nor the server can import it; it registers its parts the way any package would:
the CLI adds the group when `rag eval` is asked for, and `rag serve` mounts every route part.
"""

from __future__ import annotations

from typing import Any

from rag.core.plugins import Part, Registry


def _eval_commands() -> Any:
    from evals.cli import app

    return app


def _run_routes(argument: str, settings: Any, serve_config: Any, *, options: dict) -> list:
    from evals.run_routes import routes

    return routes(serve_config)


def register(registry: Registry) -> None:
    registry.register(
        Part(
            "command",
            "eval",
            _eval_commands,
            help="Measure answer accuracy with and without evidence.",
        )
    )
    registry.register(
        Part(
            "route",
            "eval-runs",
            _run_routes,
            help="GET /v1/runs: the eval runs of `rag serve --runs DIR`, for the research desk.",
        )
    )
