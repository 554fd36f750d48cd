"""The loop cut: an answer that ends in four copies of one phrase stops there, whatever the
phrase's length, and keeps it once; an answer that only reuses words runs to its end."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from conftest import FakeGenerator
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from rag.cli.app import app
from rag.core.types import Timings
from rag.generators.base import Generation, LoopWatch, loop_start

PHRASE_18 = (
    "The report says the river floods every spring because the melting snow from the "
    "northern hills arrives early."
)
PHRASE_40 = (
    "In the archive of the old town hall the clerk kept a ledger of every marriage, "
    "every birth and every death, and when the fire of 1871 reached the building the "
    "ledger was the first thing the clerk carried out into the square."
)
# Reuses its words all the time, and even whole runs of them, but never four times in a row.
PROSE = " ".join(
    f"Paragraph {i} says that the {w} of the river is not the {v} of the sea, and the "
    f"{w} of the {v} is what the town remembers."
    for i, (w, v) in enumerate(
        [("colour", "taste"), ("sound", "colour"), ("taste", "sound"), ("colour", "sound")] * 25
    )
)


def word_pieces(text: str, copies: int) -> Iterator[str]:
    """`text` `copies` times over, in sub-word pieces as a tokenizer streams them."""
    for n in range(copies):
        for i, word in enumerate(text.split(" ")):
            lead = "" if n == 0 and i == 0 else " "
            half = max(1, len(word) // 2)
            yield lead + word[:half]
            if word[half:]:
                yield word[half:]


@pytest.mark.parametrize("phrase", [PHRASE_18, PHRASE_40], ids=["18 words", "40 words"])
def test_a_long_phrase_repeating_ends_the_stream_at_its_fourth_copy(phrase: str) -> None:
    produced: list[str] = []

    def chunks() -> Iterator[str]:
        for piece in word_pieces(phrase, 50):
            produced.append(piece)
            yield piece

    generation = Generation(chunks(), Timings())
    assert generation.text == phrase and generation.looped
    assert len(produced) == len(list(word_pieces(phrase, 4)))  # not 50 copies
    assert loop_start(" ".join([phrase] * 4)) == len(phrase) + 1
    assert loop_start(" ".join([phrase] * 3)) is None


def test_reused_words_and_runs_are_not_a_loop() -> None:
    generation = Generation(word_pieces(PROSE, 1), Timings())
    assert generation.text == PROSE and not generation.looped
    assert loop_start(PROSE) is None
    assert loop_start(PROSE + " " + " ".join([PHRASE_40] * 3)) is None
    assert loop_start(PROSE + " " + " ".join([PHRASE_40] * 4)) == len(PROSE) + len(PHRASE_40) + 2


def shortest_loop(text: str) -> int | None:
    """The loop cut by its definition: every phrase length, checked the slow way."""
    spans = list(re.finditer(r"\S+", text))
    words = [m.group() for m in spans]
    n = len(words)
    for size in range(1, n // 4 + 1):
        if words[n - 4 * size :] == words[n - 4 * size : n - 3 * size] * 4:
            return spans[n - 3 * size].start()
    return None


@given(st.lists(st.sampled_from(["ab", "b", "a", " ", "  "]), max_size=120))
def test_piece_by_piece_it_agrees_with_the_definition(pieces: list[str]) -> None:
    watch, text = LoopWatch(), ""
    for piece in pieces:
        text += piece
        cut = watch.feed(piece)
        assert cut == (shortest_loop(text) if piece.strip() else None), text
        if cut is not None:
            break


def test_rag_ask_stops_a_model_looping_on_an_18_word_phrase(fake_model: FakeGenerator) -> None:
    fake_model.reply = lambda messages: " ".join([PHRASE_18] * 30)
    result = CliRunner().invoke(
        app,
        ["ask", "Why does the river flood?", "--model", "fake:", "--max-tokens", "600", "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["answer"] == PHRASE_18
    assert payload["timings"]["completion_tokens"] == 18 * 4  # not all 540 words
