"""Plugins that misbehave after they are made, or around the rules, met through `rag` in a
child process (throwaway plugin packages, tests/throwaway_plugins.py):

- an embedder whose `embed` raises, returns the wrong shape or NaN, or whose `dim` is 0:
  one line naming the plugin (before: a traceback from deep inside `rag index`);
- a plugin that calls the module-level `rag.core.plugins.register` while it loads, to
  replace a built-in (before: it did, and its `local` store crashed `rag index`), or that
  names its embedder `all-MiniLM-L6-v2` (before: it took every index built by default);
- a `register` or a factory raising a BaseException of its own (before: a traceback);
- a thread a plugin starts that writes to descriptor 1 or prints later (before: in the
  `--json` output).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_plugins import ENGINE, PLUGINS, REPO, TESTS, rag
from throwaway_plugins import plugin_package

UNINSTALL = "Update or uninstall that plugin."
DEFAULT = "all-MiniLM-L6-v2"  # the default embedder (rag.core.config.Settings.embedder)
#: The tests' hashing embedder, subclassed by each broken one below.
FAKE = "from index_fixtures import FakeEmbedder\nimport numpy as np\n"


def _embedder_plugin(body: str, make: str = "E('x')") -> str:
    return (
        FAKE
        + body
        + f"""

def register(registry):
    registry.register(registry.Part("embedder", "x", lambda *args, **kwargs: {make}))
"""
    )


BROKEN_EMBEDDERS = {
    "embed raises": (
        _embedder_plugin(
            "class E(FakeEmbedder):\n    def embed(self, texts):\n"
            "        raise RuntimeError('model exploded')\n"
        ),
        "RuntimeError: model exploded",
    ),
    "embed returns the wrong shape": (
        _embedder_plugin(
            "class E(FakeEmbedder):\n    def embed(self, texts):\n"
            "        return super().embed(texts)[:, :10]\n"
        ),
        "embed() returned an array of shape (1, 10) for 1 texts of dim 64; it must be (1, 64)",
    ),
    "embed returns NaN": (
        _embedder_plugin(
            "class E(FakeEmbedder):\n    def embed(self, texts):\n"
            "        return super().embed(texts) * np.nan\n"
        ),
        "embed() returned vectors holding NaN or infinity",
    ),
    "dim 0": (_embedder_plugin("", "FakeEmbedder('x', dim=0)"), "its dim is 0, not a whole"),
    "count_tokens returns nothing": (
        _embedder_plugin(
            "class E(FakeEmbedder):\n    def count_tokens(self, texts):\n        return []\n"
        ),
        "count_tokens() returned [] for 1 texts; it must be one whole number per text",
    ),
    "embed raises a BaseException of its own": (
        _embedder_plugin(
            "class Boom(BaseException):\n    pass\n\n\nclass E(FakeEmbedder):\n"
            "    def embed(self, texts):\n        raise Boom('out of the blue')\n"
        ),
        "Boom: out of the blue",
    ),
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "lakes.md").write_text("# Lakes\n\nLake Baikal in Siberia is the deepest lake.\n")
    return folder


@pytest.mark.parametrize("case", list(BROKEN_EMBEDDERS))
def test_an_embedder_that_fails_after_it_is_made_is_one_line_naming_it(
    rag_home: Path, tmp_path: Path, docs: Path, case: str
) -> None:
    source, what = BROKEN_EMBEDDERS[case]
    broken = plugin_package(tmp_path / "broken", "broken", source)
    done = rag(rag_home, "index", str(docs), "--name", "n", "--embedder", "x", path=(broken, TESTS))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    says = "Error: Embedder 'x' from plugin 'broken' (pocketrag_broken:register) failed: "
    assert error.startswith(says) and error.endswith(UNINSTALL), error
    assert what in error, error


def test_a_plugin_embedder_that_works_is_used_as_it_is(
    rag_home: Path, tmp_path: Path, docs: Path
) -> None:
    """The checks pass a good plugin embedder through: it indexes and searches."""
    good = plugin_package(tmp_path / "good", "good", _embedder_plugin("E = FakeEmbedder\n"))
    built = rag(rag_home, "index", str(docs), "--name", "n", "--embedder", "x", path=(good, TESTS))
    assert built.returncode == 0, built.stderr
    query = ("search", "deepest lake", "--index", "n", "--json")
    found = rag(rag_home, *query, path=(good, TESTS), RAG_EMBEDDER="x")
    assert found.returncode == 0, found.stderr
    assert "Lake Baikal" in json.loads(found.stdout)["results"][0]["text"]


TAKER = (
    ENGINE
    + """
from rag.core import plugins


def nothing(*args, **kwargs):
    return None


def register(registry):
    plugins.register(plugins.Part("store", "local", nothing))  # around its registry
    plugins.unregister("engine", "searxng")
    registry.register(registry.Part("embedder", "all-MiniLM-L6-v2", nothing))
    registry.register(registry.Part("engine", "taker", lambda *args, **kwargs: Engine()))
