"""Metrics against hand-checked cases (each expected value worked out by hand in the comment)."""

from __future__ import annotations

import pytest

from evals.metrics import (
    answer_in_passages,
    bootstrap_ci,
    contains_answer,
    exact_match,
    mcnemar_exact,
    normalize_answer,
    token_f1,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Quick, brown fox!", "quick brown fox"),
        ("An apple a day", "apple day"),
        ("Theatre of the absurd", "theatre of absurd"),  # 'the' inside a word survives
        ("  U.S.A.  ", "usa"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_is_normalised_and_takes_any_gold() -> None:
    assert exact_match("the Eiffel Tower.", ["Eiffel Tower"]) == 1.0
    assert exact_match("Paris", ["London", "paris"]) == 1.0
    assert exact_match("Eiffel Tower in Paris", ["Eiffel Tower"]) == 0.0
    assert exact_match("anything", []) == 0.0


def test_token_f1_hand_checked() -> None:
    # pred {jane, austen, wrote, it}, gold {jane, austen}: P = 2/4, R = 2/2, F1 = 2/3
    assert token_f1("Jane Austen wrote it", ["Jane Austen"]) == pytest.approx(2 / 3)
    # best over golds: "Austen" alone gives P=1/1 R=1/2 -> 2/3 against "Jane Austen",
    # but 1.0 against the gold "Austen"
    assert token_f1("Austen", ["Jane Austen", "Austen"]) == pytest.approx(1.0)
    assert token_f1("Austen", ["Jane Austen"]) == pytest.approx(2 / 3)
    # pred {red:2, blue:1}, gold {red:1, blue:2}: overlap 2 of 3 each way -> P = R = F1 = 2/3
    assert token_f1("red red blue", ["red blue blue"]) == pytest.approx(2 / 3)
    assert token_f1("nothing shared", ["Jane Austen"]) == 0.0
    assert token_f1("the", ["a"]) == 1.0  # both normalise to empty: SQuAD counts that equal


def test_contains_answer_uses_whole_normalised_tokens() -> None:
    assert contains_answer("It was written by Jane Austen, in 1815.", ["jane austen"]) == 1.0
    assert contains_answer("It was written by Charlotte Brontë.", ["Jane Austen"]) == 0.0
    assert contains_answer("The year 1972.", ["1"]) == 0.0  # '1' is not a token of '1972'
    assert contains_answer("In 1972.", ["December 1972", "1972"]) == 1.0
    assert contains_answer("", ["Jane Austen"]) == 0.0
    assert contains_answer("the", ["The"]) == 0.0  # a gold that normalises to nothing never matches


def test_answer_in_passages_is_hit_at_k() -> None:
    passages = ["Canberra is the capital city of Australia.", "Sydney is the largest city."]
    assert answer_in_passages(passages, ["Canberra"]) == 1.0
    assert answer_in_passages(passages, ["Melbourne"]) == 0.0
    assert answer_in_passages([], ["Canberra"]) == 0.0


def test_bootstrap_ci_bounds_and_determinism() -> None:
    assert bootstrap_ci([1.0] * 20) == (1.0, 1.0)
    half = [0.0, 1.0] * 50
    low, high = bootstrap_ci(half)
    # the normal approximation gives 0.5 +/- 1.96 * sqrt(0.25 / 100) = 0.5 +/- 0.098
    assert 0.38 <= low <= 0.42 and 0.58 <= high <= 0.62
    assert bootstrap_ci(half) == (low, high)
    assert all(x != x for x in bootstrap_ci([]))  # NaN for no data


@pytest.mark.parametrize(
    ("baseline", "other", "b", "c", "p"),
    [
        # 6 discordant pairs all favouring `other`: p = 2 * (1/2)^6 = 0.03125
        ([0] * 6 + [1] * 4, [1] * 6 + [1] * 4, 0, 6, 0.03125),
        # b=1, c=5: p = 2 * (C(6,0) + C(6,1)) / 2^6 = 2 * 7 / 64
        ([1, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 1], 1, 5, 14 / 64),
        # b=c=2: p = min(1, 2 * 11/16) = 1
        ([1, 1, 0, 0], [0, 0, 1, 1], 2, 2, 1.0),
        # no discordant pairs: nothing to test, p = 1
        ([1, 0, 1], [1, 0, 1], 0, 0, 1.0),
        # b=0, c=10: p = 2 / 1024
        ([0] * 10, [1] * 10, 0, 10, 2 / 1024),
    ],
)
def test_mcnemar_exact_hand_checked(baseline, other, b, c, p) -> None:
    result = mcnemar_exact(baseline, other)
    assert (result.b, result.c) == (b, c)
    assert result.p_value == pytest.approx(p)
    assert result.n == len(baseline)


def test_mcnemar_needs_pairs() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact([1, 0], [1])
