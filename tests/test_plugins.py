"""Parts plug in one way: entry points in the group `pocketrag` (rag/core/plugins.py).

The end-to-end tests put a real plugin package (tests/plugins/pocketrag_hello: a module and
its dist-info) on a `rag` subprocess's PYTHONPATH; `importlib.metadata` finds its entry
point as it would an installed package's, with nothing patched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import child_environ
from mcp_raw import RawServer, call
from native import fail_if_crashed
from throwaway_plugins import plugin_package
from web_servers import free_port

from rag.core import plugin_loading, plugins
from rag.core.config import load_settings
from rag.core.errors import UsageError
from rag.core.plugins import Option, Part, Registry

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
PLUGINS = TESTS / "plugins"
QUESTION = "What is the answer?"
ASK = ["ask", QUESTION, "--search", "--engine", "hello", "--model", "echo:x", "--no-rerank"]


def rag(
    home: Path, *args: str, path: tuple[Path, ...] = (PLUGINS,), **variables: str
) -> subprocess.CompletedProcess:
    """`rag ARGS` through the installed entry point's function, plugins on PYTHONPATH."""
    code = "import sys; from rag.cli.launch import main; sys.argv = ['rag', *sys.argv[1:]]; main()"
    env = child_environ()
    env.update(RAG_HOME=str(home), PYTHONPATH=os.pathsep.join(map(str, (*path, REPO))))
    env.update(variables)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    fail_if_crashed(done.returncode, "rag " + " ".join(args[:3]), done.stderr)
    return done


def broken_plugin(folder: Path) -> Path:
    """A plugin package whose module raises on import, as an outdated plugin might."""
    info = folder / "pocketrag_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pocketrag-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pocketrag]\nbroken = pocketrag_broken:register\n")
    (folder / "pocketrag_broken.py").write_text('raise RuntimeError("made to fail")\n')
    return folder


def test_a_plugin_package_adds_an_engine_and_a_generator_end_to_end(rag_home: Path) -> None:
    (rag_home / "config.toml").write_text(
        '[engines.hello]\ngreeting = "Bonjour"\n\n[generators.echo]\nwords = 4\n'
    )
    done = rag(rag_home, *ASK)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('Source 1 says: "Bonjour, the hello plugin" [1]')
    assert "[1] Bonjour from the hello plugin — https://hello.example/answer" in done.stdout
    assert "Warning" not in done.stderr

    as_json = rag(rag_home, *ASK, "--json")
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["model"] == "echo:x"
    assert payload["sources"][0]["location"] == "https://hello.example/answer"
    assert payload["answer"] == 'Source 1 says: "Bonjour, the hello plugin" [1]'

    # the environment overrides the config file; without either, the option's default
    env = {"RAG_ENGINE_HELLO_GREETING": "Hola", "RAG_GENERATOR_ECHO_WORDS": "5"}
    overridden = rag(rag_home, *ASK, **env)
    assert overridden.returncode == 0, overridden.stderr
    assert overridden.stdout.startswith('Source 1 says: "Hola, the hello plugin answers:" [1]')
    (rag_home / "config.toml").unlink()
    default = rag(rag_home, "search", "anything", "--web", "--engine", "hello", "--json")
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["results"][0]["title"] == "Hello from the hello plugin"


