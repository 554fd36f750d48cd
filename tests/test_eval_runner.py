"""The runner with a fake model and fake retrievers: conditions, resume, manifest, replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeGenerator, FakeRetriever

from evals.conditions import Condition, parse_conditions
from evals.runner import EvalConfig, read_predictions, run_eval
from rag.core.config import load_settings
from rag.core.errors import UsageError
from rag.core.types import Passage

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
NQ = str(FIXTURES / "nq_open.jsonl")
FACTS = {
    "emma": "Emma is a novel by Jane Austen.",
    "australia": "Canberra is the capital of Australia.",
    "berlin": "The Berlin Wall fell in 1989.",
    "mona lisa": "Leonardo da Vinci painted the Mona Lisa.",
    "planet": "Saturn has rings.",  # retrieval misses: the answer is not in it
}


def librarian(query: str) -> list[Passage]:
    return [
        Passage(text, title=key, location=f"facts#{key}", origin="index:facts", score=1.0)
        for key, text in FACTS.items()
        if key in query
    ]


class FactRetriever(FakeRetriever):
    def retrieve(self, query: str, k: int):
        self.queries.append(query)
        return librarian(query)[:k]


def reader(messages) -> str:
    """Answers from the source text when there is one, else guesses wrong."""
    user = messages[-1].content
    if "<source" not in user:
        return "I am not sure."
    body = user.split("</source>")[0].split(">", 1)[1]
    return body.strip()


@pytest.fixture
def settings(fake_model):
    return load_settings(model="fake:")


def _config(tmp_path: Path, **kw) -> EvalConfig:
    kw.setdefault("conditions", parse_conditions("closed,index:facts"))
    return EvalConfig(benchmark=NQ, out_dir=tmp_path / "run", **kw)


def test_parse_conditions() -> None:
    got = parse_conditions("closed, index:wiki ,web+index:wiki")
    assert got == [
        Condition("closed", ()),
        Condition("index:wiki", ("index:wiki",)),
        Condition("web+index:wiki", ("web", "index:wiki")),
    ]
    for bad, match in [
        ("closed,bing", "Unknown condition part 'bing'"),
        ("closed+web", "Unknown condition part 'closed'"),
        ("index:", "Unknown condition part"),
        ("web,web", "given twice"),
        ("web+web", "same source twice"),
        (" , ", "No conditions"),
    ]:
        with pytest.raises(UsageError, match=match):
            parse_conditions(bad)


def test_run_scores_each_condition_through_the_eval_prompts(tmp_path, settings) -> None:
    generator = FakeGenerator(reply=reader)
    retriever = FactRetriever("index:facts")
    outcome = run_eval(
        _config(tmp_path), settings, generator=generator, retriever_factory=lambda s: retriever
    )
    rows = read_predictions(outcome.out_dir)
    assert len(rows) == 10 and outcome.answered == 10
    assert outcome.questions == 5 and outcome.conditions == 2
    assert outcome.answers_per_minute == pytest.approx(2 * outcome.questions_per_minute)
    facts = [r for r in rows if r["condition"] == "index:facts" and r["sources"]]
    assert all(s["text"] in FACTS.values() for r in facts for s in r["sources"])
    assert all("short answer" in call[0].content for call in generator.calls)  # eval family
    closed = outcome.results["conditions"]["closed"]
    index = outcome.results["conditions"]["index:facts"]
    assert closed["accuracy"] == 0.0 and closed["hit_at_k"] is None
    # 4 of 5 questions get a passage with the answer, and the reader copies it
    assert index["accuracy"] == pytest.approx(0.8) and index["hit_at_k"] == pytest.approx(0.8)
    assert index["em"] == 0.0 and 0 < index["f1"] < 1
    [comparison] = outcome.results["comparisons"]
    assert comparison["baseline"] == "closed" and comparison["only_condition_correct"] == 4
    assert comparison["p_value"] == pytest.approx(2 / 16)
    assert set(retriever.queries) == {q["question"] for q in rows}
    assert sorted(p.name for p in outcome.out_dir.iterdir()) == [
        ".run.lock",  # held while a run writes; the report never reads it
        "manifest.json",
        "predictions.jsonl",
        "report.md",
        "report.png",
        "results.json",
    ]
    manifest = json.loads((outcome.out_dir / "manifest.json").read_text())
    assert manifest["question_ids"] == ["q0", "q1", "q2", "q3", "q4"]
    assert set(manifest["prompts"]) == {"eval_closed_book", "eval_with_sources"}
    assert (manifest["embedder"], manifest["hybrid"]) == (settings.embedder, settings.hybrid)
    assert manifest["context_cap"] == settings.context_cap
    assert manifest["indexes"] == {"index:facts": None}  # a stand-in: no index on disk
    assert manifest["packages"]["pocketrag"]


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_where_it_stopped(tmp_path, settings) -> None:
    calls = {"n": 0}

    def flaky(messages) -> str:
        calls["n"] += 1
        if calls["n"] == 4:
            raise Interrupt
        return reader(messages)

    config = _config(tmp_path)
    factory = lambda spec: FactRetriever("index:facts")  # noqa: E731
    with pytest.raises(Interrupt):
        run_eval(config, settings, generator=FakeGenerator(reply=flaky), retriever_factory=factory)
    assert len(read_predictions(config.out_dir)) == 3
    # a write cut short by the interruption: dropped and repaired, not glued to the next line
    with (config.out_dir / "predictions.jsonl").open("a") as fh:
        fh.write('{"qid": "q1", "condi')
    second = FakeGenerator(reply=reader)
    outcome = run_eval(config, settings, generator=second, retriever_factory=factory)
    assert outcome.resumed == 3 and outcome.answered == 7 and len(second.calls) == 7
    # q0 was answered before; q1 only half: 3 questions were answered under both conditions
    assert outcome.questions == 3
    rows = read_predictions(config.out_dir)
    assert sorted((r["qid"], r["condition"]) for r in rows) == sorted(
        (f"q{i}", c) for i in range(5) for c in ("closed", "index:facts")
    )
    assert outcome.results["conditions"]["index:facts"]["accuracy"] == pytest.approx(0.8)
    # nothing left to do: a third run answers nothing and rewrites the same results
    third = run_eval(config, settings, generator=FakeGenerator(), retriever_factory=factory)
    assert third.answered == 0 and third.results == outcome.results


def test_resume_refuses_a_run_with_other_settings(tmp_path, settings) -> None:
    config = _config(tmp_path, n=3, seed=1)
    run_eval(
        config,
        settings,
        generator=FakeGenerator(reply=reader),
        retriever_factory=lambda s: FactRetriever("index:facts"),
    )
    other = _config(tmp_path, n=3, seed=2)
    with pytest.raises(UsageError, match="question_ids"):
        run_eval(other, settings, generator=FakeGenerator(), retriever_factory=lambda s: None)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"context_cap": 2048}, "context_cap"),
        ({"embedder": "bge-small"}, "embedder"),
        ({"hybrid": False}, "hybrid"),
    ],
)
def test_resume_refuses_other_retrieval_or_context_settings(tmp_path, settings, override, key):
    factory = lambda spec: FactRetriever("index:facts")  # noqa: E731
    run_eval(_config(tmp_path, n=2), settings, generator=FakeGenerator(), retriever_factory=factory)
    with pytest.raises(UsageError, match=f"\\({key} differ\\)"):
        run_eval(
            _config(tmp_path, n=2),
            settings.with_overrides(**override),
            generator=FakeGenerator(),
            retriever_factory=factory,
        )


def _fake_index(home: Path, generation: str, chunks: int) -> None:
    """The parts of an index folder the manifest reads: CURRENT and the generation's params."""
    folder = home / "indexes" / "facts"
    (folder / generation).mkdir(parents=True)
    params = {"format": "pocketrag-index", "embedder": "all-MiniLM-L6-v2", "chunks": chunks}
    (folder / generation / "params.json").write_text(json.dumps(params))
    (folder / "CURRENT").write_text(generation + "\n")


