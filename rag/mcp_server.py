"""`rag mcp`: pocketrag's search and answers as tools for an MCP-capable assistant, over stdio.

The tools call the same library functions as the CLI (`rag.search.search`,
`rag.orchestrator.retrieve` and `answer`, `indexers.stores.list_indexes`), so a tool returns what
`rag search`, `rag ask` and `rag indexes list` print, with the same numbered sources, and
fails with the same one-line message (as a tool error: `isError`, never a traceback; the
server keeps serving).

The server stays warm: retrievers are cached by source spec (an index is reopened when a
`rag index` run committed a new version of it) and the model is loaded once, on the first
`ask`. Tools run on worker threads, so searches overlap; generation is serialised by a lock
(one llama.cpp context). Stdout is the protocol channel: from the start of `serve` (before
plugins load and the default indexes open) the process's descriptor 1 and `sys.stdout`
point at stderr (`rag.core.streams`), so llama.cpp's C-level logs and any stray print cannot
corrupt the stream; the protocol goes out on a private duplicate (`rag.mcp_stdio`, which
also answers every malformed request with its JSON-RPC error).

The MCP SDK (`mcp`, with pydantic and starlette) is imported only by `serve`/`build_server`,
never by `rag --help`. No `from __future__ import annotations` here: the SDK reads the
tools' annotations (built inside `build_server`, with its imports) to make their schemas.
"""

import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from rag.core.config import Settings, check_setting
from rag.core.errors import RagError, UsageError
from rag.core.types import Source

if TYPE_CHECKING:
    from rag.generators import Generator
    from rag.sources import Retriever

#: What a tool hands back: the text the model reads, and the same as structured data.
ToolOutput = tuple[str, dict[str, Any]]

INSTRUCTIONS = (
    "pocketrag searches the user's local document indexes and the web, and answers questions "
    "with a small local model citing numbered sources [1], [2]. Call list_indexes to see "
    "the indexes; search_index and search_web return numbered passages with their locations "
    "(file paths or URLs) to cite; ask returns a cited answer followed by its sources."
)


