"""Benchmark rows: each format's rows, with where each is, and the `Question` in a row.

JSONL, JSON, CSV/TSV and parquet rows come with where they are (`line 3`, `item 2`, `row
5`), so a bad one is named. A row's question, answers and id say what is asked and how it
is scored, so text in them that cannot be encoded (a lone surrogate, from a JSON escape
such as `\\ud800`) is refused with the file and line; gold passages are data, kept with
U+FFFD in its place (`rag.core.safe_text`). So is a number too long for Python to read
(over 4300 digits): one line, never a ValueError traceback.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.errors import UsageError
from rag.core.safe_text import SURROGATE, replace_surrogates


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    #: (title, text) of the passages known to hold the answer, when the benchmark has them
    #: (the NQ oracle file's `ctxs` with `isgold`, or `gold_passages`): the `oracle` condition
    gold: tuple[tuple[str, str], ...] = ()


#: Where a row is, for a message: `line 3` (JSONL, CSV), `item 2` (JSON), `row 5` (parquet).
Located = list[tuple[str, Any]]
_FIX = "Fix that row of the benchmark file, or leave it out."


def read_rows(data: bytes, path: Path, lower: str) -> Located:
    """The rows of a benchmark file (decompressed), by its name `lower` (without `.gz`)."""
    if lower.endswith(".parquet"):
        return _numbered(_parquet_rows(data, path), "row")
    if lower.endswith((".jsonl", ".ndjson")):
        return _jsonl_rows(data, path)
    if lower.endswith(".json"):
        return _numbered(_json_rows(data, path), "item")
    return _csv_rows(data, path, delimiter="\t" if lower.endswith(".tsv") else ",")


def questions_from(rows: Located, path: Path) -> list[Question]:
    """The rows' questions, in order; a row with no question or no answer is left out."""
    questions = []
    for i, (where, row) in enumerate(rows):
        try:
            question = question_from_row(row, i)
        except _BadValue as exc:
            raise UsageError(f"{path} {where} {exc}. {_FIX}") from None
        if question is not None:
            _refuse_bad_text(question, path, where)
            questions.append(question)
    return questions