def test_a_plugin_package_adds_an_index_store_end_to_end(rag_home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lakes.md").write_text("# Lakes\n\nLake Baikal in Siberia is the deepest lake.\n")
    (docs / "deserts.md").write_text("# Deserts\n\nThe Atacama in Chile is very dry.\n")
    (rag_home / "config.toml").write_text('[stores.hello]\nnote = "kept by hello"\n')
    built = rag(rag_home, "index", str(docs), "--name", "notes", "--store", "hello")
    assert built.returncode == 0, built.stderr
    assert (rag_home / "indexes" / "notes" / "hello-store.json").is_file()
    found = rag(rag_home, "search", "deepest lake in Siberia", "--index", "notes", "--json")
    assert found.returncode == 0, found.stderr
    assert "Lake Baikal" in json.loads(found.stdout)["results"][0]["text"]
    info = json.loads(rag(rag_home, "indexes", "info", "notes", "--json").stdout)
    assert info["store"] == "hello" and info["where"].startswith("kept by hello: ")
    assert info["chunks"] == 2 and info["files"] == 2
    (docs / "deserts.md").unlink()  # an update through the plugin's writer
    updated = rag(rag_home, "index", "--name", "notes", "--json")
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["files_removed"] == 1
    removed = rag(rag_home, "indexes", "remove", "notes")
    assert removed.returncode == 0 and not (rag_home / "indexes" / "notes").exists()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "[generators.echo]\nwords = 500\n",
            "[generators.echo]: words must be between 1 and 50, got 500.",
        ),
        ("[engines.hello]\ngreeting = 5\n", "[engines.hello]: greeting must be text in quotes"),
        ("[engines.hello]\ngreting = 'x'\n", "unknown option 'greting'; hello takes: greeting"),
        ("[engines.helo]\ngreeting = 'x'\n", "Unknown search engine 'helo' in section"),
    ],
)
def test_a_bad_plugin_option_is_one_line_and_exit_2(
    rag_home: Path, section: str, message: str
) -> None:
    (rag_home / "config.toml").write_text(section)
    done = rag(rag_home, *ASK)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: ")
    assert message in done.stderr and str(rag_home / "config.toml") in done.stderr


def test_a_broken_plugin_costs_one_warning_and_the_cli_carries_on(
    rag_home: Path, tmp_path: Path
) -> None:
    broken = broken_plugin(tmp_path / "broken")
    done = rag(rag_home, *ASK, path=(broken, PLUGINS))
    assert done.returncode == 0, done.stderr
    assert 'Source 1 says: "Hello, the hello plugin answers: forty-two' in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "broken" in line]
    assert warnings == [
        "Warning: plugin 'broken' (pocketrag_broken:register) failed to load and is skipped: "
        "RuntimeError: made to fail"
    ]
    # and without the hello plugin, the built-ins still serve
    alone = rag(rag_home, "search", "q", "--web", "--engine", "hello", path=(broken,))
    assert alone.returncode == 2
    assert "Unknown search engine 'hello'; choose one of: ddgs, searxng" in alone.stderr


# --- plugins that misbehave --------------------------------------------------------------

#: A web engine's class for throwaway plugins (`Engine()` finds one result).
ENGINE = """
class Engine:
    name = "throwaway"

    def search(self, query, max_results):
        from rag.web.base import WebResult

        return [WebResult(title="A throwaway result", url="https://x.example/", snippet="Hi.")]

    def cache_identity(self):
        return {}
"""

BOOM = """
from rag.core.errors import UsageError


def fail(*args, **kwargs):
    raise RuntimeError("kaboom")


def leave(*args, **kwargs):
    raise SystemExit(4)


def refuse(*args, **kwargs):
    raise UsageError("The picky engine needs a key: set RAG_PICKY_KEY.")


def register(registry):
    registry.register(registry.Part("engine", "boomengine", fail))
    registry.register(registry.Part("generator", "boomgen", fail))
    registry.register(registry.Part("engine", "exiting", leave))
    registry.register(registry.Part("engine", "picky", refuse))
"""
BOOM_SAYS = "from plugin 'boom' (pocketrag_boom:register) failed:"
UNINSTALL = "Update or uninstall that plugin."


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (
            ("search", "q", "--web", "--engine", "boomengine"),
            1,
            f"Search engine 'boomengine' {BOOM_SAYS} RuntimeError: kaboom. {UNINSTALL}",
        ),
        (
            ("ask", "q", "-m", "boomgen:x"),
            1,
            f"Model prefix 'boomgen' {BOOM_SAYS} RuntimeError: kaboom. {UNINSTALL}",
        ),
        (
            ("search", "q", "--web", "--engine", "exiting"),
            1,
            f"Search engine 'exiting' {BOOM_SAYS} SystemExit: 4. {UNINSTALL}",
        ),
        (  # a RagError raised on purpose is the plugin's message to the user, as it is
            ("search", "q", "--web", "--engine", "picky"),
            2,
            "The picky engine needs a key: set RAG_PICKY_KEY.",
        ),
    ],
)
def test_a_plugin_factory_that_raises_is_one_line_naming_it(
    rag_home: Path, tmp_path: Path, args: tuple[str, ...], code: int, line: str
) -> None:
    boom = plugin_package(tmp_path / "boom", "boom", BOOM)
    done = rag(rag_home, *args, path=(boom,))
    assert (done.returncode, done.stdout) == (code, "")
    assert done.stderr == f"Error: {line}\n"


