"""Fusion of several sources' rankings: fair by rank, duplicates merged, agreement rewarded."""

from __future__ import annotations

from rag.ranking import merge_ranked
from rag.types import Passage


def p(text: str, location: str, origin: str, score: float = 0.0) -> Passage:
    return Passage(text=text, title=location, location=location, origin=origin, score=score)


WEB = [
    p(f"web passage number {i} about topic w{i}", f"https://w{i}.example/", "web", 1 / i)
    for i in range(1, 4)
]
BM25 = [
    p(f"local note {i} about subject n{i}", f"notes/{i}.md#0", "index:notes", 30.0 - i)
    for i in range(1, 4)
]
COSINE = [
    p(f"dense chunk {i} on matter d{i}", f"docs/{i}.md#0", "index:docs", 0.4 - i / 100)
    for i in range(1, 4)
]


def test_scores_on_different_scales_do_not_decide_sources_alternate() -> None:
    merged = merge_ranked([BM25, WEB])
    # BM25 scores around 28 do not push every local passage above the web's 1.0.
    assert [m.location for m in merged] == [
        "notes/1.md#0",
        "https://w1.example/",
        "notes/2.md#0",
        "https://w2.example/",
        "notes/3.md#0",
        "https://w3.example/",
    ]
    merged = merge_ranked([WEB, COSINE])
    assert [m.origin for m in merged] == ["web", "index:docs"] * 3


def test_own_scores_stay_and_fused_scores_are_in_meta() -> None:
    merged = merge_ranked([BM25, WEB])
    assert merged[0].score == 29.0
    assert merged[1].score == 1.0
    fused = [m.meta["fused_score"] for m in merged]
    assert fused == sorted(fused, reverse=True)
    assert BM25[0].meta == {}  # inputs untouched


def test_a_passage_found_by_two_sources_rises() -> None:
    shared_text = "Emma is a novel written by Jane Austen and published in 1815 by John Murray"
    web = [WEB[0], WEB[1], p(shared_text, "https://emma.example/", "web")]
    local = [BM25[0], BM25[1], p(shared_text + ".", "books/emma.txt#3", "index:notes")]
    merged = merge_ranked([local, web])
    top = merged[0]
    assert top.text.startswith("Emma is a novel")
    assert top.meta["found_by"] == 2
    assert sum(m.text.startswith("Emma is a novel") for m in merged) == 1
    assert len(merged) == 5


def test_same_location_and_near_duplicates_are_dropped_within_a_list() -> None:
    text = "The quick brown fox jumps over the lazy dog near the river bank today"
    lst = [
        p(text, "https://a.example/", "web"),
        p("completely different words here about cooking pasta well", "https://a.example/", "web"),
        p(text + " again", "https://b.example/", "web"),
        p("another unrelated passage concerning astronomy and stars", "https://c.example/", "web"),
    ]
    merged = merge_ranked([lst])
    assert [m.location for m in merged] == ["https://a.example/", "https://c.example/"]
    assert merged[0].meta["found_by"] == 1


def test_a_snippet_contained_in_a_longer_passage_is_a_duplicate() -> None:
    snippet = "Jane Austen published Emma in December 1815 with John Murray"
    page = "Background text first. " + snippet + ". Then a lot more text follows about the plot."
    merged = merge_ranked([[p(page, "books/emma#1", "index:b")], [p(snippet, "https://x/", "web")]])
    assert len(merged) == 1 and merged[0].meta["found_by"] == 2


def test_weights_favour_a_source() -> None:
    merged = merge_ranked([BM25, WEB], weights=[1.0, 2.0])
    assert [m.origin for m in merged[:3]] == ["web", "web", "web"]


def test_empty_inputs() -> None:
    assert merge_ranked([]) == []
    assert merge_ranked([[], []]) == []
