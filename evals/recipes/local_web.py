"""An offline web for evals: the NQ corpus as pages, ranked by BM25, with engine-like snippets.

Why: the web half of pocketrag (search snippets, `--fetch`, page extraction, selection on web
text) cannot be measured on a machine without the internet. This is a stand-in with the
parts that matter: pages grouped by article (a page holds more than the answer), a
ranking that is good but not perfect (BM25 over page texts), snippets of the length real
engines give (~150-300 characters, around the query's words, so the answer may or may not
be in one), and pages served as HTML with the chrome real sites have (evals.recipes.web_pages).

`SearchIndex.search(query, k)` -> [(page, snippet)]; `serve_web(pages)` serves it on
127.0.0.1 speaking SearxNG's JSON API (`/search?q=...&format=json`) and each page at
`/wiki/SLUG`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
#: Words too common to rank or place a snippet by.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
    ]
)
#: Snippet length, in characters: DuckDuckGo's and Google's are about this long.
SNIPPET_MIN, SNIPPET_MAX = 150, 280


def terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


@dataclass(frozen=True)
class Page:
    """One article: its title, its paragraphs (the corpus passages under that title, in
    corpus order), and the URL path it is served at."""

    title: str
    paragraphs: tuple[str, ...]
    slug: str

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


def slug_for(title: str) -> str:
    """`Eiffel Tower` -> `Eiffel_Tower` (URL-quoted), as Wikipedia spells its paths."""
    return quote(title.replace(" ", "_"), safe="_(),-.")


def pages_from_passages(rows: Iterable[dict]) -> list[Page]:
    """Passages (`title`, `text`) grouped by title into pages, in order of first appearance."""
    grouped: dict[str, list[str]] = {}
    for row in rows:
        title, text = str(row.get("title") or "").strip(), str(row.get("text") or "").strip()
        if title and text and text not in grouped.setdefault(title, []):
            grouped[title].append(text)
    pages, slugs = [], set()
    for title, paragraphs in grouped.items():
        slug = slug_for(title)
        if slug in slugs:  # two titles that quote alike: keep both, apart
            slug += "_" + hashlib.sha1(title.encode()).hexdigest()[:6]
        slugs.add(slug)
        pages.append(Page(title, tuple(paragraphs), slug))
    return pages


def read_pages(corpus: Path) -> list[Page]:
    """Pages from a corpus JSONL (as evals.recipes.offline_nq writes it)."""
    with corpus.open(encoding="utf-8") as fh:
        return pages_from_passages(json.loads(line) for line in fh if line.strip())


class SearchIndex:
    """Okapi BM25 (k1 1.2, b 0.75) over title and text; the title counts twice, as
    engines weigh it more."""

    def __init__(self, pages: list[Page], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.pages = pages
        self.k1, self.b = k1, b
        self.postings: dict[str, list[tuple[int, int]]] = {}
        self.lengths: list[int] = []
        for n, page in enumerate(pages):
            counts = Counter(terms(page.title) * 2 + terms(page.text))
            self.lengths.append(sum(counts.values()))
            for term, count in counts.items():
                self.postings.setdefault(term, []).append((n, count))
        self.average = sum(self.lengths) / max(1, len(self.lengths))
        total = len(pages)
        self.idf = {
            t: math.log(1 + (total - len(p) + 0.5) / (len(p) + 0.5))
            for t, p in self.postings.items()
        }

    def ranked(self, query: str, k: int) -> list[tuple[Page, float]]:
        scores: dict[int, float] = {}
        for term in set(terms(query)):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for n, count in self.postings[term]:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[n] / self.average)
                scores[n] = scores.get(n, 0.0) + idf * count * (self.k1 + 1) / (count + norm)
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
        return [(self.pages[n], score) for n, score in best]

    def search(self, query: str, k: int = 10) -> list[tuple[Page, str]]:
        return [(page, self.snippet(page, query)) for page, _ in self.ranked(query, k)]

    def snippet(self, page: Page, query: str) -> str:
        """The page's sentence that matches the query best (by its words' idf), widened
        with the next sentences to SNIPPET_MIN characters and cut at a word by
        SNIPPET_MAX, with an ellipsis where it cuts, as engines show them."""
        wanted = set(terms(query))
        sentences = [s.strip() for p in page.paragraphs for s in _SENTENCE.split(p) if s.strip()]
        if not sentences:
            return ""

        def weight(sentence: str) -> float:
            return sum(self.idf.get(t, 0.0) for t in wanted & set(terms(sentence)))

        best = max(range(len(sentences)), key=lambda i: (weight(sentences[i]), -i))
        text = sentences[best]
        start, end = best, best + 1
        while len(text) < SNIPPET_MIN and (end < len(sentences) or start > 0):
            if end < len(sentences):  # the next sentence first, then the one before
                text += " " + sentences[end]
                end += 1
            else:
                start -= 1
                text = sentences[start] + " " + text
        cut = len(text) > SNIPPET_MAX
        if cut:
            text = text[:SNIPPET_MAX].rsplit(" ", 1)[0].rstrip(",;:")
        return ("… " if start else "") + text + (" …" if cut or end < len(sentences) else "")
