"""Options shared by several commands, declared once so they read the same everywhere.

A flag left unset is None, so the lower settings layers (env, config file) apply. The
per-question options (`--k`, `--max-tokens`, ...) are declared in rag.question_options,
with the server's request fields; `question_options` turns them into flags. Ranges are
not declared here: `rag.core.config` checks every value the same way, whichever layer it
came from, so a flag and its environment variable can never disagree on what is valid.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

SearchOption = Annotated[bool, typer.Option("--search", "-s", help="Search the web for evidence.")]
IndexOption = Annotated[
    list[str] | None,
    typer.Option("--index", "-i", help="Draw on this local index (repeatable)."),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Alias (phi-3-mini, smollm2-135m), a .gguf path, hf:OWNER/REPO/FILE.gguf, "
        "or openai:URL#MODEL. Env: RAG_MODEL.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def question_flag(name: str) -> Any:
    """The typer annotation of one per-question option (rag.question_options), for a
    command that takes it on its own (`rag eval run --k`)."""
    from rag.question_options import QUESTION_OPTIONS

    option = next(o for o in QUESTION_OPTIONS if o.name == name)
    if option.type is bool:
        return Annotated[bool, typer.Option(*option.spellings, help=option.help)]
    if option.repeatable:  # text, given once per value: `--site a.org --site b.org`
        return Annotated[
            Optional[list[str]],  # noqa: UP007, UP045 - typer reads Optional
            typer.Option(*option.spellings, help=option.help),
        ]
    return Annotated[
        Optional[option.type],  # noqa: UP007, UP045 - typer reads Optional
        typer.Option(*option.spellings, help=option.help),
    ]


def question_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the per-question options `names` (declared in rag.question_options)
    as flags; the command receives them as one dict, `options` (None: a flag not given).

    typer reads a command's parameters from its signature, so the wrapper's signature is
    the command's own (without `options`) plus one keyword-only parameter per option."""
    from rag.question_options import QUESTION_OPTIONS

    chosen = [o for o in QUESTION_OPTIONS if o.name in names]

    def parameter(option: Any) -> inspect.Parameter:
        return inspect.Parameter(
            option.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=False if option.type is bool else None,
            annotation=question_flag(option.name),
        )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(command, eval_str=True)  # in the command's own module
        kept = [p for p in own.parameters.values() if p.name != "options"]

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            options = {o.name: values.pop(o.name) for o in chosen}
            return command(options=options, **values)

        del wrapper.__wrapped__  # typer must read the signature below, not the command's
        signature = own.replace(parameters=[*kept, *(parameter(o) for o in chosen)])
        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        return wrapper

    return decorate
