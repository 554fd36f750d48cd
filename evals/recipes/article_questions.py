"""Questions people wrote about whole articles (the CMU Question-Answer data set's layout),
and how often a retriever's top k holds their answer.

`question_answer_pairs.txt` is tab-separated with a header (ArticleTitle, Question,
Answer, two difficulty ratings, ArticleFile). A question answered by several readers has
one line per reader, so questions are merged on (article, question as normalised for
scoring) and every answer a reader gave is accepted. Questions with a yes/no answer are
left out (a yes/no answer is no test of finding a passage: "yes" is in no chunk), and so
are lines with no answer (`NULL`). Lines are decoded one by one (UTF-8, else cp1252): the
file mixes encodings, and one stray byte must not lose the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evals.metrics import contains_answer, normalize_answer

#: Answers that say no reader could answer.
_NO_ANSWER = {"", "null", "none given", "n/a"}
_WORD = re.compile(r"\w+")
#: Words that match nearly any passage: left out when a question's words are counted.
_FUNCTION_WORDS_TEXT = """
    a about after all also an and any are as at be been before being but by can could
    did do does during for from had has have he her his how i if in into is it its many
    much of on or she so than that the their them there these they this those to was were
    what when where which while who whom whose why will with would you"""
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())


@dataclass
class ArticleQuestion:
    """One question about one article; `answers` every distinct answer its readers gave."""

    article: str  # the ArticleFile column: the article's path without its suffixes
    title: str
    question: str
    answers: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.article}#{normalize_answer(self.question)}"


def decode_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def read_pairs(path: Path) -> list[dict[str, str]]:
    """The rows of a question_answer_pairs.txt file, keyed by its header's column names.
    Split on line feeds only: a stray carriage return inside a field is not a new row."""
    lines = [decode_line(raw).rstrip("\r") for raw in path.read_bytes().split(b"\n")]
    lines = [line for line in lines if line.strip()]
    if not lines:
        return []
    header = [name.strip() for name in lines[0].split("\t")]
    rows = []
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split("\t")]
        if len(cells) >= len(header):
            rows.append(dict(zip(header, cells, strict=False)))
    return rows


def is_yes_no(answer: str) -> bool:
    """'Yes', 'no.', 'Yes, he did': an answer to a yes/no question ('No one', 'None' are not)."""
    words = normalize_answer(answer).split()
    if not words or words[0] not in ("yes", "no"):
        return False
    return not (words[0] == "no" and len(words) > 1 and words[1] == "one")


def clean_answer(answer: str) -> str:
    """A reader's answer as given, less the stray mark it ends with (`Grant.`, `\\n`)."""
    answer = answer.replace("\\n", " ").strip()
    return answer.rstrip(" .").strip() or answer


def build_questions(rows: Iterable[dict[str, str]]) -> list[ArticleQuestion]:
    """Short-answer questions, in the order first asked: merged on (article, normalised
    question), every reader's answer kept (distinct once normalised); a question any reader
    answered yes or no is left out, as is one nobody answered."""
    merged: dict[tuple[str, str], ArticleQuestion] = {}
    yes_no: set[tuple[str, str]] = set()
    for row in rows:
        question = " ".join(row.get("Question", "").split())
        article = row.get("ArticleFile", "").strip()
        if not question or not article:
            continue
        key = (article, normalize_answer(question))
        answer = clean_answer(row.get("Answer", ""))
        if is_yes_no(answer):
            yes_no.add(key)
        entry = merged.setdefault(
            key, ArticleQuestion(article, row.get("ArticleTitle", "").replace("_", " "), question)
        )
        if answer.lower() in _NO_ANSWER or not normalize_answer(answer):
            continue
        if normalize_answer(answer) not in {normalize_answer(a) for a in entry.answers}:
            entry.answers.append(answer)
    return [q for key, q in merged.items() if key not in yes_no and q.answers]


def article_path(data_root: Path, article: str) -> Path:
    """`data/set3/a4` -> the file of that article under `data_root` (the folder that holds
    `data/`): the one named `a4.<anything>` in `data/set3`, else the prefix itself."""
    prefix = data_root / article
    if prefix.is_file():
        return prefix
    found = sorted(prefix.parent.glob(f"{prefix.name}.*")) if prefix.parent.is_dir() else []
    return found[0] if found else prefix


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _FUNCTION_WORDS}


def answer_chunk(
    question: ArticleQuestion, chunks: Sequence[tuple[str, str]]
) -> tuple[tuple[str, str] | None, bool]:
    """The (title, text) chunk of the question's article that holds its answer, and whether
    any does. Of several, the one sharing most words with the question (a date or a name
    often recurs; the passage asked about is the one that also says what was asked); with
    none, the chunk that shares most words with the question, which is the best guess there
    is (its answer is a paraphrase, or longer than the words of the article)."""
    if not chunks:
        return None, False
    asked = content_words(question.question)
    holding = [c for c in chunks if contains_answer(c[1], question.answers)]
    pool = holding or list(chunks)
    best = max(pool, key=lambda c: len(asked & content_words(f"{c[0]} {c[1]}")))
    return best, bool(holding)


#: One ranked list of passages per question: (path, text), best first.
Ranked = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Recall:
    """Of `n` questions, the share whose top k holds an answer, per k: in any passage
    (`answer`), in a passage of the question's own article (`article_answer`), and any
    passage of its article at all (`article`)."""

    n: int
    answer: dict[int, float]
    article_answer: dict[int, float]
    article: dict[int, float]


def recall_at(
    questions: Sequence[ArticleQuestion],
    ranked: Sequence[Ranked],
    ks: Sequence[int],
    is_article: Callable[[ArticleQuestion, str], bool],
) -> Recall:
    """Recall@k of each k over `questions`, each with its `ranked` passages (best first);
    `is_article(question, path)` says whether a passage's path is the question's article."""
    totals = {name: dict.fromkeys(ks, 0) for name in ("answer", "article_answer", "article")}
    for question, passages in zip(questions, ranked, strict=True):
        for k in ks:
            top = passages[:k]
            holding = [p for p in top if contains_answer(p[1], question.answers)]
            totals["answer"][k] += bool(holding)
            totals["article_answer"][k] += any(is_article(question, p[0]) for p in holding)
            totals["article"][k] += any(is_article(question, p[0]) for p in top)
    n = len(questions)
    share = {
        name: {k: (v / n if n else 0.0) for k, v in by_k.items()} for name, by_k in totals.items()
    }
    return Recall(n, share["answer"], share["article_answer"], share["article"])