class Assistant:
    """The state a server keeps between calls: settings, retrievers by spec, the model.

    `indexes` and `web` are what the tools use when a call does not say (`rag mcp --index
    NAME --search`); every index under RAG_HOME can still be named in a call.
    """

    def __init__(
        self, settings: Settings, *, indexes: Sequence[str] = (), web: bool = False
    ) -> None:
        self.settings = settings
        self.indexes = list(dict.fromkeys(indexes))
        self.web = web
        self._retrievers: dict[str, Retriever] = {}
        self._opening = threading.Lock()  # guards the retriever cache
        self._generating = threading.Lock()  # one generation at a time: one llama.cpp context
        self._generator: Generator | None = None

    # --- sources -----------------------------------------------------------------------
    def index_specs(self, index: str | Sequence[str] | None) -> list[str]:
        """`index:NAME` specs for the index (or indexes) a call names; None: the server's."""
        if index is None:
            names = self.indexes
        elif isinstance(index, str):
            names = [index]
        else:
            names = list(index)
        specs = []
        for name in names:
            name = name.strip() if isinstance(name, str) else ""
            if not name:
                raise UsageError(
                    "Say which index to search: an index name (list_indexes shows them)."
                )
            specs.append(f"index:{name}")
        return list(dict.fromkeys(specs))

    def retriever(self, spec: str) -> "Retriever":
        """The retriever for `spec`, opened once; an index is reopened when a later
        `rag index` run committed a new version (or it was removed: the error says so)."""
        from rag.sources import build_retriever

        with self._opening:
            cached = self._retrievers.get(spec)
            if cached is not None and _current(spec, cached, self.settings):
                return cached
            self._retrievers.pop(spec, None)  # not closed: another call may be reading it
            retriever = build_retriever(spec, self.settings)
            self._retrievers[spec] = retriever
            return retriever

    def generator(self) -> "Generator":
        """The model, loaded on first use (callers hold `_generating`)."""
        from rag.generators import load_generator

        if self._generator is None:
            self._generator = load_generator(self.settings)
        return self._generator

    # --- tools -------------------------------------------------------------------------
    def search(self, query: str, specs: Sequence[str], k: int) -> ToolOutput:
        """`rag search` over `specs`, best `k`: numbered passages and the `--json` object."""
        from rag.orchestrator import retrieve, validate_question
        from rag.search import ranked

        query = validate_question(query, what="query")
        check_k(k)
        if not specs:
            raise UsageError("Say which index to search: an index name (list_indexes shows them).")
        settings = self.settings.with_overrides(k=k)
        retrievers = [self.retriever(spec) for spec in specs]
        found = ranked(retrieve(query, retrievers, settings), settings)
        data = found.as_dict()
        data["warnings"] = list(found.warnings)
        text = format_sources(found.results, with_text=True) if found.results else "No results."
        return text + format_warnings(found.warnings), data

    def ask(self, question: str, specs: Sequence[str]) -> ToolOutput:
        """`rag ask` from `specs` (none: closed-book): the cited answer, then its sources."""
        from rag.orchestrator import answer as answer_from
        from rag.orchestrator import retrieve, validate_question

        question = validate_question(question)
        retrievers = [self.retriever(spec) for spec in specs]
        # Searching needs no model: only generation waits for another call's answer.
        retrieved = retrieve(question, retrievers, self.settings)
        with self._generating:
            answer = answer_from(question, retrieved, self.generator(), self.settings)
        text = answer.answer or "(The model gave no answer.)"
        if answer.sources:
            text += "\n\nSources:\n" + format_sources(answer.sources, with_text=False)
        return text + format_warnings(answer.warnings), answer.as_dict()

    def list_indexes(self) -> ToolOutput:
        """The rows of `rag indexes list --json`, and a line per index."""
        from indexers import stores

        rows = [stores.summary(index) for index in stores.list_indexes(self.settings)]
        if not rows:
            return "No indexes yet. Create one with `rag index PATH --name NAME`.", {"indexes": []}
        lines = []
        for r in rows:
            if "error" in r:
                state = "older format" if r.get("old") else "damaged"
                lines.append(f"{r['name']} ({state}: {r['error']})")
            else:
                lines.append(
                    f"{r['name']}: {r['chunks']} chunks from {r['files']} files, "
                    f"embedder {r['embedder']}, store {r['store']}"
                )
        return "\n".join(lines), {"indexes": rows}


def _current(spec: str, retriever: Any, settings: Settings) -> bool:
    """Whether a cached retriever still reads the live version of its source."""
    if not spec.startswith("index:"):
        return True
    from indexers import stores

    keys = ("generation", "params_sha256")
    try:
        live = stores.open_store(spec[len("index:") :], settings).fingerprint()
        mine = retriever.fingerprint()
    except Exception:  # noqa: BLE001 - reopening reports what is wrong, properly
        return False
    return live is not None and all(live.get(key) == mine.get(key) for key in keys)


def check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise UsageError(f"k must be a whole number from 1 to 100, got {k!r}.")
    check_setting("k", k, "the k argument")


def format_sources(sources: Sequence[Source], *, with_text: bool) -> str:
    """`[n] title — location`, and under it the text a model would be given."""
    blocks = []
    for s in sources:
        head = f"[{s.id}] {s.title} — {s.location}"
        blocks.append(f"{head}\n{' '.join(s.shown.split())}" if with_text else head)
    return ("\n\n" if with_text else "\n").join(blocks)


def format_warnings(warnings: Sequence[str]) -> str:
    return "".join(f"\n\nWarning: {w}" for w in warnings)


# --- the MCP layer -------------------------------------------------------------------------


def run_tool(call: Callable[[], ToolOutput]) -> Any:
    """A tool's CallToolResult: its text and structured data, or, for a failure, the
    one-line message the CLI would print, as a tool error (the server carries on)."""
    from mcp.types import CallToolResult, TextContent

    try:
        text, data = call()
    except RagError as exc:
        return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
    except Exception as exc:  # a bug: the details go to stderr, one line to the client
        traceback.print_exc(file=sys.stderr)
        message = f"Unexpected error ({type(exc).__name__}: {exc}); the details are on stderr."
        return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def argument_errors(tool: str, error: Any) -> str:
    """A pydantic ValidationError of a tool's arguments as one line (the SDK's own text
    spans lines and ends with a documentation URL): `Invalid arguments for search_index:
    query: Input should be a valid string (got a number).`"""
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item.get("loc", ())) or "arguments"
        message = " ".join(str(item.get("msg", "")).split())
        if item.get("type") != "missing" and "got" not in message:
            message += f" (got {_json_type(item.get('input'))})"
        problems.append(f"{where}: {message}")
    return f"Invalid arguments for {tool}: {'; '.join(problems) or 'rejected'}."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    names = {str: "a string", int: "a number", float: "a number", list: "an array"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), "an object")


