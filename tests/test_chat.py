"""`rag chat`: history, follow-ups rewritten into standalone search queries, the REPL on stdin."""

from __future__ import annotations

import json

import pytest
from conftest import FakeGenerator, FakeRetriever
from typer.testing import CliRunner

from rag.chat import ChatSession, clean_query
from rag.cli.app import app
from rag.core.config import Settings
from rag.core.errors import SearchUnavailable
from rag.core.types import Message, Passage

runner = CliRunner()
PASSAGES = [Passage("Emma is a novel by Jane Austen.", "Emma", "https://emma.example/", "web", 1.0)]


def scripted(messages: list[Message]) -> str:
    """Rewrites follow-ups using the conversation it was shown; answers everything else."""
    last = messages[-1].content
    if "Standalone search query:" in last:
        assert "User: Who wrote Emma?" in last, "the rewriter must see the conversation"
        assert "[1]" not in last, "old citations are stripped from the history"
        return 'Query: "When did Jane Austen die?"\nextra line'
    if "When did she die" in last:
        return "She died in 1817 [1]."
    return "Jane Austen wrote it [1]."


def test_follow_up_is_rewritten_for_search_but_asked_as_is() -> None:
    generator = FakeGenerator(reply=scripted)
    web = FakeRetriever("web", PASSAGES)
    session = ChatSession(Settings(), retrievers=[web], generator=generator)
    first = session.ask("Who wrote Emma?")
    assert first.search_query == "Who wrote Emma?"  # first turn: nothing to resolve
    second = session.ask("When did she die?")
    assert second.search_query == "When did Jane Austen die?"
    assert web.queries == ["Who wrote Emma?", "When did Jane Austen die?"]
    assert second.answer.answer == "She died in 1817 [1]."
    # the answering prompt has the earlier turn and the original follow-up
    prompt = generator.calls[-1]
    assert Message("user", "Who wrote Emma?") in prompt
    assert Message("assistant", "Jane Austen wrote it.") in prompt
    assert "Question: When did she die?" in prompt[-1].content
    assert len(session.history) == 4


def test_history_is_trimmed_and_reset() -> None:
    generator = FakeGenerator()
    session = ChatSession(Settings(), retrievers=[], generator=generator, max_history_turns=2)
    for i in range(5):
        turn = session.ask(f"Question {i}?")
        assert turn.search_query == f"Question {i}?"  # no sources: no rewriting
    assert [m.content for m in session.history if m.role == "user"] == [
        "Question 3?",
        "Question 4?",
    ]
    session.reset()
    assert session.history == []


def test_unusable_rewrite_falls_back_to_the_question() -> None:
    generator = FakeGenerator(reply=lambda m: "   ")
    session = ChatSession(
        Settings(), retrievers=[FakeRetriever("web", PASSAGES)], generator=generator
    )
    session.history = [Message("user", "a"), Message("assistant", "b")]
    assert session.rewrite_query("and then?") == "and then?"


@pytest.mark.parametrize(
    ("reply", "query"),
    [
        ("When did Jane Austen die?", "When did Jane Austen die?"),
        ('  "Jane Austen death date"  ', "Jane Austen death date"),
        ("Standalone search query: Emma publication year\nBecause...", "Emma publication year"),
        ("\n\nsearch query: `python gil`", "python gil"),
        ("", ""),
    ],
)
def test_clean_query(reply: str, query: str) -> None:
    assert clean_query(reply) == query


