"""`rag mcp`: serve search and answers to an MCP-capable assistant over stdio (rag.mcp_server)."""

from __future__ import annotations

from rag.cli.options import IndexOption, ModelOption, SearchOption
from rag.core.config import load_settings


def mcp(
    index: IndexOption = None,
    search: SearchOption = False,
    model: ModelOption = None,
) -> None:
    """Run an MCP server on stdin/stdout with the tools search_index, search_web, ask and
    list_indexes. --index and --search are what the tools use when a call does not say;
    --model is the model `ask` answers with. Stdout carries only the protocol."""
    from rag.mcp_server import serve

    serve(load_settings(model=model), indexes=index or [], web=search)
