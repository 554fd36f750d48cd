"""Benchmark loaders on small files in each format, sampling, and the offline message."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from evals import benchmarks
from evals.benchmarks import KNOWN, Question, cached_path, load_benchmark, sample_questions
from rag.core.config import load_settings
from rag.core.errors import UsageError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"


def _load(name: str):
    return load_benchmark(str(FIXTURES / name), load_settings())


def test_nq_open_jsonl() -> None:
    bench = _load("nq_open.jsonl")
    assert len(bench.questions) == 5
    first = bench.questions[0]
    assert first == Question("q0", "who wrote the novel emma", ("Jane Austen",))
    assert bench.questions[2].answers == ("9 November 1989", "1989")
    assert len(bench.sha256) == 64


@pytest.mark.parametrize("name", ["triviaqa_official.json", "triviaqa_rc_nocontext.jsonl"])
def test_triviaqa_formats_keep_every_alias(name: str) -> None:
    bench = _load(name)
    assert [q.id for q in bench.questions] == ["tc_1", "tc_2"]
    hamlet = bench.questions[1]
    assert hamlet.question == "Who wrote Hamlet?"
    assert {"William Shakespeare", "Shakespeare", "The Bard", "bard"} <= set(hamlet.answers)
    assert len(hamlet.answers) == len(set(hamlet.answers))


def test_popqa_tsv_possible_answers() -> None:
    bench = _load("popqa.tsv")
    assert [q.id for q in bench.questions] == ["4222362", "6054"]
    assert bench.questions[0].question == "What is George Rankin's occupation?"
    assert bench.questions[0].answers == ("politician", "political leader", "political figure")


def test_simpleqa_csv_problem_answer() -> None:
    bench = _load("simpleqa.csv")
    assert [q.question for q in bench.questions] == [
        "Who received the IEEE Frank Rosenblatt Award in 2010?",
        "How many islands, roughly, does the Faroe archipelago have?",
    ]
    assert [q.answers for q in bench.questions] == [("Michio Sugeno",), ("18",)]


def test_generic_jsonl_dedupes_ids_and_skips_rows_without_answers() -> None:
    bench = _load("generic.jsonl")
    assert [q.id for q in bench.questions] == ["g1", "g2", "g1#1"]
    assert bench.questions[1].answers == ("8", "eight")


def test_gzipped_jsonl(tmp_path: Path) -> None:
    target = tmp_path / "nq.jsonl.gz"
    target.write_bytes(gzip.compress((FIXTURES / "nq_open.jsonl").read_bytes()))
    assert len(load_benchmark(str(target), load_settings()).questions) == 5


def test_bad_inputs_are_usage_errors(tmp_path: Path) -> None:
    settings = load_settings()
    with pytest.raises(UsageError, match="No benchmark file"):
        load_benchmark(str(tmp_path / "missing.jsonl"), settings)
    with pytest.raises(UsageError, match="Unknown benchmark 'mmlu'"):
        load_benchmark("mmlu", settings)
    odd = tmp_path / "questions.txt"
    odd.write_text("who?\n")
    with pytest.raises(UsageError, match="Cannot tell the format"):
        load_benchmark(str(odd), settings)
    empty = tmp_path / "nothing.jsonl"
    empty.write_text('{"text": "no question here"}\n')
    with pytest.raises(UsageError, match="no usable questions"):
        load_benchmark(str(empty), settings)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "a", "answers": ["b"]}\n{not json\n')
    with pytest.raises(UsageError, match="line 2 is not JSON"):
        load_benchmark(str(broken), settings)


def test_known_benchmark_offline_names_the_file_to_provide(monkeypatch) -> None:
    def offline(url: str, target: Path) -> None:
        import httpx

        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(benchmarks, "_download_url", offline)
    settings = load_settings()
    with pytest.raises(UsageError) as caught:
        load_benchmark("nq_open", settings)
    message = str(caught.value)
    assert str(cached_path(KNOWN["nq_open"], settings)) in message
    assert "--benchmark PATH" in message and "ConnectError" in message


def test_known_benchmark_downloads_once_into_the_cache(monkeypatch) -> None:
    calls: list[str] = []

    def download(url: str, target: Path) -> None:
        calls.append(url)
        shutil.copyfile(FIXTURES / "simpleqa.csv", target)

    monkeypatch.setattr(benchmarks, "_download_url", download)
    settings = load_settings()
    first = load_benchmark("simpleqa", settings)
    second = load_benchmark("SimpleQA", settings)
    assert calls == [KNOWN["simpleqa"].url]
    assert first.name == second.name == "simpleqa"
    assert first.path == cached_path(KNOWN["simpleqa"], settings)
    assert len(second.questions) == 2


def test_sampling_is_deterministic_and_keeps_file_order() -> None:
    pool = [Question(f"q{i}", f"question {i}", ("x",)) for i in range(200)]
    a = sample_questions(pool, 20, seed=7)
    assert a == sample_questions(pool, 20, seed=7)
    assert [q.id for q in a] != [q.id for q in sample_questions(pool, 20, seed=8)]
    assert [int(q.id[1:]) for q in a] == sorted(int(q.id[1:]) for q in a)
    assert len({q.id for q in a}) == 20
    assert sample_questions(pool, None, seed=0) == pool
    assert sample_questions(pool, 500, seed=0) == pool
