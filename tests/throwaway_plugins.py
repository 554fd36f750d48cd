"""Throwaway plugin packages for one test: a module and its dist-info in a tmp folder.

Put the folder on a `rag` subprocess's PYTHONPATH and `importlib.metadata` finds the
plugin's `pocketrag` entry point as it would an installed package's (the way
tests/plugins/pocketrag_hello is found), with nothing patched.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def plugin_package(folder: Path, name: str, source: str) -> Path:
    """The plugin `name` in `folder`: module `pocketrag_<name>` holding `source`, found
    through the entry point `<name> = pocketrag_<name>:register`. Returns `folder`."""
    module = f"pocketrag_{name}"
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pocketrag-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[pocketrag]\n{name} = {module}:register\n")
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return folder


#: A generator (for `--model PREFIX:anything`) whose answer is `ANSWER`: paste into a
#: plugin's source after defining ANSWER.
GENERATOR = """
class FixedGenerator:
    context_size = 4096
    parameters = None

    def __init__(self, model_name):
        self.model_name = model_name

    def count_tokens(self, text):
        return len(text.split())

    def count_prompt_tokens(self, messages):
        return sum(self.count_tokens(m.content) + 4 for m in messages)

    def generate(self, messages, *, max_tokens, temperature=0.0):
        from rag.generators.base import Generation, TimedStream
        from rag.core.types import Timings

        timings = Timings(prompt_tokens=self.count_prompt_tokens(messages))
        pieces = iter([(ANSWER, len(ANSWER.split()))])
        return Generation(TimedStream(timings).wrap(pieces), timings)
"""
