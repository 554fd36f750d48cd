"""Evidence selection: sentence splitting, rerankers, the budget, the cut and the spans."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from conftest import returning

from rag.core.config import load_settings
from rag.core.errors import UsageError
from rag.core.types import Passage, Source
from rag.evidence import candidates_wanted, choose_evidence
from rag.evidence.rerankers import bm25_scores, get_reranker, terms
from rag.evidence.selection import SelectionPolicy, budget_for, select_evidence
from rag.evidence.sentences import MAX_SENTENCE_CHARS, split_sentences


def words(text: str) -> int:
    return len(text.split())


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def test_sentences_split_at_stops_but_not_at_abbreviations_or_decimals() -> None:
    text = (
        'The U.S. Army was founded in 1775. Dr. Smith said "Hello." Then he left! '
        "It cost 3.5 million. J. R. R. Tolkien wrote it.\n\nA heading\nand a line"
    )
    assert sentences(text) == [
        "The U.S. Army was founded in 1775.",
        'Dr. Smith said "Hello."',
        "Then he left!",
        "It cost 3.5 million.",
        "J. R. R. Tolkien wrote it.",
        "A heading\nand a line",
    ]


def test_spans_index_the_original_text_and_long_runs_are_cut() -> None:
    text = "  First one.   Second one.  " + "Word " * 400
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans[:2]] == ["First one.", "Second one."]
    assert all(b - a <= MAX_SENTENCE_CHARS for a, b in spans)
    assert "".join(text[a:b] for a, b in spans[2:]).replace(" ", "") == "Word" * 400
    assert split_sentences("") == [] and split_sentences(" \n ") == []


def test_bm25_prefers_the_rare_question_words() -> None:
    texts = [
        "The river flows through the city.",
        "Emma was written by Jane Austen in 1815.",
        "The city has a river and many bridges.",
    ]
    scores = bm25_scores("Who wrote the novel Emma?", texts)
    assert scores.index(max(scores)) == 1
    assert bm25_scores("who is the", texts) == [0.0, 0.0, 0.0]  # only stopwords
    assert terms("Ships of the Navies") == ["ship", "navie"]


class ByWord:
    """A reranker that scores a text by how often it holds `word`: predictable in tests."""

    name = "by-word"

    def __init__(self, word: str) -> None:
        self.word = word
        self.calls = 0

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        self.calls += 1
        return [float(t.lower().count(self.word)) for t in texts]


def passage(i: int, text: str) -> Passage:
    return Passage(text, f"Title {i}", f"/doc/{i}#0", "index:t", score=1.0 / (i + 1))


FILLER = " ".join(f"Filler sentence number {n} says nothing at all." for n in range(8))


def test_the_answer_sentence_of_a_low_ranked_passage_is_kept_within_budget() -> None:
    candidates = [passage(i, FILLER) for i in range(4)]
    candidates.append(passage(4, FILLER + " The capital of Freedonia is Fredville. " + FILLER))
    selection = select_evidence(
        "What is the capital of Freedonia?",
        candidates,
        reranker=ByWord("freedonia"),
        policy=SelectionPolicy(budget=40, cut=1.0, prior=0.0),
        count_tokens=words,
    )
    assert len(selection.passages) == 1  # the cut dropped every filler sentence
    kept = selection.passages[0]
    assert kept.title == "Title 4" and kept.text == "The capital of Freedonia is Fredville."
    ((start, end),) = kept.meta["spans"]
    assert kept.meta["full_text"][start:end] == kept.text
    assert selection.ranked[0].title == "Title 4"  # reranked first
    assert selection.ranked[0].meta["rerank_score"] > selection.ranked[1].meta["rerank_score"]
    source = Source.from_passage(1, kept)
    assert source.text == kept.meta["full_text"] and source.shown == kept.text


def test_without_a_cut_the_budget_bounds_the_evidence_and_pieces_keep_their_order() -> None:
    text = "Alpha one. Beta two. Alpha three. Gamma four. Alpha five."
    selection = select_evidence(
        "alpha?",
        [passage(0, text)],
        reranker=ByWord("alpha"),
        policy=SelectionPolicy(budget=16, cut=0.0, prior=0.0, mode="sentences"),
        count_tokens=words,
    )
    (kept,) = selection.passages
    block_cost = words('<source id="1" title="Title 0">\n\n</source>') + 2
    assert sum(words(kept.text[a:b]) + 1 for a, b in kept.meta["spans"]) + block_cost <= 16
    assert kept.text.startswith("Alpha one.") and "Alpha five." in kept.text
    assert " … " in kept.text  # a left-out sentence between two kept ones is marked


def test_windows_grow_around_the_best_sentence_toward_the_better_neighbour() -> None:
    text = "Zero here. One alpha. Two alpha alpha. Three alpha. Four here. Five alpha alpha alpha."
    selection = select_evidence(
        "alpha?",
        [passage(0, text)],
        reranker=ByWord("alpha"),
        policy=SelectionPolicy(budget=18, cut=0.0, prior=0.0),
        count_tokens=words,
    )
    (kept,) = selection.passages
    # the best sentence (Five), then its only neighbour (Four), then Three: one run, no gap
    assert kept.text == "Three alpha. Four here. Five alpha alpha alpha."
    assert len(kept.meta["spans"]) == 1


def test_order_and_the_source_limit() -> None:
    candidates = [passage(i, f"Word{i} " * (i + 1) + "end.") for i in range(4)]

    def run(**policy: object) -> list[str]:
        return [
            p.title
            for p in select_evidence(
                "q",
                candidates,
                reranker=ByWord("word"),
                policy=SelectionPolicy(budget=10_000, cut=0.0, prior=0.0, **policy),
                count_tokens=words,
            ).passages
        ]

    assert run() == ["Title 3", "Title 2", "Title 1", "Title 0"]
    assert run(order="best-last") == ["Title 0", "Title 1", "Title 2", "Title 3"]
    assert run(max_sources=2) == ["Title 3", "Title 2"]


def test_budget_grows_with_model_size() -> None:
    sizes = [135_000_000, 1_000_000_000, 3_800_000_000, 70_000_000_000]
    budgets = [budget_for(n) for n in sizes]
    assert budgets == sorted(budgets) and budgets[0] < budgets[-1]
    assert budget_for(None) == budget_for(3_800_000_000)


def test_no_rerank_keeps_order_and_whole_passages() -> None:
    settings = load_settings(reranker="none", k=2, evidence_tokens=10_000)
    candidates = [passage(i, f"Text {i} is here.") for i in range(5)]
    selection = choose_evidence(
        "q", candidates, settings=settings, parameters=None, room=10_000, count_tokens=words
    )
    assert [p.text for p in selection.passages] == ["Text 0 is here.", "Text 1 is here."]
    assert candidates_wanted(settings) == 2
    assert candidates_wanted(load_settings(k=2)) == 10  # a reranker reads more candidates


def test_registered_reranker_is_used_by_name(register_part) -> None:  # noqa: ANN001
    reranker = ByWord("b")
    register_part("reranker", "test-by-word", returning(reranker))
    settings = load_settings(reranker="test-by-word", evidence_tokens=10_000)
    candidates = [passage(0, "a a a."), passage(1, "b b b.")]
    selection = choose_evidence(
        "q", candidates, settings=settings, parameters=None, room=10_000, count_tokens=words
    )
    assert reranker.calls == 1
    assert all("rerank_score" in p.meta for p in selection.ranked)


def test_unknown_reranker_names_the_setting() -> None:
    with pytest.raises(UsageError, match="RAG_RERANKER"):
        get_reranker("no-such-reranker", load_settings())
    with pytest.raises(UsageError, match="cross-encoder"):
        get_reranker("cross-encoder:", load_settings())


def test_a_looping_answer_stops_and_keeps_the_phrase_once() -> None:
    from rag.core.types import Timings
    from rag.generators.base import Generation, loop_start

    produced: list[str] = []

    def chunks():
        for word in ["Philly"] + [" Philly"] * 500:
            produced.append(word)
            yield word

    generation = Generation(chunks(), Timings())
    assert generation.text == "Philly" and generation.looped
    assert len(produced) == 4  # it stopped at the fourth copy, not after 500
    assert loop_start("The answer is 42. " * 4) == len("The answer is 42. ")
    for fine in ("Jane Austen [1].", "very very good", "1, 2, 3, 4, 5", "ha ha ha"):
        assert loop_start(fine) is None


def test_hostile_sources_a_huge_title_and_a_megabyte_page_still_give_evidence() -> None:
    page = "Emma was written by Jane Austen. " + "Filler words go on and on. " * 80_000
    candidates = [Passage(page, "T" * 5000, "https://a.example/", "web", 1.0)]
    selection = select_evidence(
        "Who wrote Emma?",
        candidates,
        reranker=ByWord("emma"),
        policy=SelectionPolicy(budget=60, cut=0.0),
        count_tokens=words,
    )
    (kept,) = selection.passages
    assert kept.text.startswith("Emma was written by Jane Austen.")
    assert kept.meta["full_text"] == page.strip()  # spans index the whole page


def test_sources_left_out_of_the_reranker_shortlist_have_no_score_not_infinity() -> None:
    import json

    candidates = [passage(i, f"Alpha {i} one. Beta {i} two.") for i in range(3)]
    selection = select_evidence(
        "alpha?",
        candidates,
        reranker=ByWord("alpha"),
        policy=SelectionPolicy(budget=10_000, cut=0.0, shortlist=2),
        count_tokens=words,
    )
    scores = [p.meta["rerank_score"] for p in selection.ranked]
    assert None in scores and all(s is None or s == s for s in scores)
    sources = [Source.from_passage(i, p).as_dict() for i, p in enumerate(selection.ranked, 1)]
    json.dumps(sources, allow_nan=False)  # what `rag search --json` prints