def test_a_plugin_cannot_replace_a_built_in_part(rag_home: Path, tmp_path: Path) -> None:
    """A plugin claiming the `openai` model prefix: the built-in is kept, with one
    warning naming the plugin; the plugin's other parts still register."""
    claimer = plugin_package(
        tmp_path / "claimer",
        "claimer",
        ENGINE
        + """
def hijack(*args, **kwargs):
    raise RuntimeError("hijacked")


def register(registry):
    registry.register(registry.Part("generator", "openai", hijack))
    registry.register(registry.Part("engine", "claimed", lambda *args, **kwargs: Engine()))
""",
    )
    warning = (
        "Warning: plugin 'claimer' (pocketrag_claimer:register) registers the model prefix "
        "'openai', which is taken: pocketrag's own is kept and the plugin's left out."
    )
    url = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens: the built-in says so
    done = rag(rag_home, "ask", "q", "-m", f"openai:{url}#m", path=(claimer,))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        warning,
        f"Error: Cannot reach the model server at {url} (ConnectError: [Errno 111] Connection "
        "refused). Is it running, and is the URL the API base (usually ending in /v1)?",
    ]
    found = rag(rag_home, "search", "q", "--web", "--engine", "claimed", "--json", path=(claimer,))
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"][0]["title"] == "A throwaway result"
    assert found.stderr.splitlines() == [warning]


def test_a_plugin_that_exits_at_import_is_skipped(rag_home: Path, tmp_path: Path) -> None:
    quitter = plugin_package(tmp_path / "quitter", "quitter", "import sys\n\nsys.exit(3)\n")
    done = rag(rag_home, *ASK, path=(quitter, PLUGINS))
    assert done.returncode == 0, done.stderr
    assert 'Source 1 says: "Hello, the hello plugin answers: forty-two' in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "quitter" in line]
    assert warnings == [
        "Warning: plugin 'quitter' (pocketrag_quitter:register) failed to load and is "
        "skipped: SystemExit: 3"
    ]


CHATTY = (
    """
import os
import sys

print("chatty: print at import")
os.write(1, b"chatty: os.write at import\\n")
sys.stdout.write("chatty: a line left unfinished at import")


def make_engine(argument, settings, options):
    print("chatty: print in the factory")
    os.write(1, b"chatty: os.write in the factory\\n")
    return Engine()


def register(registry):
    print("chatty: print in register")
    registry.register(registry.Part("engine", "chatty", make_engine))
"""
    + ENGINE
)


def test_a_plugin_that_prints_cannot_corrupt_stdout(rag_home: Path, tmp_path: Path) -> None:
    """What a plugin prints (print, sys.stdout, os.write on descriptor 1) while it is
    imported, registers and makes its part goes to stderr: `--json` stays JSON."""
    chatty = plugin_package(tmp_path / "chatty", "chatty", CHATTY)
    done = rag(rag_home, "search", "q", "--web", "--engine", "chatty", "--json", path=(chatty,))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["title"] == "A throwaway result"
    for said in ("print at import", "os.write at import", "a line left unfinished at import"):
        assert f"chatty: {said}" in done.stderr
    for said in ("print in register", "print in the factory", "os.write in the factory"):
        assert f"chatty: {said}" in done.stderr
    # the plugin is loaded by another part's need (the hello engine): the same
    hello_json = ("search", "q", "--web", "--engine", "hello", "--json")
    hello = rag(rag_home, *hello_json, path=(chatty, PLUGINS))
    assert hello.returncode == 0, hello.stderr
    assert json.loads(hello.stdout)["results"][0]["title"] == "Hello from the hello plugin"
    assert "chatty: print at import" in hello.stderr


