"""Fusion of several sources' rankings: fair by rank, duplicates merged, agreement rewarded."""

from __future__ import annotations

import pytest

from rag.core.ranking import merge_ranked, rrf
from rag.core.types import Passage


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


def test_fused_order_and_scores_are_pinned() -> None:
    """Three lists, a duplicate inside one and across lists, k=10, with and without weights."""
    a = "alpha passage about lighthouses on the northern coast"
    b = "beta passage about storms in the north atlantic ocean"
    c = "gamma passage about keepers climbing one hundred steps"
    d = "delta passage about electrified lamps after the war"
    e = "epsilon passage about memoirs written on the mainland"
    local = [
        p(a, "notes/a.md#0", "index:notes"),
        p(b, "notes/b.md#0", "index:notes"),
        p(a + " again", "notes/a2.md#0", "index:notes"),  # a near duplicate: no second vote
        p(c, "notes/c.md#0", "index:notes"),
    ]
    web = [p(c, "https://c.example/", "web"), p(d, "https://d.example/", "web")]
    web.append(p(b, "https://b.example/", "web"))
    docs = [p(e, "docs/e.md#0", "index:docs"), p(d + ".", "docs/d.md#0", "index:docs")]

    def fused(weights: list[float] | None) -> list[tuple[str, float, int]]:
        merged = merge_ranked([local, web, docs], weights=weights, k=10)
        return [(m.location, m.meta["fused_score"], m.meta["found_by"]) for m in merged]

    # d: 1/12 + 1/12; c: 1/11 + 1/14 (the copy met first is kept); b: 1/12 + 1/13;
    # a and e tie at 1/11: the one the fused order meets first (list 0) comes first.
    assert fused(None) == [
        ("https://d.example/", 0.16666667, 2),
        ("https://c.example/", 0.16233766, 2),
        ("notes/b.md#0", 0.16025641, 2),
        ("notes/a.md#0", 0.09090909, 1),
        ("docs/e.md#0", 0.09090909, 1),
    ]
    assert fused([1.0, 0.5, 2.0]) == [
        ("https://d.example/", 0.20833333, 2),
        ("docs/e.md#0", 0.18181818, 1),
        ("notes/b.md#0", 0.12179487, 2),
        ("https://c.example/", 0.11688312, 2),
        ("notes/a.md#0", 0.09090909, 1),
    ]


def test_rrf_of_keys() -> None:
    # 1: 1/11 + 1/12; 3: 1/13 + 1/11; 2: 1/12 (its repeat in the first list does not vote).
    fused = rrf([[1, 2, 3, 2], [3, 1]], k=10)
    assert fused == [(1, 1 / 11 + 1 / 12), (3, 1 / 13 + 1 / 11), (2, 1 / 12)]
    assert rrf([["b"], ["a"]], k=10) == [("a", 1 / 11), ("b", 1 / 11)]  # a tie: smaller key
    assert rrf([[1], [2]], [1.0, 2.0]) == [(2, 2 / 61), (1, 1 / 61)]  # k defaults to 60
    with pytest.raises(ValueError, match="one weight per list"):
        rrf([[1], [2]], [1.0])


def test_the_index_fuses_with_its_own_k() -> None:
    from indexers import hybrid

    ranked = [[1, 2], [2, 3]]
    assert hybrid.rrf(ranked) == rrf(ranked, k=hybrid.RRF_K) != rrf(ranked)
