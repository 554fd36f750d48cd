"""Stored conversations (rag.conversations): the SQLite store, its search and export, what
a kill or a damaged file leaves, and `rag history` / `rag chat --resume` in a subprocess
with a fake model plugged in as a throwaway plugin."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import child_environ
from throwaway_plugins import plugin_package

from rag.conversations import (
    ConversationNotFound,
    ConversationStore,
    ConversationsUnreadable,
    history_messages,
    markdown,
    parse_id,
)
from rag.conversations.values import MAX_TITLE_CHARS, MAX_TURN_CHARS
from rag.core.errors import UsageError
from rag.core.types import Message

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def answer(text: str = "Jane Austen wrote it [1].", **more: Any) -> dict[str, Any]:
    """A `rag ask --json` object with one source, of which the model read one span."""
    source = {
        "id": 1,
        "title": "Emma",
        "location": "https://emma.example/",
        "origin": "web",
        "score": 1.0,
        "text": "Emma is a novel by Jane Austen. It was published in 1815.",
        "spans": [[0, 31]],
        "rerank_score": None,
    }
    return {
        "question": "Who wrote Emma?",
        "answer": text,
        "model": "fake",
        "sources": [source],
        "dropped": [],
        "timings": {"prompt_tokens": 10, "total_s": 0.1},
        "warnings": [],
        **more,
    }


@pytest.fixture
def store(rag_home: Path) -> ConversationStore:
    return ConversationStore(rag_home / "conversations.sqlite")


def test_create_add_get_rename_delete(store: ConversationStore) -> None:
    made = store.create()
    assert made["title"] == "New conversation" and made["turns"] == 0
    assert made["created"].endswith("Z") and "T" in made["created"]
    ident, turn = store.add_turn(made["id"], "Who wrote Emma?", "Who wrote Emma?", answer())
    assert ident == made["id"]
    got = store.get(ident)
    assert got["title"] == "Who wrote Emma?"  # the first question names it
    assert [t["id"] for t in got["turns"]] == [turn]
    assert got["turns"][0]["answer"] == answer()  # the whole object, as it was
    assert got["turns"][0]["search_query"] == "Who wrote Emma?"
    store.add_turn(ident, "When did she die?", "When did Jane Austen die?", answer("In 1817."))
    assert store.get(ident)["title"] == "Who wrote Emma?"  # only the first names it
    assert store.rename(ident, "  Austen\n  questions ")["title"] == "Austen questions"
    assert store.summary(ident)["turns"] == 2
    assert store.delete(ident)["title"] == "Austen questions"
    with pytest.raises(ConversationNotFound):
        store.get(ident)
    assert store.find() == []
    with pytest.raises(ConversationNotFound):
        store.add_turn(ident, "q", "q", answer())


def test_a_given_title_is_kept_and_a_long_question_is_shortened(store: ConversationStore) -> None:
    named = store.create("My research")
    store.add_turn(named["id"], "Who wrote Emma?", "Who wrote Emma?", answer())
    assert store.summary(named["id"])["title"] == "My research"
    long = "What is compost, and how often should the heap be turned " + "in a wet summer " * 20
    ident, _ = store.add_turn(None, long, long, answer())  # None: a new conversation
    title = store.summary(ident)["title"]
    assert title.endswith("…") and len(title) <= 81 and title.startswith("What is compost")


@pytest.mark.parametrize(
    ("title", "why"),
    [
        ("x" * (MAX_TITLE_CHARS + 1), "at most 200"),
        ("   \n\t ", "empty"),
        ("bad \udcff byte", "not valid UTF-8"),
        (42, "must be text"),
    ],
)
def test_bad_titles_are_refused(store: ConversationStore, title: Any, why: str) -> None:
    made = store.create()
    with pytest.raises(UsageError, match=why):
        store.rename(made["id"], title)
    with pytest.raises(UsageError, match=why):
        store.create(title)
    assert store.summary(made["id"])["title"] == "New conversation"


def test_search_titles_and_turns(store: ConversationStore) -> None:
    emma, _ = store.add_turn(None, "Who wrote Emma?", "Who wrote Emma?", answer())
    compost = store.create("Garden café notes")["id"]
    store.add_turn(compost, "How often turn compost?", "compost turning", answer("Weekly [1]."))
    assert [c["id"] for c in store.find()] == [compost, emma]  # newest first
    assert [c["id"] for c in store.find("austen")] == [emma]  # in an answer
    assert [c["id"] for c in store.find("COMPO")] == [compost]  # a prefix, any case
    assert [c["id"] for c in store.find("cafe")] == [compost]  # in a title, no accent
    assert [c["id"] for c in store.find("weekly compost")] == [compost]
    assert store.find("weekly austen") == []  # every word, in one place
    assert [c["id"] for c in store.find("emma", limit=1)] == [emma]
    for hostile in ['"', "AND", "NEAR(a b", "*", "a OR", "title:x", "-x", "\ud800", "'); DROP"]:
        store.find(hostile)  # FTS5 syntax never reaches SQLite: no error
    assert store.find("!!! ???") == []
    with pytest.raises(UsageError):
        store.find("x" * 1001)
    with pytest.raises(UsageError):
        store.find("", limit=0)
    store.delete(compost)
    assert store.find("compost") == []  # its texts went with it


def test_ids() -> None:
    assert parse_id("7") == 7 and parse_id(" 12 ") == 12
    for bad in ["abc", "-1", "1.5", "", "../1", "1e3", "٣"]:  # the last: an Arabic-Indic 3
        with pytest.raises(UsageError, match="whole number"):
            parse_id(bad)
    with pytest.raises(ConversationNotFound):
        parse_id("9" * 30)  # too big for SQLite: names nothing


def test_odd_answers_are_stored_whole(store: ConversationStore) -> None:
    odd = answer("Bad \udcff text", timings={"tokens_per_s": float("nan"), "total_s": float("inf")})
    ident, _ = store.add_turn(None, "q \ud800", "q", odd)
    turn = store.get(ident)["turns"][0]
    assert turn["answer"]["answer"] == "Bad \ufffd text" and turn["question"] == "q \ufffd"
    assert turn["answer"]["timings"] == {"tokens_per_s": None, "total_s": None}
    assert store.find("bad")  # the answer is searchable
    # Over the bound, the candidates the model did not read keep only a start.
    dropped = [{"title": "t", "text": "w " * (MAX_TURN_CHARS // 2), "reason": "over"}]
    ident, _ = store.add_turn(ident, "big", "big", answer(dropped=dropped))
    stored = store.get(ident)["turns"][-1]["answer"]
    assert len(stored["dropped"][0]["text"]) == 500
    assert stored["sources"] == answer()["sources"]
    huge = answer(sources=[{**answer()["sources"][0], "text": "w" * MAX_TURN_CHARS}])
    with pytest.raises(UsageError, match="over the 4000000"):
        store.add_turn(ident, "huge", "huge", huge)
    assert len(store.get(ident)["turns"]) == 2


def test_a_full_conversation_takes_no_more_turns(
    store: ConversationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rag.conversations.store.MAX_TURNS", 2)
    ident, _ = store.add_turn(None, "one", "one", answer())
    store.add_turn(ident, "two", "two", answer())
    with pytest.raises(UsageError, match="has 2 turns, the most one keeps"):
        store.check_room(ident)
    with pytest.raises(UsageError, match="has 2 turns"):
        store.add_turn(ident, "three", "three", answer())
    assert [t["question"] for t in store.get(ident)["turns"]] == ["one", "two"]


def test_history_and_export(store: ConversationStore) -> None:
    ident, _ = store.add_turn(None, "Who wrote Emma?", "Who wrote Emma?", answer())
    hostile = answer(
        "She died in 1817 [1]. <script>alert(1)</script>",
        sources=[
            {
                **answer()["sources"][0],
                "title": "Evil\n# Heading",
                "text": "one\n## two\n<b>x</b>",
                "spans": None,
                "location": "file:///notes.md#3",
            }
        ],  # fmt: skip
    )
    store.add_turn(ident, "When did she die?", "When did Jane Austen die?", hostile)
    turns = store.get(ident)["turns"]
    assert history_messages(turns) == [
        Message("user", "Who wrote Emma?"),
        Message("assistant", "Jane Austen wrote it."),  # citations stripped, as rag.chat does
        Message("user", "When did she die?"),
        Message("assistant", "She died in 1817. <script>alert(1)</script>"),
    ]
    text = markdown(store.get(ident))
    assert text.startswith("# Who wrote Emma?\n")
    assert "## 1. Who wrote Emma?" in text and "## 2. When did she die?" in text
    assert "*Searched for:* When did Jane Austen die?" in text
    assert "[1] Emma — https://emma.example/" in text
    assert "> Emma is a novel by Jane Austen." in text  # the span the model read...
    assert "published in 1815" not in text  # ...not the rest of the source
    assert "[1] Evil # Heading — file:///notes.md#3" in text  # one line
    assert "> one\n> ## two\n> &lt;b&gt;x&lt;/b&gt;" in text  # quoted, inert
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert not any(line.startswith("# ") for line in text.splitlines()[1:])


def test_the_store_survives_a_new_process(store: ConversationStore, rag_home: Path) -> None:
    ident, _ = store.add_turn(None, "Who wrote Emma?", "Who wrote Emma?", answer())
    code = (
        "import json, sys; from rag.conversations import ConversationStore; "
        "s = ConversationStore(sys.argv[1]); "
        "s.add_turn(int(sys.argv[2]), 'When did she die?', 'q', {'answer': 'In 1817.'}); "
        "print(json.dumps(s.get(int(sys.argv[2]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(store.path), str(ident)],
        capture_output=True, text=True, env=child_env(rag_home), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [t["question"] for t in json.loads(done.stdout)["turns"]] == [
        "Who wrote Emma?",
        "When did she die?",
    ]
    assert len(ConversationStore(store.path).get(ident)["turns"]) == 2


def child_env(home: Path, **more: str) -> dict[str, str]:
    env = child_environ()
    env.update(RAG_HOME=str(home), PYTHONPATH=str(REPO), **more)
    return env


#: A child that writes big turns as fast as it can, saying each one it committed.
WRITER = """
import sys
from rag.conversations import ConversationStore
store = ConversationStore(sys.argv[1])
ident = int(sys.argv[2])
n = 0
while True:
    n += 1
    store.add_turn(ident, f"question {n}", "q", {"answer": f"answer {n} " + "x" * 200_000})
    print(n, flush=True)
