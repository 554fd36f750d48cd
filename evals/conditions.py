"""Conditions (where the evidence comes from) and the retrieval snapshot that pins them down.

A condition is `closed` (no evidence), `oracle` (the benchmark's own gold passages: the
reader's ceiling, beside which the retrievers are measured), `web`, `index:NAME`, or a
`+`-joined combination (`web+index:wiki`). Every condition uses the same model, decoding
and prompt family; only the passages differ, so differences in accuracy are
attributable to the evidence.

A snapshot is a JSONL file with one line per (condition, question): the query,
k and the passages returned. Replaying it answers the same questions from the
same evidence without touching the search engine or the index, e.g. to re-run
a web eval with another model, or to re-score it after a prompt change.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evals.jsonl import append_line, bad_line, read_jsonl
from rag.core.config import Settings, parse_setting
from rag.core.errors import UsageError
from rag.core.types import Passage
from rag.evidence import candidates_wanted
from rag.orchestrator import Retrieved, retrieve
from rag.sources import Retriever

CLOSED = "closed"
ORACLE = "oracle"


#: Options a condition may carry (`index:wiki[k=1,rerank=none]`) and the setting each sets.
OPTIONS: dict[str, str] = {
    "k": "k",
    "rerank": "reranker",
    "tokens": "evidence_tokens",
    "cut": "relevance_cut",
    "order": "evidence_order",
    "fetch": "fetch",  # web pages read per search (web[fetch=3]); a web source's own
}


@dataclass(frozen=True)
class Condition:
    """`name` is spelled as the user gave it; `sources` are retriever specs (empty: closed);
    `options` are settings for this condition alone, as (setting, value) pairs."""

    name: str
    sources: tuple[str, ...]
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def closed(self) -> bool:
        return not self.sources

    @property
    def oracle(self) -> bool:
        return self.sources == (ORACLE,)

    @property
    def k(self) -> int | None:
        return dict(self.options).get("k")

    def settings(self, base: Settings) -> Settings:
        """The run's settings with this condition's options. The oracle reads its gold
        passages whole (no reranker, no budget but the context), unless told otherwise."""
        chosen: dict[str, Any] = {}
        if self.oracle:
            chosen = {"reranker": "none", "evidence_tokens": _WHOLE}
        chosen.update(self.options)
        return base.with_overrides(**chosen)


#: An evidence budget no context reaches: only the model's context limits the passages.
_WHOLE = 1_048_576


def _valid_source(spec: str) -> bool:
    return spec == "web" or (spec.startswith("index:") and len(spec) > len("index:"))


_OPTIONS = re.compile(r"^(?P<body>[^\[\]]+)\[(?P<options>[^\[\]]*)\]$")
#: A comma between conditions, not one between a condition's options in brackets.
_TOP_LEVEL_COMMA = re.compile(r",(?![^\[\]]*\])")
_EXAMPLE = "index:wiki[k=1,rerank=none,tokens=300,cut=1.5,order=best-last] or web[fetch=3]"


def _options(name: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """`index:wiki[k=1]` -> ("index:wiki", (("k", 1),)): a condition can carry its own
    settings, so one run compares them side by side (`index:wiki[k=1],index:wiki[k=5]`)."""
    found = _OPTIONS.match(name)
    if found is None:
        if "[" in name or "]" in name:
            raise UsageError(f"Malformed condition {name!r}: options go last, as in {_EXAMPLE}.")
        return name, ()
    chosen: dict[str, Any] = {}
    for option in found["options"].replace(";", ",").split(","):
        if not option.strip():
            continue
        key, _, raw = (part.strip() for part in option.partition("="))
        setting = OPTIONS.get(key)
        if setting is None or not raw:
            raise UsageError(
                f"Unknown option {option.strip()!r} in condition {name!r}: options are "
                f"{', '.join(f'{k}=' for k in OPTIONS)} as in {_EXAMPLE}."
            )
        chosen[setting] = parse_setting(setting, raw, f"condition {name!r}")
    return found["body"].strip(), tuple(chosen.items())


def parse_conditions(text: str) -> list[Condition]:
    """`closed,index:wiki,web+index:wiki[k=1]` -> Conditions, in the given order, no duplicates."""
    conditions: list[Condition] = []
    for raw in _TOP_LEVEL_COMMA.split(text):
        name = raw.strip()
        if not name:
            continue
        body, options = _options(name)
        if body == CLOSED:
            if options:
                raise UsageError("The closed condition reads no passages, so it takes no options.")
            condition = Condition(CLOSED, ())
        elif body == ORACLE:
            condition = Condition(name, (ORACLE,), options)
        else:
            parts = tuple(p.strip() for p in body.split("+"))
            bad = [p for p in parts if not _valid_source(p)]
            if bad:
                raise UsageError(
                    f"Unknown condition part {bad[0]!r} in {name!r}: use closed, oracle, web, "
                    "index:NAME, or a combination such as web+index:NAME."
                )
            if len(set(parts)) != len(parts):
                raise UsageError(f"Condition {name!r} names the same source twice.")
            condition = Condition(name, parts, options)
        if condition.name in {c.name for c in conditions}:
            raise UsageError(f"Condition {condition.name!r} is given twice.")
        conditions.append(condition)
    if not conditions:
        raise UsageError("No conditions given: e.g. --conditions closed,index:wiki")
    return conditions


def passage_to_dict(passage: Passage) -> dict[str, Any]:
    return asdict(passage)


def passage_from_dict(data: dict[str, Any]) -> Passage:
    """A recorded passage; TypeError/KeyError/ValueError when `data` is not one."""
    if not isinstance(data.get("text"), str):
        raise TypeError("a passage has no `text` string")
    return Passage(
        text=data["text"],
        title=str(data.get("title", "")),
        location=str(data.get("location", "")),
        origin=str(data.get("origin", "")),
        score=float(data.get("score", 0.0)),
        meta=dict(data.get("meta") or {}),
    )


def _record(row: Any) -> Retrieved:
    """A snapshot line's retrieval result; KeyError/TypeError/... when it is not one."""
    hash((row["condition"], row["question"]))  # the key of the record must be usable
    return Retrieved(
        str(row["question"]),
        [passage_from_dict(p) for p in row["passages"]],
        [str(w) for w in row.get("warnings") or []],
        float(row.get("seconds", 0.0)),
    )