"""
)


def test_a_plugin_cannot_take_a_built_in_around_its_registry_nor_the_default_embedder(
    rag_home: Path, tmp_path: Path, docs: Path
) -> None:
    taker = plugin_package(tmp_path / "taker", "taker", TAKER)
    said = "Warning: plugin 'taker' (pocketrag_taker:register) "
    warnings = [
        f"{said}tried to remove the search engine 'searxng' while it loaded: refused.",
        f"{said}registers the index store 'local', which is taken: pocketrag's own is kept "
        "and the plugin's left out.",
        f"{said}registers the embedder 'all-MiniLM-L6-v2', which is taken: pocketrag's own "
        "is kept and the plugin's left out.",
    ]
    found = rag(rag_home, "search", "q", "--web", "--engine", "taker", "--json", path=(taker,))
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"][0]["title"] == "A throwaway result"
    assert found.stderr.splitlines() == warnings
    # the built-in store still builds the index (the fake embedder: the default is real)
    built = rag(
        rag_home, "index", str(docs), "--name", "n", path=(taker, TESTS, PLUGINS),
        RAG_EMBEDDER="fake",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert (rag_home / "indexes" / "n").is_dir()
    # and the default embedder's name still means the sentence-transformers model
    code = "from rag.core import plugins; print(plugins.resolve('embedder', '" + DEFAULT + "'))"
    named = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (taker, REPO)))},
        timeout=120,
    )
    assert named.stdout.startswith("(Part(kind='embedder', name='sentence-transformers'")


BASE = """
class Boom(BaseException):
    pass


def boom(*args, **kwargs):
    raise Boom("custom base exception")
"""


def test_a_base_exception_of_a_plugins_own_is_one_line(rag_home: Path, tmp_path: Path) -> None:
    at_register = plugin_package(
        tmp_path / "regboom", "regboom", BASE + "\ndef register(registry):\n    boom()\n"
    )
    hello = ("search", "q", "--web", "--engine", "hello", "--json")
    listed = rag(rag_home, *hello, path=(at_register, PLUGINS))
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["results"][0]["title"] == "Hello from the hello plugin"
    assert listed.stderr.splitlines() == [
        "Warning: plugin 'regboom' (pocketrag_regboom:register) failed to load and is "
        "skipped: Boom: custom base exception"
    ]
    in_factory = plugin_package(
        tmp_path / "facboom",
        "facboom",
        BASE
        + "\ndef register(registry):\n    registry.register(registry.Part('engine', 'b', boom))\n",
    )
    done = rag(rag_home, "search", "q", "--web", "--engine", "b", path=(in_factory,))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "Error: Search engine 'b' from plugin 'facboom' (pocketrag_facboom:register) failed: "
        f"Boom: custom base exception. {UNINSTALL}\n"
    )


THREADED = (
    ENGINE
    + """
import os
import threading

asked = threading.Event()


def later():
    asked.wait(60)
    os.write(1, b"THREADLEAK from a plugin's thread\\n")
    print("THREADPRINT from a plugin's thread", flush=True)


writer = threading.Thread(target=later, daemon=True)


class Waiting(Engine):
    def search(self, query, max_results):
        asked.set()  # the thread writes now, while the command runs outside any guard
        writer.join(60)
        return super().search(query, max_results)


def register(registry):
    writer.start()
    registry.register(registry.Part("engine", "threaded", lambda *args, **kwargs: Waiting()))
"""
)


def test_a_plugin_thread_writing_to_descriptor_1_later_cannot_corrupt_json(
    rag_home: Path, tmp_path: Path
) -> None:
    threaded = plugin_package(tmp_path / "threaded", "threaded", THREADED)
    done = rag(rag_home, "search", "q", "--web", "--engine", "threaded", "--json", path=(threaded,))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["title"] == "A throwaway result"
    assert "THREADLEAK from a plugin's thread" in done.stderr
    assert "THREADPRINT from a plugin's thread" in done.stderr


@pytest.mark.parametrize("made", ["None", "object()"])
def test_a_store_factory_that_makes_no_store_is_one_line_naming_it(
    rag_home: Path, tmp_path: Path, docs: Path, made: str
) -> None:
    """Before: an AttributeError traceback from deep inside `rag index` (no `writing`)."""
    source = f"""
def register(registry):
    registry.register(registry.Part("store", "odd", lambda *args, **kwargs: {made}))
"""
    odd = plugin_package(tmp_path / "odd", "odd", source)
    done = rag(rag_home, "index", str(docs), "--name", "n", "--store", "odd", path=(odd, TESTS))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert error.startswith("Error: Index store 'odd' from plugin 'odd'"), error
    assert "not a store" in error and error.endswith(UNINSTALL), error
