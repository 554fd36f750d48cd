"""Choose what evidence a model reads: rerank candidates sentence by sentence, keep the
sentences that bear on the question within a token budget, cut the ones that score far
below the best, and give each kept source only its kept sentences.

Why sentences: a 135M model given five 200-token passages answers worse than given the
one that holds the answer (issue data: 45% at one passage, 17.5% at five). The answer
usually sits in one sentence; a budget spent on the best sentences of several sources
keeps the recall of many passages at the cost of one.

Sources keep whole-source numbering: each kept source is one `<source id="N">` block
whose text is its kept sentences in their original order, joined by " … ". The source's
full (cleaned) text and the character spans that went into the prompt are kept in
`meta`, so `rag ask --json` can show both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from rag.core.types import GAP, Passage
from rag.evidence.rerankers import Reranker, bm25_scores, standardised
from rag.evidence.sentences import split_sentences
from rag.packing import clean_text, format_source

#: Characters of each source that are split and scored: a fetched page can run to
#: megabytes, and no budget here holds more than its first pages anyway.
READ_CHARS = 20_000
#: Fallback budget for models of unknown size (an HTTP endpoint).
DEFAULT_BUDGET = 1024
BEST_FIRST = "best-first"
WINDOWS = "windows"
SENTENCES = "sentences"
BEST_LAST = "best-last"


def budget_for(parameters: int | None) -> int:
    """Evidence tokens that fit a model of `parameters`: small models lose the answer in
    long prompts and larger ones read more, so the budget grows with size."""
    if not parameters:
        return DEFAULT_BUDGET
    if parameters < 500_000_000:
        return 256
    if parameters < 2_000_000_000:
        return 512
    if parameters < 8_000_000_000:
        return 1024
    return 2048


@dataclass(frozen=True)
class SelectionPolicy:
    """`budget`: evidence tokens (blocks included); `cut`: drop what scores more than this
    many standard deviations below the best (0: no cut); `depth`: candidates read."""

    budget: int
    cut: float = 2.0
    depth: int = 10
    order: str = BEST_FIRST
    max_sources: int = 5
    prior: float = 1.0  # weight of the retrievers' rank beside the reranker's score
    #: Sentences a model-based reranker reads (0: all). On 300 NQ questions' top-10
    #: candidates, 10, 16 and all gave the same kept-evidence hit (89.7%, 90.3%, 90.7%)
    #: and top source (84.7%, 84.3%, 84.3%); 6 lost 3 points. Each sentence read costs
    #: about 6 ms of MiniLM here, most of a warm search.
    shortlist: int = 10
    mode: str = WINDOWS  # or SENTENCES: the best sentences from anywhere


@dataclass
class _Unit:
    source: int  # index into the candidates
    span: tuple[int, int]
    text: str


#: Why a candidate the reranker read is not in the prompt (`Selection.dropped`).
BELOW_CUT = "below the relevance cut"
OVER_BUDGET = "over the evidence budget"
OVER_K = "past the most sources (k)"
NOTHING_READ = "no sentence of it was scored"


@dataclass
class Selection:
    passages: list[Passage]  # what goes into the prompt, numbered 1..n in this order
    ranked: list[Passage]  # every candidate read, reranked, with `meta["rerank_score"]`
    seconds: float
    #: Candidates read but left out, best first, each with `meta["dropped"]`: why.
    dropped: list[Passage] = field(default_factory=list)


def select_evidence(
    question: str,
    candidates: Sequence[Passage],
    *,
    reranker: Reranker,
    policy: SelectionPolicy,
    count_tokens: Callable[[str], int],
) -> Selection:
    started = time.perf_counter()
    sources = [replace(p, text=clean_text(p.text)) for p in candidates[: policy.depth]]
    sources = [p for p in sources if p.text]
    units = [
        _Unit(i, span, p.text[span[0] : span[1]])
        for i, p in enumerate(sources)
        for span in split_sentences(p.text[:READ_CHARS])
    ]
    if not units:
        return Selection([], [], time.perf_counter() - started)
    texts = [_scored_text(sources[u.source], u.text) for u in units]
    # The retrievers ranked whole passages against the corpus (its IDF, its vectors); that
    # rank is evidence too, which sentence scores alone would throw away.
    prior = standardised([1.0 / (1 + u.source) for u in units])
    if not getattr(reranker, "cheap", False) and 0 < policy.shortlist < len(units):
        # A cascade: BM25 and the prior (microseconds) pick what the model-based reranker
        # reads, so its cost stays flat however long the candidates are.
        first = standardised(bm25_scores(question, texts)) + policy.prior * prior
        keep = sorted(np.argsort(-first, kind="stable")[: policy.shortlist])
        units, texts, prior = [units[i] for i in keep], [texts[i] for i in keep], prior[keep]
    raw = reranker.score(question, texts)
    z = standardised(standardised(raw) + policy.prior * prior)
    best_of = np.full(len(sources), -np.inf)
    for unit, score in zip(units, z, strict=False):
        best_of[unit.source] = max(best_of[unit.source], score)
    ranked = sorted(range(len(sources)), key=lambda i: (-best_of[i], i))
    reranked = [
        replace(sources[i], meta={**sources[i].meta, "rerank_score": _rounded(best_of[i])})
        for i in ranked
    ]

    header = [
        count_tokens(format_source(n + 1, replace(p, text=""))) + 2 for n, p in enumerate(sources)
    ]
    cost = [count_tokens(u.text) + 1 for u in units]
    pick = _windows if policy.mode == WINDOWS else _sentences
    chosen, why = pick(_Scored(units, z, ranked, best_of, header, cost), policy)
    order = [i for i in ranked if i in chosen]
    if policy.order == BEST_LAST:
        order.reverse()
    kept = [_excerpt(sources[i], chosen[i], best_of[i]) for i in order]
    dropped = [
        replace(reranked[n], meta={**reranked[n].meta, "dropped": why.get(i, NOTHING_READ)})
        for n, i in enumerate(ranked)
        if i not in chosen
    ]
    return Selection(kept, reranked, time.perf_counter() - started, dropped)


Chosen = dict[int, list[_Unit]]
#: Why each source left out was left out (source index -> one of the reasons above).
Reasons = dict[int, str]


@dataclass
class _Scored:
    """Sentences with their standardised scores and token costs, and the sources ranked."""

    units: list[_Unit]
    z: np.ndarray
    ranked: list[int]  # source indexes, best first
    best_of: np.ndarray  # each source's best sentence score
    header: list[int]  # tokens of each source's empty block
    cost: list[int]  # tokens of each sentence


def _sentences(scored: _Scored, policy: SelectionPolicy) -> tuple[Chosen, Reasons]:
    """The best sentences anywhere, each on its own, until the budget or the cut."""
    units, z, header, cost = scored.units, scored.z, scored.header, scored.cost
    chosen: Chosen = {}
    why: Reasons = {}
    spent = 0
    top = float(z.max())
    for position in np.argsort(-z, kind="stable"):
        unit = units[position]
        if policy.cut and top - z[position] > policy.cut:
            for rest in units:
                why.setdefault(rest.source, BELOW_CUT)
            break
        extra = cost[position]
        if unit.source not in chosen:
            if len(chosen) >= policy.max_sources:
                why.setdefault(unit.source, OVER_K)
                continue
            extra += header[unit.source]
        if spent + extra > policy.budget:
            why.setdefault(unit.source, OVER_BUDGET)
            continue
        chosen.setdefault(unit.source, []).append(unit)
        spent += extra
    return chosen, why


def _windows(scored: _Scored, policy: SelectionPolicy) -> tuple[Chosen, Reasons]:
    """Sources best first; from each, one run of neighbouring sentences grown around its
    best sentence, toward the better neighbour, while the budget lasts. A small model
    reads a coherent stretch of text better than sentences picked from everywhere."""
    units, z, header, cost = scored.units, scored.z, scored.header, scored.cost
    ranked, best_of = scored.ranked, scored.best_of
    by_source: dict[int, list[int]] = {}
    for position, unit in enumerate(units):
        by_source.setdefault(unit.source, []).append(position)
    chosen: Chosen = {}
    why: Reasons = {}
    left = policy.budget
    top = float(best_of.max())
    for place, source in enumerate(ranked):
        positions = by_source.get(source)
        if not positions:
            continue
        if len(chosen) >= policy.max_sources:
            why[source] = OVER_K
            continue
        if policy.cut and top - best_of[source] > policy.cut:
            why.update((rest, BELOW_CUT) for rest in ranked[place:] if rest in by_source)
            break
        best = max(range(len(positions)), key=lambda n: z[positions[n]])
        if header[source] + cost[positions[best]] > left:
            why[source] = OVER_BUDGET
            continue
        left -= header[source] + cost[positions[best]]
        low = high = best
        while True:
            options = [n for n in (low - 1, high + 1) if 0 <= n < len(positions)]
            options = [n for n in options if cost[positions[n]] <= left]
            if not options:
                break
            step = max(options, key=lambda n: z[positions[n]])
            left -= cost[positions[step]]
            low, high = min(low, step), max(high, step)
        chosen[source] = [units[positions[n]] for n in range(low, high + 1)]
    return chosen, why


def _rounded(score: float) -> float | None:
    """A source's score for output; None for one the reranker did not read (no sentence of
    it made the shortlist), whose -inf would be invalid JSON."""
    return round(float(score), 4) if np.isfinite(score) else None


def _scored_text(source: Passage, sentence: str) -> str:
    """The sentence with its source's title: "It opened in 1998" says nothing about what
    opened until the title does."""
    title = source.title.strip()
    return f"{title}: {sentence}" if title and title.lower() not in sentence.lower() else sentence


def _excerpt(source: Passage, units: list[_Unit], score: float) -> Passage:
    units = sorted(units, key=lambda u: u.span)
    spans: list[list[int]] = []
    for unit in units:
        if spans and source.text[spans[-1][1] : unit.span[0]].strip() == "":
            spans[-1][1] = unit.span[1]
        else:
            spans.append([unit.span[0], unit.span[1]])
    text = GAP.join(source.text[a:b] for a, b in spans)
    meta = {
        **source.meta,
        "rerank_score": _rounded(score),
        "spans": spans,
        "full_text": source.text,
    }
    return replace(source, text=text, meta=meta)