def snapshot_record_problem(row: Any) -> str | None:
    """Why a JSON value is not a snapshot record, or None when it is one."""
    try:
        _record(row)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"is not a snapshot record ({type(exc).__name__}: {exc})"
    return None


class Snapshot:
    """Recorded retrieval results keyed by (condition, question text).

    Keyed by the question text rather than an id so a snapshot made on one
    sample still serves a run on an overlapping sample of the same benchmark.
    """

    def __init__(self, records: dict[tuple[str, str], Retrieved] | None = None) -> None:
        self.records = records or {}

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        """Read a snapshot file, without changing it. A damaged line is a UsageError naming
        it; a last line cut short by an interrupted run (no newline) is not a record."""
        if path.is_dir():
            raise UsageError(
                f"--replay {path} is a folder. Give the snapshot file recorded with --snapshot."
            )
        if not path.is_file():
            raise UsageError(f"No snapshot file at {path}. Record one with --snapshot FILE.")
        fix = "Replay a file recorded with --snapshot FILE, or record a new one."
        records: dict[tuple[str, str], Retrieved] = {}
        for number, row in read_jsonl(path, fix).rows:
            problem = snapshot_record_problem(row)
            if problem is not None:
                raise bad_line(path, number, problem, fix)
            records[(row["condition"], row["question"])] = _record(row)
        if not records:
            raise UsageError(f"{path} holds no snapshot records. {fix}")
        return cls(records)

    def check(self, conditions: Sequence[Condition], questions: Sequence[str]) -> None:
        """Fail before any model time is spent when the snapshot lacks something to replay."""
        for condition in conditions:
            if condition.closed or condition.oracle:
                continue
            missing = [q for q in questions if (condition.name, q) not in self.records]
            if missing:
                raise UsageError(
                    f"The replay snapshot has no retrieval for {len(missing)} of the "
                    f"{len(questions)} (condition {condition.name!r}) questions, e.g. "
                    f"{missing[0]!r}. Replay only the conditions and questions it recorded "
                    "(same benchmark, --n and --seed), or record a new one with --snapshot."
                )

    def get(self, condition: str, question: str) -> Retrieved:
        found = self.records.get((condition, question))
        if found is None:
            raise UsageError(
                f"The replay snapshot has no retrieval for condition {condition!r} and question "
                f"{question!r}. Replay only the conditions and questions it recorded, or record "
                "a new snapshot with --snapshot."
            )
        return found


