"""The orchestrator with a fake model and fake sources: numbering, packing, failures."""

import pytest
from conftest import FakeGenerator, FakeRetriever, ask

from rag.core.config import load_settings
from rag.core.errors import SearchUnavailable, UsageError
from rag.core.types import Passage


def passages(origin: str, n: int, words: int = 20) -> list[Passage]:
    return [
        Passage(
            text=f"{origin} passage {i} " + " ".join(f"{origin[:3]}{i}x{j}" for j in range(words)),
            title=f"{origin} title {i}",
            location=f"https://example.org/{origin}/{i}"
            if origin == "web"
            else f"/docs/{i}.md#chunk0",
            origin=origin,
            score=1.0 / (i + 1),
        )
        for i in range(n)
    ]


def test_closed_book_uses_the_closed_template(fake_generator: FakeGenerator) -> None:
    answer = ask("Who wrote Emma?", settings=load_settings(), generator=fake_generator)
    assert answer.sources == []
    assert answer.answer == "Jane Austen wrote it [1]."
    prompt = fake_generator.calls[0]
    assert prompt[-1].content == "Who wrote Emma?"
    assert "<source" not in "".join(m.content for m in prompt)
    assert answer.timings["completion_tokens"] == 5


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_a_usage_error(question: str, fake_generator: FakeGenerator) -> None:
    with pytest.raises(UsageError, match="empty"):
        ask(question, settings=load_settings(), generator=fake_generator)
    assert fake_generator.calls == []


def test_sources_are_numbered_from_one_in_prompt_order(fake_generator: FakeGenerator) -> None:
    retriever = FakeRetriever("index:docs", passages("index:docs", 4))
    answer = ask(
        "q?",
        settings=load_settings(k=4, reranker="none"),
        generator=fake_generator,
        retrievers=[retriever],
    )
    assert [s.id for s in answer.sources] == [1, 2, 3, 4]
    prompt = "\n".join(m.content for m in fake_generator.calls[0])
    for source in answer.sources:
        assert f'<source id="{source.id}" title="{source.title}"' in prompt
        # The text under number n in the prompt is the text reported as source n.
        block = prompt.split(f'<source id="{source.id}"')[1].split("</source>")[0]
        assert source.text.split()[0] in block and source.text.split()[-1] in block


def test_packing_respects_a_small_context() -> None:
    generator = FakeGenerator(context_size=300)
    retriever = FakeRetriever("web", passages("web", 10, words=60))
    answer = ask(
        "q?",
        settings=load_settings(k=10, max_tokens=50),
        generator=generator,
        retrievers=[retriever],
    )
    assert 0 < len(answer.sources) < 10
    assert generator.count_prompt_tokens(generator.calls[0]) + 50 <= 300


def test_web_down_alone_is_an_error(fake_generator: FakeGenerator) -> None:
    down = FakeRetriever("web", error=SearchUnavailable("Web search (ddgs) failed: no network."))
    with pytest.raises(SearchUnavailable, match="ddgs"):
        ask("q?", settings=load_settings(), generator=fake_generator, retrievers=[down])
    assert fake_generator.calls == []


def test_web_down_with_index_warns_and_answers_from_index(fake_generator: FakeGenerator) -> None:
    down = FakeRetriever("web", error=SearchUnavailable("Web search (ddgs) failed: no network."))
    index = FakeRetriever("index:notes", passages("index:notes", 2))
    answer = ask("q?", settings=load_settings(), generator=fake_generator, retrievers=[down, index])
    assert [s.origin for s in answer.sources] == ["index:notes", "index:notes"]
    assert len(answer.warnings) == 1 and "ddgs" in answer.warnings[0]


def test_web_and_index_compete_for_the_same_prompt(fake_generator: FakeGenerator) -> None:
    web = FakeRetriever("web", passages("web", 3))
    index = FakeRetriever("index:notes", passages("index:notes", 3))
    settings = load_settings(reranker="none")  # fusion alone, without a reranker's say
    answer = ask("q?", settings=settings, generator=fake_generator, retrievers=[web, index])
    assert {s.origin for s in answer.sources} == {"web", "index:notes"}
    assert [s.id for s in answer.sources] == list(range(1, len(answer.sources) + 1))


def test_search_query_differs_from_question(fake_generator: FakeGenerator) -> None:
    retriever = FakeRetriever("web", passages("web", 1))
    ask(
        "and his wife?",
        settings=load_settings(),
        generator=fake_generator,
        retrievers=[retriever],
        search_query="Barack Obama wife",
    )
    assert retriever.queries == ["Barack Obama wife"]
    # The model still answers the user's own words; only the search used the rewrite.
    assert "Question: and his wife?" in fake_generator.calls[0][-1].content