def test_manifest_pins_the_index_generation_and_refuses_a_changed_index(
    tmp_path, settings, rag_home
) -> None:
    _fake_index(rag_home, "gen-000001", 5)
    factory = lambda spec: FactRetriever("index:facts")  # noqa: E731
    config = _config(tmp_path, n=2)
    run_eval(config, settings, generator=FakeGenerator(), retriever_factory=factory)
    manifest = json.loads((config.out_dir / "manifest.json").read_text())
    index = manifest["indexes"]["index:facts"]
    assert index["generation"] == "gen-000001" and index["embedder"] == "all-MiniLM-L6-v2"
    assert len(index["params_sha256"]) == 64 and index["chunks"] == 5
    assert "gen-000001" in (config.out_dir / "report.md").read_text()

    # unchanged: resuming (here with nothing left to do) is fine
    again = run_eval(config, settings, generator=FakeGenerator(), retriever_factory=factory)
    assert again.answered == 0

    _fake_index(rag_home, "gen-000002", 6)  # `rag index` added a file: a new generation
    with pytest.raises(UsageError, match="index:facts changed.*gen-000001.*gen-000002.*new --out"):
        run_eval(config, settings, generator=FakeGenerator(), retriever_factory=factory)


def test_index_warm_up_is_timed_apart_from_answering(tmp_path, settings) -> None:
    import time

    class SlowStart(FactRetriever):
        def retrieve(self, query: str, k: int):
            if not self.queries:
                time.sleep(0.3)  # a first query that loads an embedder
            return super().retrieve(query, k)

    retriever = SlowStart("index:facts")
    outcome = run_eval(
        _config(tmp_path, n=2),
        settings,
        generator=FakeGenerator(reply=reader),
        retriever_factory=lambda s: retriever,
    )
    assert outcome.warmup_seconds >= 0.3 and outcome.answered == 4
    assert len(retriever.queries) == 3  # one warm-up query, then one per index answer