def test_a_plugin_that_prints_cannot_corrupt_the_mcp_protocol(
    rag_home: Path, tmp_path: Path
) -> None:
    """`rag mcp --index notes` loads the plugins before it serves (to open the index):
    stdout carries only JSON-RPC all the same."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "compost.md").write_text("# Compost\n\nTurn the compost heap every two weeks.\n")
    fake = {"RAG_EMBEDDER": "fake"}
    built = rag(rag_home, "index", str(docs), "--name", "notes", path=(TESTS, PLUGINS), **fake)
    assert built.returncode == 0, built.stderr
    chatty = plugin_package(tmp_path / "chatty", "chatty", CHATTY)
    env = child_environ()
    env.update(fake, RAG_HOME=str(rag_home), RAG_ENGINE="chatty")  # never the real ddgs
    env["PYTHONPATH"] = os.pathsep.join(map(str, (chatty, TESTS, PLUGINS, REPO)))
    server = RawServer(tmp_path, "--index", "notes", env=env)
    try:
        server.initialize()  # fails on a line that is not JSON
        server.write(call("find", "search_index", {"query": "compost heap"}))
        server.write(call("web", "search_web", {"query": "q"}))
        server.write(call("list", "list_indexes", {}))
        seen = server.until("find", "web", "list")
        assert seen["find"]["result"]["content"][0]["text"].startswith("[1] Compost — ")
        assert server.close() == 0
    finally:
        server.kill()
    assert "chatty: os.write at import" in server.stderr()


def test_a_local_model_is_made_without_scanning_the_installed_packages(
    rag_home: Path, tmp_path: Path
) -> None:
    """Before: the generator's options looked its part up again, which loaded every entry
    point (about 30 ms of importlib.metadata on each closed-book `rag ask`). A config
    section naming a plugin's part still finds it: only that scans."""
    code = (
        "import sys\n"
        "from rag.core import plugin_loading, plugins\n"
        "from rag.core.config import load_settings\n"
        "try:\n"
        "    plugins.create('generator', sys.argv[1], load_settings())\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, file=sys.stderr)\n"
        "print(plugin_loading._stage)\n"
    )
    env = child_environ()
    env.update(RAG_HOME=str(rag_home), PYTHONPATH=os.pathsep.join(map(str, (PLUGINS, REPO))))
    missing = str(tmp_path / "none.gguf")

    def stage() -> str:
        done = subprocess.run([sys.executable, "-c", code, missing], capture_output=True,
                              text=True, env=env, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert stage() == "1"  # the built-ins only
    (rag_home / "config.toml").write_text('[engines.hello]\ngreeting = "hi"\n')
    assert stage() == "1"  # another kind's section is not looked at
    (rag_home / "config.toml").write_text("[generators.echo]\n")
    assert stage() == "2"  # a section naming the plugin's generator: found by the scan


# --- the registry in this process -------------------------------------------------------


@pytest.fixture
def isolated() -> Iterator[None]:
    """This test's registrations, and plugins it runs, are undone after it."""
    plugins.parts("engine")  # loaded first, so the copy holds the built-ins
    parts = {kind: dict(named) for kind, named in plugin_loading.PARTS.items()}
    origins, failed = dict(plugin_loading.ORIGINS), list(plugin_loading.FAILED)
    yield
    for kind, named in plugin_loading.PARTS.items():
        named.clear()
        named.update(parts[kind])
    plugin_loading.ORIGINS.clear()
    plugin_loading.ORIGINS.update(origins)
    plugin_loading.FAILED[:] = failed


class Engine:
    def __init__(self, **options: object) -> None:
        self.options = options


def test_options_resolve_env_over_section_over_default(
    isolated: None, rag_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = (
        Option("size", int, 3, "how many", low=1, high=9),
        Option("mode", str, "fast", "how", choices=("fast", "slow")),
        Option("loud", bool, False),
    )
    plugins.register(Part("engine", "my-engine", lambda a, s, options: Engine(**options), options))
    settings = load_settings()
    assert plugins.part_options("engine", "my-engine", settings) == {
        "size": 3,
        "mode": "fast",
        "loud": False,
    }
    (rag_home / "config.toml").write_text('[engines.my-engine]\nsize = 5\nmode = "slow"\n')
    assert plugins.create("engine", "my-engine", settings).options == {
        "size": 5,
        "mode": "slow",
        "loud": False,
    }
    assert plugins.env_name("engine", "my-engine", "size") == "RAG_ENGINE_MY_ENGINE_SIZE"
    monkeypatch.setenv("RAG_ENGINE_MY_ENGINE_SIZE", "7")
    monkeypatch.setenv("RAG_ENGINE_MY_ENGINE_LOUD", "yes")
    assert plugins.part_options("engine", "my-engine", settings)["size"] == 7
    assert plugins.part_options("engine", "my-engine", settings)["loud"] is True
    monkeypatch.setenv("RAG_ENGINE_MY_ENGINE_SIZE", "10")
    with pytest.raises(UsageError, match="RAG_ENGINE_MY_ENGINE_SIZE: size must be between 1"):
        plugins.part_options("engine", "my-engine", settings)
    monkeypatch.delenv("RAG_ENGINE_MY_ENGINE_SIZE")
    (rag_home / "config.toml").write_text('[engines.my-engine]\nmode = "medium"\n')
    with pytest.raises(UsageError, match="mode must be one of fast, slow, got 'medium'"):
        plugins.part_options("engine", "my-engine", settings)


def test_an_unknown_name_lists_the_known_ones(isolated: None) -> None:
    with pytest.raises(UsageError, match=r"Unknown search engine 'bing'; choose one of: ddgs, "):
        plugins.get_part("engine", "bing")
    assert set(plugins.parts("reranker")) >= {"hybrid", "embedder", "bm25", "cross-encoder"}
    assert "openai" in plugins.parts("generator")
    assert "store" in plugins.KINDS


def test_a_failing_register_leaves_nothing_behind(
    isolated: None, caplog: pytest.LogCaptureFixture
) -> None:
    def half_done(registry: Registry) -> None:
        registry.register(Part("engine", "half", lambda *args, **kwargs: None))
        raise ImportError("needs a library that is not installed")

    def bad_default(registry: Registry) -> None:
        registry.register(
            Part("engine", "bad", lambda *a, **k: None, (Option("n", int, 0, low=1, high=2),))
        )

    plugin_loading.run_plugin("half", "half_plugin:register", lambda: half_done)
    plugin_loading.run_plugin("bad", "bad_plugin:register", lambda: bad_default)
    assert "half" not in plugins.parts("engine") and "bad" not in plugins.parts("engine")
    assert len(caplog.records) == 2
    assert "'half' (half_plugin:register) failed to load" in caplog.records[0].getMessage()
    assert "n must be between 1 and 2, got 0" in caplog.records[1].getMessage()


def test_one_rule_names_a_part_and_its_argument(isolated: None, register_part) -> None:  # noqa: ANN001
    """A spec is NAME or NAME:ARGUMENT; one naming no part goes whole to its kind's
    fallback (a local GGUF, a sentence-transformers model); every factory is called as
    factory(argument, settings, *extra, options=...)."""
    made: list[tuple] = []
    register_part("reranker", "by-arg", lambda *args, **kw: made.append(args), argument="X")
    register_part("engine", "plain", lambda *args, **kw: made.append((*args, kw)))
    settings = load_settings()
    plugins.create("reranker", "by-arg:some/model", settings)
    plugins.create("engine", "plain", settings)
    assert made == [("some/model", settings), ("", settings, {"options": {}})]
    with pytest.raises(UsageError, match=r"reranker 'by-arg' needs an argument: by-arg:X"):
        plugins.create("reranker", "by-arg", settings)
    with pytest.raises(UsageError, match=r"search engine 'plain' takes no argument"):
        plugins.create("engine", "plain:x", settings)
    gguf, argument = plugins.resolve("generator", "hf:owner/repo/model.gguf")
    assert (gguf.name, argument) == ("gguf", "hf:owner/repo/model.gguf")
    embedder, argument = plugins.resolve("embedder", "sentence-transformers/all-MiniLM-L6-v2")
    assert (embedder.name, argument) == ("sentence-transformers", embedder and argument)
    assert plugins.resolve("generator", "openai:http://127.0.0.1:1/v1#m")[1] == (
        "http://127.0.0.1:1/v1#m"
    )


def test_config_sections_must_be_tables(rag_home: Path) -> None:
    (rag_home / "config.toml").write_text('engines = "ddgs"\n')
    with pytest.raises(UsageError, match=r"engines must be sections such as \[engines.NAME\]"):
        load_settings()
    (rag_home / "config.toml").write_text("[engines]\nsearxng = 1\n")
    with pytest.raises(UsageError, match=r"engines.searxng must be a section"):
        load_settings()
    (rag_home / "config.toml").write_text('[stores.anything]\nurl = "x"\n')
    assert load_settings().k == 5  # checked when a store is used, once plugins are loaded
