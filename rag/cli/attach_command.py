"""`rag indexes attach` and `rag indexes detach`: use an index another home created on a
shared store (pgvector), and stop using it, without touching its data.

Sharing is never implied by a name: two homes that each run `rag index --name team` on one
server get two indexes. A home uses another's only after `attach` (see
indexers/stores/pgvector_owner.py); `detach` forgets it there, and only the creating
home's `rag indexes remove` deletes the data.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from rag.cli import output
from rag.core.config import load_settings
from rag.core.errors import UsageError


def attach(
    name: Annotated[str, typer.Argument(help="The name it gets in this home.")],
    schema: Annotated[
        Optional[str],  # noqa: UP007, UP045 - typer needs Optional on Python 3.10
        typer.Option(
            "--schema",
            help="Its schema, as `rag indexes info NAME` shows it in the home that created "
            "it (default: the one index on the server its creator named NAME).",
        ),
    ] = None,
    writable: Annotated[
        bool,
        typer.Option(
            "--writable", help="Let `rag index --name NAME` update it from here (same folders)."
        ),
    ] = False,
    store: Annotated[
        str, typer.Option("--store", help="The shared store it lives in.")
    ] = "pgvector",
) -> None:
    """Use an index another home created on a shared store; its data is untouched."""
    from indexers import stores

    index = stores.open_store(name, load_settings(), store)
    attach_to = getattr(index, "attach", None)
    if attach_to is None:
        raise UsageError(
            f"The {store!r} store keeps each index in one home: only a shared store "
            "(pgvector) has indexes to attach."
        )
    state = attach_to(schema, writable)
    p = state.params
    mode = "writable" if writable else "read-only: its creator updates it"
    output.out.print(
        f"Attached index {name!r} ({index.where()}): {p['chunks']} chunks from "
        f"{p.get('files', 0)} files, {mode}. `rag indexes detach {name}` forgets it here.",
        markup=False,
    )


def detach(name: Annotated[str, typer.Argument(help="Index name or folder path.")]) -> None:
    """Stop using an attached index here; its data stays for the home that created it."""
    from indexers import stores

    index = stores.open_store(name, load_settings())
    detach_from = getattr(index, "detach", None)
    if detach_from is None:
        raise UsageError(
            f"Index {name!r} is in this home's {index.kind!r} store: there is nothing to "
            f"detach. `rag indexes remove {name}` deletes it."
        )
    where = index.where()
    left = detach_from()
    if left:
        output.warn(
            f"Kept {index.index_dir}: it also holds {len(left)} file(s) pocketrag did not "
            f"write ({', '.join(left[:5])}{', ...' if len(left) > 5 else ''})."
        )
    output.out.print(f"Detached index {name!r}; its data stays ({where}).", markup=False)


def register(indexes: typer.Typer) -> None:
    """Add both commands to `rag indexes`."""
    indexes.command("attach")(attach)
    indexes.command("detach")(detach)