def _text(data: bytes, path: Path) -> str:
    """The file as text; invalid UTF-8 is bad input, named with where it is."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"{path} is not UTF-8 text (an invalid byte on line {line}). Save it as UTF-8."
        ) from None


class _BadValue(ValueError):
    """A row value that cannot be read; the message says why, the caller says where."""


def _too_long_number() -> str:
    return f"holds a number too long to read (over {sys.get_int_max_str_digits()} digits)"


def _numbered(rows: list[Any], word: str) -> Located:
    return [(f"{word} {i}", row) for i, row in enumerate(rows, start=1)]


def _jsonl_rows(data: bytes, path: Path) -> Located:
    rows = []
    for number, line in enumerate(_text(data, path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path} line {number} is not JSON ({exc.msg}).") from None
        except ValueError:  # an integer past Python's digit limit
            raise UsageError(f"{path} line {number} {_too_long_number()}. {_FIX}") from None
        except RecursionError:
            raise UsageError(f"{path} line {number} is nested too deeply to read.") from None
    return rows


def _json_rows(data: bytes, path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(_text(data, path))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}).") from None
    except ValueError:  # an integer past Python's digit limit
        raise UsageError(f"{path} {_too_long_number()}. {_FIX}") from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to read.") from None
    if isinstance(doc, dict) and isinstance(doc.get("Data"), list):  # official TriviaQA
        return doc["Data"]
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return doc["data"]
    if isinstance(doc, list):
        return doc
    raise UsageError(f"{path}: expected a list of questions or an object with `Data`.")


def _csv_rows(data: bytes, path: Path, *, delimiter: str) -> Located:
    csv.field_size_limit(10_000_000)
    reader = csv.DictReader(io.StringIO(_text(data, path), newline=""), delimiter=delimiter)
    try:
        return [(f"line {reader.line_num}", row) for row in reader]
    except csv.Error as exc:
        raise UsageError(f"{path} line {reader.line_num} is not valid CSV/TSV ({exc}).") from None


def _parquet_rows(data: bytes, path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            f"Reading {path} needs pyarrow: pip install pyarrow (or convert it to JSONL)."
        ) from None
    try:
        return pq.read_table(pyarrow.BufferReader(data)).to_pylist()
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        cause = " ".join(str(exc).split())[:200]
        raise UsageError(
            f"{path} is not a readable parquet file ({cause}). Download it again, or convert "
            "it to JSONL."
        ) from None


def _answers_value(value: Any) -> list[str]:
    """Gold answers from a list, a JSON list in a string (PopQA), TriviaQA answer object, str."""
    if value is None:
        return []
    if isinstance(value, dict):  # TriviaQA: official `Answer` or HF `answer`
        found: list[str] = []
        for key in (
            "Value",
            "value",
            "Aliases",
            "aliases",
            "NormalizedAliases",
            "normalized_aliases",
        ):
            found.extend(_answers_value(value.get(key)))
        return found
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            try:
                import ast

                parsed = ast.literal_eval(text)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                parsed = None  # not a list after all: the text is the answer
        except RecursionError:
            parsed = None  # nested too deeply to be a list of answers: the text is the answer
        except ValueError:  # a list, of a number Python cannot read: not a usable answer
            raise _BadValue(f"has answers that are a list, which {_too_long_number()}") from None
        if isinstance(parsed, list):
            return _answers_value(parsed)
    return [text] if text else []


_QUESTION_KEYS = ("question", "Question", "problem", "query")
_ANSWER_KEYS = ("answers", "answer", "possible_answers", "Answer", "golds", "gold_answers")
_ID_KEYS = ("id", "question_id", "QuestionId", "qid")


def question_from_row(row: Any, index: int) -> Question | None:
    """One benchmark row -> Question, or None when it has no question or no answer."""
    if not isinstance(row, dict):
        return None
    text = next((str(row[k]).strip() for k in _QUESTION_KEYS if row.get(k)), "")
    answers: list[str] = []
    for key in _ANSWER_KEYS:
        if key in row:
            answers = _answers_value(row[key])
            if answers:
                break
    if not text or not answers:
        return None
    qid = next((str(row[k]) for k in _ID_KEYS if row.get(k) not in (None, "")), f"q{index}")
    unique = tuple(dict.fromkeys(a.strip() for a in answers if a.strip()))
    return Question(id=qid, question=text, answers=unique, gold=gold_passages(row))


def _refuse_bad_text(question: Question, path: Path, where: str) -> None:
    """A question, answer or id holding a lone surrogate: refused (see the module's docstring:
    it cannot be written to predictions.jsonl, nor mended without changing what it says)."""
    for field_name, values in (
        ("question", (question.question,)),
        ("id", (question.id,)),
        ("answer", question.answers),
    ):
        for value in values:
            found = SURROGATE.search(value)
            if found:
                code = ord(found.group())
                raise UsageError(
                    f"{path} {where} has {'an' if field_name != 'question' else 'a'} "
                    f"{field_name} that is not valid text (a lone surrogate, U+{code:04X}, at "
                    f"character {found.start() + 1}: half of a UTF-16 pair, as the escape "
                    f"\\u{code:04x} writes). {_FIX}"
                )


def gold_passages(row: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """`gold_passages` (texts or {title, text}), else the `ctxs` marked `isgold` (the NQ
    oracle format); anything else in them is ignored. Lone surrogates become U+FFFD: a
    passage is data, and no tokenizer takes them."""
    found: list[tuple[str, str]] = []
    listed = row.get("gold_passages")
    items = listed if isinstance(listed, list) else []
    if not items and isinstance(row.get("ctxs"), list):
        items = [c for c in row["ctxs"] if isinstance(c, dict) and c.get("isgold")]
    for item in items:
        if isinstance(item, str) and item.strip():
            found.append(("", replace_surrogates(item.strip())))
        elif isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"].strip():
            title = replace_surrogates(str(item.get("title") or ""))
            found.append((title, replace_surrogates(item["text"].strip())))
    return tuple(dict.fromkeys(found))
