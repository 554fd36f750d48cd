"""The real-articles recipe (evals/recipes/real_articles.py) on a fixture of two articles of
our own: the questions it builds (merged, yes/no and unanswered left out, every reader's
answer), the oracle chunk, and recall@k, over an index built with the fake embedder."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

from pathlib import Path

from index_fixtures import HERE, FakeEmbedder, fake_embedder, settings  # noqa: F401 - fixtures

from evals.recipes.article_questions import (
    ArticleQuestion,
    build_questions,
    is_yes_no,
    read_pairs,
    recall_at,
)
from evals.recipes.real_articles import (
    Articles,
    index_chunks,
    rank_all,
    recall_rows,
    write_benchmark,
)
from indexers.build import build_index
from rag.sources import build_retriever

FIXTURE = HERE / "fixtures" / "articles"


def questions() -> dict[str, ArticleQuestion]:
    return {
        q.question: q for q in build_questions(read_pairs(FIXTURE / "question_answer_pairs.txt"))
    }


def test_questions_are_merged_yes_no_and_unanswered_left_out() -> None:
    found = questions()
    assert list(found) == [
        "When did Margaret Flett become keeper?",  # asked twice, spelled two ways
        "Which steamer ran aground below the Noss Head cliffs?",
        "Where did she teach navigation?",
        "Why were her logbooks useful?",
        "How deep is Lake Baikal?",
        "What seal lives in Lake Baikal?",
        "Is Lake Baikal growing?",  # "No one knows" is not a "no"
        "When was the railway finished on Baikal\u2019s shore?",  # its line is cp1252
    ]
    # every reader's answer, the same one once, less the stray period and `\n`
    assert found["When did Margaret Flett become keeper?"].answers == ["1891", "In 1891"]
    assert found["Which steamer ran aground below the Noss Head cliffs?"].answers == ["the Orcadia"]
    assert found["Where did she teach navigation?"].answers == ["Thurso"]
    assert found["How deep is Lake Baikal?"].title == "Lake Baikal"
    assert found["How deep is Lake Baikal?"].article == "data/set1/a2"


def test_yes_no_answers() -> None:
    assert all(is_yes_no(a) for a in ("Yes", "no.", "Yes, he did", "NO"))
    assert not any(is_yes_no(a) for a in ("No one", "None", "Nobody", "Norway", "1891", ""))


def test_recall_at_k_counts_a_question_once_and_knows_its_article() -> None:
    one = ArticleQuestion("data/a1", "A", "Who?", ["Flett"])
    two = ArticleQuestion("data/a2", "B", "Where?", ["Wick", "Thurso"])
    ranked = [
        [("a2", "Flett in another article"), ("a1", "Flett again"), ("a1", "Flett")],
        [("a1", "nothing"), ("a1", "nothing"), ("a1", "Thurso and Wick")],
    ]
    recall = recall_at([one, two], ranked, [1, 2, 3], lambda q, path: q.article.endswith(path))
    assert recall.n == 2
    assert recall.answer == {1: 0.5, 2: 0.5, 3: 1.0}  # any passage holding an answer
    assert recall.article_answer == {1: 0.0, 2: 0.5, 3: 0.5}  # ... of its own article
    assert recall.article == {1: 0.0, 2: 0.5, 3: 0.5}  # a passage of its article at all
    empty = recall_at([], [], [1], lambda q, p: True)
    assert empty.n == 0 and empty.answer == {1: 0.0}


def test_the_recipe_over_an_index_of_the_articles(
    tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    build_index([FIXTURE / "data"], "articles", settings())
    retriever = build_retriever("index:articles", settings())
    try:
        chunks = index_chunks(retriever)
        articles = Articles(FIXTURE, chunks)
        asked = list(questions().values())
        # every chunk is titled by its article's first line, not the file name
        assert {title for rows in chunks.values() for title, _ in rows} == {
            "Margaret Flett",
            "lake baikal",
        }
        assert max(len(rows) for rows in chunks.values()) > 1  # several chunks per article
        answerable = write_benchmark(asked, articles, tmp_path / "questions.jsonl")
        ranked, seconds = rank_all(retriever, asked, 10)
    finally:
        retriever.close()
    by_text = {q.question: q for q in asked}
    # the oracle chunk is the one of the question's article holding the answer
    rows = [line for line in (tmp_path / "questions.jsonl").read_text().splitlines()]
    assert len(rows) == len(asked)
    assert answerable[by_text["Which steamer ran aground below the Noss Head cliffs?"].id]
    assert not answerable[by_text["Why were her logbooks useful?"].id]
    import json

    gold = {json.loads(r)["question"]: json.loads(r)["gold_passages"][0] for r in rows}
    steamer = gold["Which steamer ran aground below the Noss Head cliffs?"]
    assert "Orcadia" in steamer["text"] and steamer["title"] == "Margaret Flett"
    assert "1904" in gold["When was the railway finished on Baikal\u2019s shore?"]["text"]
    recalls = recall_rows(asked, ranked, articles, answerable, {asked[0].id})
    assert recalls["all"].n == len(asked) and recalls["sample"].n == 1
    assert recalls["answerable"].n == sum(answerable.values())
    # two articles: the top 10 holds every chunk, so each answerable question is found
    assert recalls["answerable"].article_answer[10] == 1.0
    assert recalls["all"].article[10] == 1.0
    assert seconds >= 0