def test_cli_chat_reads_turns_from_stdin(
    fake_model: FakeGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_model.reply = scripted
    web = FakeRetriever("web", PASSAGES)
    monkeypatch.setattr("rag.sources.build_retriever", lambda spec, settings: web)
    result = runner.invoke(
        app,
        ["chat", "--search", "--model", "fake:"],
        input="Who wrote Emma?\n\n/reset\nWho wrote Emma?\nWhen did she die?\n/exit\nnever asked\n",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("Jane Austen wrote it [1].") == 2
    assert "She died in 1817 [1]." in result.stdout
    assert "[1] Emma — https://emma.example/" in result.stdout
    assert "(searching for: When did Jane Austen die?)" in result.stderr
    assert "(conversation forgotten)" in result.stderr
    assert web.queries == ["Who wrote Emma?", "Who wrote Emma?", "When did Jane Austen die?"]
    assert "never asked" not in result.stdout


def test_cli_chat_json_lines(fake_model: FakeGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_model.reply = scripted
    monkeypatch.setattr(
        "rag.sources.build_retriever", lambda spec, settings: FakeRetriever("web", PASSAGES)
    )
    result = runner.invoke(
        app,
        ["chat", "--search", "--model", "fake:", "--json"],
        input="Who wrote Emma?\nWhen did she die?\n",
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["search_query"] for line in lines] == [
        "Who wrote Emma?",
        "When did Jane Austen die?",
    ]
    assert lines[1]["sources"][0]["id"] == 1
    assert lines[1]["answer"] == "She died in 1817 [1]."


def test_cli_chat_web_down_reports_each_turn_and_exits_1(
    fake_model: FakeGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = FakeRetriever(
        "web", error=SearchUnavailable("Web search failed (engine ddgs): timed out.")
    )
    monkeypatch.setattr("rag.sources.build_retriever", lambda spec, settings: down)
    result = runner.invoke(app, ["chat", "--search", "--model", "fake:"], input="one?\ntwo?\n")
    assert result.exit_code == 1
    assert result.stderr.count("engine ddgs") == 2
    assert "Traceback" not in result.stderr
    assert fake_model.calls == []


@pytest.mark.parametrize(
    ("rewrite", "kept"),
    [
        ("When did Jane Austen die?", True),
        ("In what year did Jane Austen die?", True),
        (
            "The dragon carries a golden sword forged by ancient elves in the northern mountains.",
            False,
        ),
        ("", False),
    ],
)
def test_only_plausible_rewrites_are_searched(rewrite: str, kept: bool) -> None:
    from rag.chat import plausible_rewrite

    conversation = "User: Who wrote Emma?\nAssistant: Jane Austen wrote Emma."
    assert plausible_rewrite(rewrite, "When did she die?", conversation) is kept


def test_a_line_that_is_not_utf8_is_refused_and_the_chat_goes_on(fake_model) -> None:
    result = runner.invoke(app, ["chat", "--model", "fake:"], input=b"Who \xff?\nWho wrote Emma?\n")
    assert result.exit_code == 0, result.output
    assert "not valid UTF-8 text (byte b'\\xff' at character 5)" in result.stderr
    assert "Jane Austen wrote it" in result.stdout and "Traceback" not in result.output
    assert len(fake_model.calls) == 1


class CharCounter(FakeGenerator):
    """Counts a token per 3 characters: text without spaces is long too (the fake's
    whitespace words would make one 40,000-character word a single token)."""

    def count_tokens(self, text: str) -> int:
        return (len(text) + 2) // 3

    def count_prompt_tokens(self, messages) -> int:  # noqa: ANN001 - as the fake's
        return sum(self.count_tokens(m.content) + 4 for m in messages)


def pair(user: str, assistant: str) -> list[Message]:
    return [Message("user", user), Message("assistant", assistant)]


@pytest.mark.parametrize(
    ("generator", "history"),
    [
        (FakeGenerator(), pair("w " * 15_000, "a " * 15_000)),  # the HTTP pair
        (FakeGenerator(), pair("Who wrote Emma?", "a " * 15_000)),
        (FakeGenerator(), pair("w " * 15_000, "Jane Austen.")),
        (FakeGenerator(), pair("one two", "three") * 3 + pair("w " * 3_000, "a " * 3_000)),
        (FakeGenerator(), [Message("user", "w " * 9_000)]),
        (FakeGenerator(), [Message("assistant", "a " * 900), *pair("u " * 900, "b " * 900)]),
        (CharCounter(), pair("x" * 40_000, "y" * 40_000)),
        (FakeGenerator(context_size=64), pair("w " * 500, "a " * 500)),
        (FakeGenerator(context_size=24), pair("w " * 500, "a " * 500)),
    ],
)
def test_trimmed_history_is_at_most_a_quarter_of_the_context(
    generator: FakeGenerator, history: list[Message]
) -> None:
    """Even when the last turn alone is over the budget: its messages are cut, each keeping
    its start, and a message that fits is kept whole."""
    before = list(history)
    session = ChatSession(Settings(), retrievers=[], generator=generator, history=history)
    session.trim_history()
    limit = generator.context_size // 4
    assert generator.count_prompt_tokens(session.history) <= limit
    assert session.history is history  # trimmed in place: a caller's list stays current
    if generator.context_size >= 64:
        assert session.history, "something of the last turn is kept"
        last = before[-len(session.history) :]
        assert [m.role for m in session.history] == [m.role for m in last]
        for kept, original in zip(session.history, last, strict=True):
            body = kept.content.removesuffix(" …").rstrip()
            assert original.content.startswith(body)
            if generator.count_tokens(original.content) < limit // 4:
                assert kept.content == original.content  # short ones whole


def test_rag_chat_after_a_long_turn_sends_at_most_a_quarter_of_the_context(
    fake_model: FakeGenerator,
) -> None:
    """The REPL: a long first question (1,500 words) is history for the next one, cut."""
    long_question = "Please read: " + "word " * 1_500 + "?"
    result = runner.invoke(app, ["chat", "--model", "fake:"], input=f"{long_question}\nAnd then?\n")
    assert result.exit_code == 0, result.output
    assert len(fake_model.calls) == 2
    history = [m for m in fake_model.calls[-1][:-1] if m.role != "system"]
    assert [m.role for m in history] == ["user", "assistant"]
    assert fake_model.count_prompt_tokens(history) <= fake_model.context_size // 4
    assert history[0].content.startswith("Please read: word word")
