"""Options shared by several commands, declared once so they read the same everywhere.

A flag left unset is None, so the lower settings layers (env, config file) apply. Ranges
are not declared here: `rag.config` checks every value the same way, whichever layer it
came from, so a flag and its environment variable can never disagree on what is valid.
"""

from __future__ import annotations

from typing import Annotated

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
KOption = Annotated[
    int | None,
    typer.Option(
        "--k",
        "-k",
        help="Most sources in the prompt (a reranker reads 10 candidates per source). Env: RAG_K.",
    ),
]
RerankerOption = Annotated[
    str | None,
    typer.Option(
        "--reranker",
        help="hybrid (default, offline), embedder, bm25, cross-encoder:HF_ID or none. "
        "Env: RAG_RERANKER.",
    ),
]
NoRerankOption = Annotated[
    bool,
    typer.Option("--no-rerank", help="Keep the retrievers' order and whole passages."),
]
EvidenceTokensOption = Annotated[
    int | None,
    typer.Option(
        "--evidence-tokens",
        help="Token budget for sources in the prompt; 0 sizes it to the model. "
        "Env: RAG_EVIDENCE_TOKENS.",
    ),
]
MaxTokensOption = Annotated[
    int | None,
    typer.Option("--max-tokens", help="Longest answer, in tokens. Env: RAG_MAX_TOKENS."),
]
TemperatureOption = Annotated[
    float | None,
    typer.Option("--temperature", help="0 is greedy (default), at most 2. Env: RAG_TEMPERATURE."),
]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine", help="Web search engine: ddgs, searxng or a plugin's. Env: RAG_ENGINE."
    ),
]
FetchOption = Annotated[
    int | None,
    typer.Option("--fetch", help="Read the top N result pages, not only snippets."),
]
RegionOption = Annotated[
    str | None,
    typer.Option(
        "--region", help="Search region, e.g. us-en, de-de; wt-wt: none. Env: RAG_REGION."
    ),
]
SafesearchOption = Annotated[
    str | None,
    typer.Option("--safesearch", help="on, moderate or off. Env: RAG_SAFESEARCH."),
]
TimelimitOption = Annotated[
    str | None,
    typer.Option("--timelimit", help="Results from the last d(ay), w(eek), m(onth), y(ear)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def reranker_choice(reranker: str | None, no_rerank: bool) -> str | None:
    """The `reranker` setting the flags ask for (None: leave it to env, config, default)."""
    from rag.errors import UsageError

    if no_rerank and reranker not in (None, "none"):
        raise UsageError(f"--no-rerank and --reranker {reranker} contradict each other.")
    return "none" if no_rerank else reranker
