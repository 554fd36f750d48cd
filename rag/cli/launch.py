"""The `rag` entry point: starts loading the model before the command line is imported.

A closed-book `rag ask` with a small model is mostly process start: importing typer and
the commands and parsing options took about 0.12 s against 0.65 s for a whole raw
llama-cpp-python answer. Loading the model runs in C without the GIL, so starting it
first hides that work behind the load.
"""

from __future__ import annotations

import contextlib
import os
import sys

#: Commands that load a model and answer; only they prefetch it.
ANSWERING = ("ask", "chat")
#: Commands a running `rag serve` answers when one is configured (`RAG_SERVER`): for them
#: the prefetch would load a model for nothing (if the server is not reachable, the command
#: loads it itself, as without a prefetch).
SERVED = ("ask",)


def model_flag(argv: list[str]) -> str | None:
    """The `--model`/`-m` value on the command line, read as click reads it (`--model X`,
    `--model=X`, `-m X`, `-mX`; the last one wins); None when it is not given."""
    value = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in ("--model", "-m"):
            value = argv[i + 1] if i + 1 < len(argv) else value
        elif arg.startswith("--model="):
            value = arg.partition("=")[2]
        elif arg.startswith("-m") and not arg.startswith("--"):
            value = arg[2:]
    return value


def json_output(argv: list[str]) -> bool:
    """Whether `--json` is given (before a `--`): stdout is then for JSON alone."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def main() -> None:
    from rag.cli.output import ensure_streams

    ensure_streams()
    argv = sys.argv[1:]
    if json_output(argv):  # a plugin's thread or C code writing to descriptor 1: to stderr
        from rag.core.streams import hold_stdout

        hold_stdout()
    answering = argv and argv[0] in ANSWERING and not {"--help", "-h"} & set(argv)
    if not answering or (argv[0] in SERVED and server_configured()):
        from rag.cli.app import main as run

        run()
        return
    import llama_cpp  # noqa: F401 - imported before the thread starts: see prefetch

    from rag.generators import prefetch

    loading = prefetch(model_flag(argv))
    # The imports the load overlaps with. They print nothing, and nothing may print until
    # the load is done: llama-cpp-python points the whole process's stdout and stderr at
    # /dev/null while it loads a model quietly, so a message (say, a usage error) written
    # meanwhile would vanish.
    import rag.orchestrator  # noqa: F401
    from rag.cli.app import command

    cli = command()
    if loading is not None:
        loading.join()
    try:
        cli(prog_name="rag")
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    # The answer is out: skip tearing down the interpreter module by module and freeing the
    # model piece by piece (about 50 ms for SmolLM2), which the OS does at once.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away
            stream.flush()
    os._exit(code)


def server_configured() -> bool:
    """True when the `server` setting names a `rag serve` to send the work to. A setting
    that cannot be read is left for the command to report."""
    try:
        from rag.core.config import load_settings

        return bool(load_settings().server.strip())
    except Exception:  # noqa: BLE001 - the command's own load_settings reports it
        return False


def exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    sys.stderr.write(f"{exc.code}\n")
    return 1


if __name__ == "__main__":  # pragma: no cover
    main()
