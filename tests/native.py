"""Subprocesses that may crash natively (llama.cpp, torch, faiss) and how a crash is reported.

A segfault inside the pytest process kills the whole run; inside a child it is just a
negative return code that a careless `returncode != 0` check could even count as the
expected failure. Everything here turns death by a signal into a failed test that names
the signal and the CPU, so a native crash can never pass for a green run.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

#: Loads the bundled model the way `rag ask` does and decodes a multi-token prompt (the
#: batched decode is where llama.cpp crashed on AMX CPUs).
CANARY = """
import sys
from rag.core.config import load_settings
from rag.generators import load_generator
from rag.core.types import Message
settings = load_settings(model="smollm2-135m", context_cap=512)
text = load_generator(settings).generate(
    [Message("user", "Name three colours of the rainbow.")], max_tokens=4
).text
sys.stdout.write(text)
"""


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def crash_message(returncode: int, what: str, stderr: str = "") -> str | None:
    """A description of a death by signal, or None when the process exited by itself."""
    if returncode >= 0:
        return None
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    tail = stderr.strip()[-1500:]
    return f"{what} died with {name} on this CPU ({cpu_name()})" + (
        f"; its stderr ended with:\n{tail}" if tail else ""
    )


def fail_if_crashed(returncode: int, what: str, stderr: str = "") -> None:
    message = crash_message(returncode, what, stderr)
    if message:
        pytest.fail(message, pytrace=False)


def run_python(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    input: str | None = None,  # noqa: A002 - the subprocess.run name
    what: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in a fresh process; death by a signal fails the calling test."""
    done = subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )
    fail_if_crashed(done.returncode, what or " ".join(args[:4]), done.stderr)
    return done


def run_rag(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    input: str | None = None,  # noqa: A002
) -> subprocess.CompletedProcess[str]:
    """`rag ARGS` in a fresh process (as `python -m rag.cli.app`, this checkout's code)."""
    return run_python(
        ["-m", "rag.cli.app", *args],
        env=env,
        timeout=timeout,
        input=input,
        what="rag " + " ".join(args[:3]),
    )


def model_canary(env: dict[str, str] | None = None) -> str | None:
    """Load and run the bundled model in a child; the crash description, or None if it ran."""
    env = dict(env if env is not None else os.environ)
    done = subprocess.run(
        [sys.executable, "-c", CANARY], env=env, capture_output=True, text=True, timeout=300
    )
    return crash_message(done.returncode, "loading and running SmolLM2 (llama.cpp)", done.stderr)
