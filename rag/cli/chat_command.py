"""`rag chat`: a multi-turn REPL with the same options as `rag ask`.

Reads one question per line from stdin (`/reset` forgets the conversation,
`/exit` or end of input quits). Answers stream to stdout; prompts, the rewritten
search query, warnings and errors go to stderr. With `--json`, each turn prints
one JSON object on its own line (the `rag ask --json` object plus `search_query`).
A turn whose search fails prints the error and the conversation goes on; the
exit code is 1 when every turn failed.

Each finished turn is saved as it ends (`rag.cli.chat_saving`; `--no-save` saves
nothing), so a chat that is killed keeps every turn but the one being answered; at the
end the conversation's id is printed on stderr. `--resume ID` continues a saved
conversation: its turns are the history (the last few, as always), new turns are added
to it. `/reset` starts a new conversation.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Optional

import typer

from rag.cli import output
from rag.cli.chat_saving import Saving
from rag.cli.options import IndexOption, JsonOption, ModelOption, SearchOption, question_options
from rag.core.config import load_settings
from rag.question_options import ASK_OPTIONS

PROMPT = "you> "

ResumeOption = Annotated[
    Optional[str],  # noqa: UP007, UP045 - typer needs Optional on Python 3.10
    typer.Option("--resume", help="Continue the saved conversation ID (see `rag history`)."),
]
NoSaveOption = Annotated[
    bool, typer.Option("--no-save", help="Do not save this conversation (`rag history`).")
]


@question_options(*ASK_OPTIONS)
def chat(
    search: SearchOption = False,
    index: IndexOption = None,
    model: ModelOption = None,
    json_output: JsonOption = False,
    resume: ResumeOption = None,
    no_save: NoSaveOption = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Talk with a local model; follow-ups are searched as standalone questions."""
    from rag.chat import ChatSession
    from rag.question_options import overrides
    from rag.sources import source_specs

    settings = load_settings(model=model, **overrides(options or {}))
    saving = Saving(settings, resume, save=not no_save)  # a damaged file stops us here
    session = ChatSession(settings, sources=source_specs(web=search, indexes=index))
    session.model()  # load now: a missing model should stop us before the first question
    saving.resume(session)
    output.err.print(
        "Ask a question; /reset forgets the conversation, /exit (or Ctrl-D) quits.",
        style="dim",
        markup=False,
    )
    try:
        answered, failed = _converse(session, saving, json_output)
    finally:
        saving.close()  # says where the conversation was saved
    if failed and not answered:
        raise typer.Exit(1)


def _converse(session: Any, saving: Saving, json_output: bool) -> tuple[int, int]:
    """The turns read from stdin, each saved once answered; (answered, failed)."""
    from rag.cli.ask_commands import print_sources
    from rag.core.errors import PromptTooLong, SearchUnavailable, UsageError
    from rag.orchestrator import validate_question

    answered = failed = 0
    interactive = sys.stdin.isatty()
    while True:
        if interactive:  # piped questions need no prompt between them
            sys.stderr.write(PROMPT)
            sys.stderr.flush()
        line = _read_line()
        if line is None:
            break
        question = line.strip()
        if not question:
            continue
        if question in {"/exit", "/quit"}:
            break
        if question == "/reset":
            session.reset()
            saving.close()  # the next turn starts a new conversation
            output.err.print("(conversation forgotten)", style="dim", markup=False)
            continue
        try:
            question = validate_question(question)
        except UsageError as exc:  # one bad line (not UTF-8) must not end the conversation
            failed += 1
            output.error(str(exc))
            continue
        try:
            query = session.rewrite_query(question)
            if query != question and not json_output:
                output.err.print(
                    f"(searching for: {output.printable(query)})", style="dim", markup=False
                )
            turn = session.ask(
                question, search_query=query, on_text=None if json_output else output.write_text
            )
        except (SearchUnavailable, PromptTooLong) as exc:
            failed += 1
            output.error(str(exc))
            continue
        answered += 1
        result = turn.answer
        if json_output:
            payload = {**result.as_dict(), "search_query": turn.search_query}
            sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            sys.stdout.write("\n")
            print_sources(result.as_dict()["sources"], result.web_engine)
            sys.stdout.write("\n")
        for warning in result.warnings:
            output.warn(warning)
        saving.add(question, turn.search_query, result.as_dict())
    return answered, failed


def _read_line() -> str | None:
    """One line of stdin, None at its end. Read as bytes: a line that is not UTF-8 comes
    back with lone surrogates for `validate_question` to refuse, instead of ending the chat."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a text-only stdin (tests, embedding)
        line = sys.stdin.readline()
        return line or None
    raw = buffer.readline()
    return raw.decode("utf-8", errors="surrogateescape") if raw else None