"""

#: A child killed inside a turn's transaction: after its rows are written, before COMMIT.
STUCK = """
import sys, time
from rag.conversations import ConversationStore, store as module
def stuck(question):
    print("inside", flush=True)
    time.sleep(600)
module.default_title = stuck
ConversationStore(sys.argv[1]).add_turn(int(sys.argv[2]), "never stored", "q", {"answer": "x"})
"""


def killed(script: str, store: ConversationStore, ident: int, home: Path, lines: int) -> int:
    """Run `script` on the store, SIGKILL it once it has printed `lines` lines; the last."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(store.path), str(ident)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(home),
    )  # fmt: skip
    last = ""
    try:
        for _ in range(lines):
            last = child.stdout.readline().strip()  # type: ignore[union-attr]
            assert last, child.stderr.read()  # type: ignore[union-attr]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
    return int(last) if last.isdigit() else 0


def test_a_writer_killed_mid_write_loses_at_most_that_turn(
    store: ConversationStore, rag_home: Path
) -> None:
    ident, _ = store.add_turn(None, "Who wrote Emma?", "Who wrote Emma?", answer())
    committed = killed(WRITER, store, ident, rag_home, lines=5)
    turns = store.get(ident)["turns"]
    assert committed + 1 <= len(turns) <= committed + 2  # the first, then every committed one
    assert [t["question"] for t in turns[1 : committed + 1]] == [
        f"question {n}" for n in range(1, committed + 1)
    ]
    assert all(t["answer"]["answer"].startswith("answer ") for t in turns[1:])  # whole
    # Killed inside the transaction: that turn is gone, the rest is all there.
    before = len(store.get(ident)["turns"])
    killed(STUCK, store, ident, rag_home, lines=1)
    after = store.get(ident)
    assert len(after["turns"]) == before
    assert "never stored" not in json.dumps(after) and store.find("never") == []
    store.add_turn(ident, "still writable", "q", answer())
    assert store.get(ident)["turns"][-1]["question"] == "still writable"
    assert sqlite3.connect(store.path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_damaged_files_are_one_error_and_left_alone(
    store: ConversationStore, rag_home: Path
) -> None:
    store.path.write_bytes(b"this is not a database at all, just text " * 100)
    before = store.path.read_bytes()
    for call in (store.find, store.check, lambda: store.get(1), lambda: store.create("x")):
        with pytest.raises(ConversationsUnreadable, match="conversations.sqlite cannot be read"):
            call()
    assert store.path.read_bytes() == before  # never replaced
    # Not pocketrag's: another program's database at that path.
    store.path.unlink()
    with sqlite3.connect(store.path) as other:
        other.execute("CREATE TABLE accounts (id INTEGER)")
    with pytest.raises(ConversationsUnreadable, match="not pocketrag's conversations"):
        store.create()
    # Written by a newer pocketrag.
    store.path.unlink()
    store.create()
    with sqlite3.connect(store.path) as newer:
        newer.execute("PRAGMA user_version = 99")
    with pytest.raises(ConversationsUnreadable, match="newer pocketrag"):
        store.find()


def test_a_truncated_file_is_one_error(store: ConversationStore) -> None:
    for n in range(40):
        store.add_turn(None, f"question {n}", "q", answer("x " * 2000))
    data = store.path.read_bytes()
    store.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversationsUnreadable, match="cannot be read"):
        for ident in range(1, 41):  # some of what it held is gone
            store.get(ident)