def test_snapshot_then_replay_gives_the_same_evidence_without_searching(tmp_path, settings):
    snap = tmp_path / "snapshot.jsonl"
    first_gen = FakeGenerator(reply=reader)
    first = run_eval(
        _config(tmp_path, snapshot=snap),
        settings,
        generator=first_gen,
        retriever_factory=lambda s: FactRetriever("index:facts"),
    )
    recorded = [json.loads(line) for line in snap.read_text().splitlines()]
    assert len(recorded) == 5 and {r["condition"] for r in recorded} == {"index:facts"}

    def no_search(spec: str):
        raise AssertionError("a replay must not build a retriever")

    replay_gen = FakeGenerator(reply=reader)
    replayed = run_eval(
        EvalConfig(NQ, parse_conditions("closed,index:facts"), tmp_path / "replayed", replay=snap),
        settings,
        generator=replay_gen,
        retriever_factory=no_search,
    )
    assert [c for c in replay_gen.calls] == [c for c in first_gen.calls]

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: r[k] for k in ("qid", "condition", "prediction", "sources")} for r in rows]

    assert strip(read_predictions(replayed.out_dir)) == strip(read_predictions(first.out_dir))
    for name in ("closed", "index:facts"):
        for metric in ("n", "accuracy", "accuracy_ci", "em", "f1", "hit_at_k"):
            assert (
                replayed.results["conditions"][name][metric]
                == first.results["conditions"][name][metric]
            )


def test_replay_without_a_record_is_a_usage_error(tmp_path, settings) -> None:
    snap = tmp_path / "snapshot.jsonl"
    run_eval(
        _config(tmp_path, n=2, snapshot=snap),
        settings,
        generator=FakeGenerator(),
        retriever_factory=lambda s: FactRetriever("index:facts"),
    )
    with pytest.raises(UsageError, match="has no retrieval for 2 of the 2 \\(condition 'web'"):
        run_eval(
            EvalConfig(NQ, parse_conditions("closed,web"), tmp_path / "r2", n=2, replay=snap),
            settings,
            generator=FakeGenerator(),
        )
    with pytest.raises(UsageError, match="not both"):
        run_eval(_config(tmp_path, snapshot=snap, replay=snap), settings)


def test_a_question_too_long_for_the_context_is_scored_wrong_and_the_run_goes_on(
    tmp_path, settings
) -> None:
    """Before: one such question stopped the run (exit 2), and every resume stopped there."""
    bench = tmp_path / "bench.jsonl"
    rows = [
        {"question": "Who wrote Emma?", "answers": ["Jane Austen"]},
        {"question": "why " * 400 + "?", "answers": ["because"]},
        {"question": "What is the capital of Australia?", "answers": ["Canberra"]},
    ]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    generator = FakeGenerator(reply=lambda m: "Jane Austen, Canberra.", context_size=300)
    config = EvalConfig(benchmark=str(bench), conditions=parse_conditions("closed"),
                        out_dir=tmp_path / "run")  # fmt: skip
    outcome = run_eval(config, settings, generator=generator)
    written = read_predictions(outcome.out_dir)
    assert [r["prediction"] for r in written] == [
        "Jane Austen, Canberra.",
        "",
        "Jane Austen, Canberra.",
    ]
    assert "not answered" in written[1]["warnings"][0] and written[1]["correct"] == 0.0
    assert outcome.results["conditions"]["closed"]["n"] == 3
    again = run_eval(config, settings, generator=generator)  # nothing left to do
    assert again.answered == 0 and again.resumed == 3