def build_server(assistant: Assistant) -> Any:
    """The MCP server with the four tools, over `assistant`."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
    from mcp.types import CallToolResult
    from pydantic import Field, ValidationError

    from rag import __version__

    class Server(MCPServer):
        async def call_tool(self, name: str, arguments: dict, context: Any = None) -> Any:
            try:
                return await super().call_tool(name, arguments, context)
            except UnexpectedToolError:
                raise
            except ToolError as exc:  # arguments that do not fit the tool's schema: one line
                if not isinstance(exc.__cause__, ValidationError):
                    raise
                raise ToolError(argument_errors(name, exc.__cause__)) from exc.__cause__

    server = Server(
        "pocketrag", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    default_indexes = ", ".join(assistant.indexes)
    index_default = (
        f" Leave it out to search the server's indexes ({default_indexes})."
        if assistant.indexes
        else ""
    )

    @server.tool(
        description="Search one of the user's local document indexes (built with `rag index`). "
        "Returns the best passages, numbered [1], [2], ..., each as `[n] title — location` "
        "(a file path with #chunk) followed by its text." + index_default
    )
    def search_index(
        query: Annotated[str, Field(description="What to search for.")],
        index: Annotated[
            str | None, Field(description="The index name (list_indexes shows them).")
        ] = None,
        k: Annotated[int, Field(description="How many passages (1-100).")] = 5,
    ) -> CallToolResult:
        return run_tool(lambda: assistant.search(query, assistant.index_specs(index), k))

    @server.tool(
        description="Search the web with pocketrag's configured engine. Returns the best "
        "results, numbered [1], [2], ..., each as `[n] title — URL` followed by its text."
    )
    def search_web(
        query: Annotated[str, Field(description="What to search for.")],
        k: Annotated[int, Field(description="How many results (1-100).")] = 5,
    ) -> CallToolResult:
        return run_tool(lambda: assistant.search(query, ["web"], k))

    @server.tool(
        description="Answer a question with pocketrag's local model from the given indexes "
        "and/or the web. Returns the answer, citing sources as [n], followed by the numbered "
        "sources (title — location). With no index and search false it answers closed-book."
    )
    def ask(
        question: Annotated[str, Field(description="The question to answer.")],
        index: Annotated[
            list[str] | None,
            Field(
                description="Indexes to draw on"
                + (f" (default: {default_indexes})." if assistant.indexes else ".")
            ),
        ] = None,
        search: Annotated[
            bool | None,
            Field(
                description="Also search the web"
                + (" (default: true)." if assistant.web else " (default: false).")
            ),
        ] = None,
    ) -> CallToolResult:
        def answer() -> ToolOutput:
            specs = assistant.index_specs(index)
            if assistant.web if search is None else search:
                specs.append("web")
            return assistant.ask(question, specs)

        return run_tool(answer)

    @server.tool(
        description="List the user's local document indexes: name, chunks, files, embedder "
        "and store of each."
    )
    def list_indexes() -> CallToolResult:
        return run_tool(assistant.list_indexes)

    return server


def serve(settings: Settings, *, indexes: Sequence[str] = (), web: bool = False) -> None:
    """Serve the tools over stdio until the client closes the connection."""
    from rag.core.streams import stdout_to_stderr
    from rag.mcp_stdio import serve_stdio

    with stdout_to_stderr():  # nothing before the protocol either: a plugin's print, a log
        # Fail before serving on what a call could never get past (an unknown default index).
        assistant = Assistant(settings, indexes=indexes, web=web)
        for spec in assistant.index_specs(None):
            assistant.retriever(spec)
        serve_stdio(build_server(assistant))