# --- the CLI, in a subprocess ------------------------------------------------------------

#: A generator plugin (`--model history:`) whose answer says which questions it was shown
#: as history: "Earlier: Who wrote Emma?" (or "Earlier: none"), citing nothing.
HISTORY_MODEL = """
def register(registry):
    registry.register(registry.Part("generator", "history", make, argument="ANY"))

def make(argument, settings, options):
    return Remembering()

class Remembering:
    context_size = 4096
    model_name = "history"

    def count_tokens(self, text):
        return len(text.split())

    def count_prompt_tokens(self, messages):
        return sum(self.count_tokens(m.content) + 4 for m in messages)

    def generate(self, messages, *, max_tokens, temperature=0.0):
        from rag.core.types import Timings
        from rag.generators.base import Generation, TimedStream

        earlier = [m.content for m in messages[:-1] if m.role == "user"]
        text = "Earlier: " + (" | ".join(earlier) or "none")
        timings = Timings(prompt_tokens=self.count_prompt_tokens(messages))
        return Generation(TimedStream(timings).wrap(iter([(text, 3)])), timings)
"""


@pytest.fixture
def rag(rag_home: Path, tmp_path: Path) -> Any:
    """`rag ARGS` in a child, the `history:` model plugged in; stdin from `input`."""
    plugin = plugin_package(tmp_path / "plugin", "history", HISTORY_MODEL)
    code = "import sys; from rag.cli.launch import main; sys.argv = ['rag', *sys.argv[1:]]; main()"

    def run(*args: str, input: str = "") -> subprocess.CompletedProcess[str]:
        env = child_env(rag_home)
        env["PYTHONPATH"] = os.pathsep.join([str(plugin), str(REPO)])
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            input=input, capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    return run


