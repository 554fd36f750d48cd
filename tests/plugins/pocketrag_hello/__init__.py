"""A tiny third-party pocketrag plugin, found through its `pocketrag` entry point.

- engine `hello`: fixed results for any query, greeting with its `greeting` option
  (`[engines.hello] greeting = "..."`);
- generator prefix `echo:` (`--model echo:anything`): answers by quoting the first
  `words` words (`[generators.echo] words = N`, 1-50) of source [1] and citing it.

- store `hello` (`rag index ... --store hello`): an index as one JSON file
  (pocketrag_hello/store.py), whose `note` option (`[stores.hello] note = "..."`) shows in
  `rag indexes info`.

It imports pocketrag only inside its factories, as a plugin should: `register` runs
whenever pocketrag first consults its registry, so it must stay light.
"""

from __future__ import annotations

import re
from typing import Any


def register(registry: Any) -> None:
    registry.register(
        registry.Part(
            "engine",
            "hello",
            make_engine,
            options=(registry.Option("greeting", str, "Hello", "How the results greet."),),
        )
    )
    registry.register(
        registry.Part(
            "generator",
            "echo",
            make_generator,
            argument="ANYTHING",
            options=(
                registry.Option("words", int, 8, "Words quoted from source 1.", low=1, high=50),
            ),
        )
    )
    registry.register(
        registry.Part(
            "store",
            "hello",
            make_store,
            options=(registry.Option("note", str, "hello store", "Shown with the index."),),
        )
    )


# Every factory is called as factory(argument, settings, *extra, options=...): `argument`
# is what follows `NAME:` in the spec ("" for a part that takes none).


def make_store(
    argument: str, settings: Any, label: str, index_dir: Any, options: dict[str, Any]
) -> Any:
    from pocketrag_hello.store import make_store

    return make_store(label, index_dir, settings, options)


def make_engine(argument: str, settings: Any, options: dict[str, Any]) -> Any:
    return HelloEngine(options["greeting"])


def make_generator(argument: str, settings: Any, options: dict[str, Any]) -> Any:
    return EchoGenerator("echo:" + argument, options["words"])


class HelloEngine:
    name = "hello"

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    def search(self, query: str, max_results: int) -> list[Any]:
        from rag.web.base import WebResult

        results = [
            WebResult(
                title=f"{self.greeting} from the hello plugin",
                url="https://hello.example/answer",
                snippet=f"{self.greeting}, the hello plugin answers: forty-two is the answer.",
            ),
            WebResult(
                title="Another hello page",
                url="https://hello.example/other",
                snippet="A second page, about nothing in particular.",
            ),
        ]
        return results[:max_results]

    def cache_identity(self) -> dict[str, Any]:
        return {"greeting": self.greeting}


_FIRST_SOURCE = re.compile(r'<source id="1"[^>]*>\s*(.*?)\s*</source>', re.DOTALL)


class EchoGenerator:
    context_size = 4096
    parameters = None

    def __init__(self, model_name: str, words: int) -> None:
        self.model_name = model_name
        self.words = words

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt_tokens(self, messages: Any) -> int:
        return sum(self.count_tokens(m.content) + 4 for m in messages)

    def generate(self, messages: Any, *, max_tokens: int, temperature: float = 0.0) -> Any:
        from rag.core.types import Timings
        from rag.generators.base import Generation, TimedStream

        found = _FIRST_SOURCE.search(messages[-1].content)
        quoted = " ".join(found.group(1).split()[: self.words]) if found else "no source"
        answer = f'Source 1 says: "{quoted}" [1]'
        timings = Timings(prompt_tokens=self.count_prompt_tokens(messages))
        pieces = iter([(answer, len(answer.split()))])
        return Generation(TimedStream(timings).wrap(pieces), timings)