def _gold_benchmark(tmp_path: Path, with_gold: bool = True) -> str:
    rows = [
        {"question": "Who wrote Emma?", "answers": ["Jane Austen"],
         "gold_passages": [{"title": "Emma", "text": "Emma is a novel by Jane Austen."}]},
        {"question": "Which planet has rings?", "answers": ["Saturn"],
         "ctxs": [{"title": "Rings", "text": "Saturn has rings.", "isgold": True},
                  {"title": "Mars", "text": "Mars is red.", "isgold": False}]},
        {"question": "Where is Canberra?", "answers": ["Australia"],
         "gold_passages": ["Canberra is the capital of Australia."] if with_gold else []},
    ]  # fmt: skip
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_the_oracle_condition_reads_the_gold_passages_beside_the_retriever(
    tmp_path, settings
) -> None:
    generator = FakeGenerator(reply=reader)
    config = EvalConfig(
        benchmark=_gold_benchmark(tmp_path),
        conditions=parse_conditions("closed,oracle,index:facts"),
        out_dir=tmp_path / "run",
    )
    retriever = FactRetriever("index:facts")
    outcome = run_eval(config, settings, generator=generator, retriever_factory=lambda s: retriever)
    rows = {(r["condition"], r["qid"]): r for r in read_predictions(outcome.out_dir)}
    oracle = [r for (c, _), r in rows.items() if c == "oracle"]
    assert [s["text"] for s in oracle[1]["sources"]] == ["Saturn has rings."]  # isgold only
    assert {s["origin"] for r in oracle for s in r["sources"]} == {"oracle"}
    results = outcome.results
    assert results["conditions"]["oracle"]["accuracy"] == 1.0
    assert results["conditions"]["oracle"]["hit_at_k"] == 1.0
    assert results["conditions"]["index:facts"]["accuracy"] < 1.0  # "planet" is not retrieved
    # one warm-up, then the index condition's three questions: the oracle searches nothing
    assert retriever.queries[1:] == [
        "Who wrote Emma?", "Which planet has rings?", "Where is Canberra?",
    ]  # fmt: skip
    by_name = {c["condition"]: c for c in results["comparisons"]}
    assert (by_name["oracle"]["helped"], by_name["oracle"]["hurt"]) == (3, 0)
    assert all(isinstance(m["mean_ttft_s"], float) for m in results["conditions"].values())
    report = (outcome.out_dir / "report.md").read_text()
    assert "helped/hurt" in report and "| oracle | 3 | 100.0" in report and "+3/−0" in report


def test_the_oracle_condition_needs_gold_for_every_question(tmp_path, settings) -> None:
    config = EvalConfig(
        benchmark=_gold_benchmark(tmp_path, with_gold=False),
        conditions=parse_conditions("closed,oracle"),
        out_dir=tmp_path / "run",
    )
    with pytest.raises(UsageError, match="oracle condition needs gold passages, but 1 of the 3"):
        run_eval(config, settings, generator=FakeGenerator(reply=reader))


def test_conditions_carry_their_own_k_so_one_run_compares_settings(tmp_path, settings) -> None:
    many = [
        Passage(f"Passage {i} about Emma, a novel by Jane Austen.", f"p{i}", f"x#{i}",
                "index:facts", 1.0 - i / 10)
        for i in range(6)
    ]  # fmt: skip
    retriever = FakeRetriever("index:facts", many)
    conditions = parse_conditions("closed,index:facts[k=1],index:facts[k=4]")
    assert [c.k for c in conditions] == [None, 1, 4]
    outcome = run_eval(
        _config(tmp_path, conditions=conditions),
        settings.with_overrides(reranker="none"),  # whole passages: k alone decides
        generator=FakeGenerator(reply=reader),
        retriever_factory=lambda s: retriever,
    )
    rows = read_predictions(outcome.out_dir)
    counts = {r["condition"]: r["n_sources"] for r in rows}
    assert counts == {"closed": 0, "index:facts[k=1]": 1, "index:facts[k=4]": 4}
    assert set(outcome.results["conditions"]) == {"closed", "index:facts[k=1]", "index:facts[k=4]"}


def test_condition_options_become_settings_for_that_condition_alone(settings) -> None:
    plain, tuned, oracle = parse_conditions(
        "index:w,index:w[k=2, rerank=bm25, tokens=300, cut=1.5, order=best-last],oracle"
    )
    assert plain.settings(settings) == settings
    chosen = tuned.settings(settings)
    assert (chosen.k, chosen.reranker, chosen.evidence_tokens) == (2, "bm25", 300)
    assert (chosen.relevance_cut, chosen.evidence_order) == (1.5, "best-last")
    assert oracle.settings(settings).reranker == "none"  # gold passages are read whole


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("index:w[k=0]", "k must be between 1 and 100"),
        ("index:w[budget=3]", "Unknown option 'budget=3'"),
        ("index:w[k=1]x", "Malformed condition"),
        ("index:w[order=middle]", "evidence_order must be one of"),
        ("index:w[tokens=lots]", "evidence_tokens must be a whole number"),
        ("closed[k=2]", "closed condition reads no passages"),
    ],
)
def test_condition_options_are_checked(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_conditions(text)