def append_snapshot(path: Path, condition: str, question: str, k: int, got: Retrieved) -> None:
    """Add one retrieval result, one whole line at once, so an interrupted run keeps what
    it did and a failed write (a full disk) leaves no half line."""
    row = {
        "condition": condition,
        "question": question,
        "k": k,
        "seconds": round(got.seconds, 4),
        "warnings": got.warnings,
        "passages": [passage_to_dict(p) for p in got.passages],
    }
    append_line(path, row)


def _with_options(retriever: Retriever, condition: Condition) -> Retriever:
    """`retriever` as the condition's options want it: `fetch=N` gives a web source a twin
    reading N pages (same engines and cache), so `web` and `web[fetch=3]` share one run."""
    fetch = dict(condition.options).get("fetch")
    if fetch is None:
        return retriever
    if "web" not in condition.sources:
        raise UsageError(
            f"Condition {condition.name!r}: fetch= applies to web sources only (web[fetch=3])."
        )
    twin = getattr(retriever, "with_fetch", None)
    return retriever if twin is None else twin(fetch)  # an index beside the web: as it is


class EvidenceSource:
    """Retrieves a condition's passages: live, or from a replayed snapshot (never both)."""

    def __init__(
        self,
        conditions: Sequence[Condition],
        *,
        settings: Settings,
        build: Callable[[str], Retriever],
        replay: Snapshot | None = None,
        snapshot_path: Path | None = None,
        gold: dict[str, tuple[tuple[str, str], ...]] | None = None,
    ) -> None:
        self.settings = settings
        self.k = settings.k
        #: question text -> its gold (title, text) passages, for the `oracle` condition
        self.gold = gold or {}
        self.replay = replay
        self.snapshot_path = snapshot_path
        self._retrievers: dict[str, list[Retriever]] = {}
        #: source spec -> its retriever; empty for a replay, which searches nothing
        self.retrievers: dict[str, Retriever] = {}
        if replay is None:
            # Build up front, so an unknown index fails before the model spends any time.
            built = self.retrievers
            for condition in conditions:
                if condition.oracle:
                    continue
                for spec in condition.sources:
                    if spec not in built:
                        built[spec] = build(spec)
                self._retrievers[condition.name] = [
                    _with_options(built[s], condition) for s in condition.sources
                ]

    def warm_up(self, query: str, specs: Collection[str]) -> float:
        """Query each local index among `specs` once, unrecorded, and return the seconds it
        took: the first query loads the embedder, which is start-up, not answering time.
        Web sources are not warmed up, as that would be one more real search."""
        started = time.perf_counter()
        for spec, retriever in self.retrievers.items():
            if spec in specs and spec.startswith("index:"):
                retriever.retrieve(query, self.k)
        return time.perf_counter() - started

    def retrieve(self, condition: Condition, question: str, *, record: bool = True) -> Retrieved:
        """The condition's passages for `question`. A live retrieval is added to the snapshot
        being recorded, unless `record` is False: then the caller records it (`record`),
        as the eval runner does once the answer is in, in the order answers are written."""
        if condition.closed:
            return Retrieved(question, [], [], 0.0)
        chosen = condition.settings(self.settings)
        k = candidates_wanted(chosen)
        if condition.oracle:
            passages = [
                Passage(text, title, f"gold#{i}", ORACLE, 1.0)
                for i, (title, text) in enumerate(self.gold.get(question, ()), start=1)
            ]
            return Retrieved(question, passages[: chosen.k], [], 0.0, sources_asked=1)
        if self.replay is not None:
            got = self.replay.get(condition.name, question)
            # The recorded search time stands in for the search, so latencies stay comparable.
            return Retrieved(
                question,
                got.passages[: k * len(condition.sources)],
                got.warnings,
                got.seconds,
                sources_asked=len(condition.sources),
            )
        got = retrieve(question, self._retrievers[condition.name], chosen)
        if record:
            self.record(condition, question, got)
        return got

    def record(self, condition: Condition, question: str, got: Retrieved) -> None:
        """Add a live retrieval result to the snapshot being recorded, if one is."""
        if self.snapshot_path is None or self.replay is not None:
            return
        if condition.closed or condition.oracle:
            return
        k = candidates_wanted(condition.settings(self.settings))
        append_snapshot(self.snapshot_path, condition.name, question, k, got)