def test_rag_chat_saves_and_resumes(rag: Any, rag_home: Path) -> None:
    first = rag("chat", "--model", "history:", input="Who wrote Emma?\n")
    assert first.returncode == 0, first.stderr
    assert "Earlier: none" in first.stdout
    assert "Saved as conversation 1 (rag chat --resume 1)" in first.stderr
    listed = rag("history")
    assert listed.returncode == 0 and "1 turn" in listed.stdout
    assert "Who wrote Emma?" in listed.stdout

    again = rag("chat", "--model", "history:", "--resume", "1", input="When did she die?\n")
    assert again.returncode == 0, again.stderr
    assert "Earlier: Who wrote Emma?" in again.stdout  # the stored turn was the history
    assert "continuing conversation 1" in again.stderr
    assert "Saved as conversation 1 (rag chat --resume 1)" in again.stderr
    shown = json.loads(rag("history", "show", "1", "--json").stdout)
    assert [t["question"] for t in shown["turns"]] == ["Who wrote Emma?", "When did she die?"]
    assert shown["turns"][1]["answer"]["answer"] == "Earlier: Who wrote Emma?"
    assert shown["title"] == "Who wrote Emma?"

    rows = json.loads(rag("history", "--json").stdout)["conversations"]
    assert [(r["id"], r["turns"]) for r in rows] == [(1, 2)]
    assert json.loads(rag("history", "--json", "-q", "emma").stdout)["conversations"]
    assert json.loads(rag("history", "--json", "-q", "nowhere").stdout)["conversations"] == []

    text = rag("history", "show", "1")
    assert "you> When did she die?" in text.stdout and "Earlier: Who wrote Emma?" in text.stdout
    out = rag_home / "emma.md"
    exported = rag("history", "export", "1", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert out.read_text().startswith("# Who wrote Emma?") and "## 2. When did she die?" in (
        out.read_text()
    )
    assert rag("history", "export", "1").stdout == out.read_text()
    renamed = rag("history", "rename", "1", "Austen")
    assert renamed.returncode == 0 and "'Austen'" in renamed.stdout
    removed = rag("history", "rm", "1")
    assert removed.returncode == 0 and "Removed conversation 1 (Austen)" in removed.stdout
    assert "No conversations yet" in rag("history").stderr


def test_rag_chat_no_save_and_reset(rag: Any) -> None:
    unsaved = rag("chat", "--model", "history:", "--no-save", input="Who wrote Emma?\n")
    assert unsaved.returncode == 0 and "Saved as" not in unsaved.stderr
    nothing = rag("chat", "--model", "history:", input="/exit\n")
    assert nothing.returncode == 0 and "Saved as" not in nothing.stderr
    assert json.loads(rag("history", "--json").stdout) == {"conversations": []}
    two = rag("chat", "--model", "history:", input="one?\n/reset\ntwo?\n")
    assert "Saved as conversation 1 " in two.stderr and "Saved as conversation 2 " in two.stderr
    rows = json.loads(rag("history", "--json").stdout)["conversations"]
    assert sorted((r["title"], r["turns"]) for r in rows) == [("one?", 1), ("two?", 1)]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("history", "show", "abc"), 2, "A conversation id is a whole number"),
        (("history", "show", "99"), 2, "No conversation 99"),
        (("history", "rm", "--", "-1"), 2, "whole number"),
        (("history", "rm", "99999999999999999999999999"), 2, "No conversation"),
        (("history", "rename", "1", "x" * 300), 2, "at most 200"),
        (("history", "export", "../../etc/passwd"), 2, "whole number"),
        (("history", "--limit", "0"), 2, "limit must be"),
        (("chat", "--model", "history:", "--resume", "5"), 2, "No conversation 5"),
        (("chat", "--model", "history:", "--resume", "x"), 2, "whole number"),
    ],
)
def test_rag_history_bad_ids_are_one_line(
    rag: Any, args: tuple[str, ...], code: int, message: str
) -> None:
    made = rag("chat", "--model", "history:", input="Who wrote Emma?\n")
    assert made.returncode == 0, made.stderr
    done = rag(*args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_damaged_file_stops_rag_history_and_chat_with_one_line(rag: Any, rag_home: Path) -> None:
    path = rag_home / "conversations.sqlite"
    path.write_bytes(b"\x00garbage" * 512)
    for args in (("history",), ("history", "show", "1"), ("chat", "--model", "history:")):
        done = rag(*args, input="Who wrote Emma?\n")
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in done.stderr
    assert "--no-save" in done.stderr
    assert path.read_bytes() == b"\x00garbage" * 512
    unsaved = rag("chat", "--model", "history:", "--no-save", input="Who wrote Emma?\n")
    assert unsaved.returncode == 0 and "Earlier: none" in unsaved.stdout
