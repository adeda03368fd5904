"""Shared by the record- and feature-isolation tests (issue 20): one collector's unit run
against the sandbox, the AWS answers it read, and what its observations are about.

- `UnitProbe`: an exporter whose poller runs exactly one unit of one collector, with every
  answer shape-checked and captured (`answers`), so a test can poll it again and again with
  different faults set and read its metrics and landing-page row.
- `removal_cases`: from the captured answers and botocore's output shapes, one case per
  optional member of a record (a list member's structure, a nested structure, or a
  describe/get answer's top level) that the sandbox actually sent: the record to take it
  from, its scope value (`record`) and its wire name (what the sandbox's fault removes).
- `identities`: what each observation is about (a resource, a flow, a job...), so "the rest
  is still served" compares subjects, not figures a removed field may legitimately change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.model import OperationModel, Shape

from drwatch.config import Config
from drwatch.core.model import KafkaFlowRef, Observations, ResourceRef, UnitKey, UnitResult
from drwatch.exporter.collectors import collector_classes
from drwatch.exporter.runner import UnitRunner, unit_schedules
from drwatch.exporter.server import unit_row
from drwatch.exporter.service import Exporter
from drwatch.sandbox import demo
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.validation import validate_response
from tests.conftest import NOW
from tests.helpers import FakeClock, ImmediateExecutor
from tests.test_metrics import samples

MAX_DEPTH = 4
# Members that page a listing: removing them changes which records are read, not a record.
PAGING = frozenset(
    {"nexttoken", "marker", "nextmarker", "continuationtoken", "nextcontinuationtoken",
     "startafter", "keycount", "maxkeys", "istruncated"}
)  # fmt: skip
# Observations that count records rather than name a subject: a removed field may move a
# record from one count to another, which is the point, not a loss.
AGGREGATES = frozenset({"job_counts", "job_summaries"})


@dataclass
class Answer:
    signing_name: str
    operation: str
    model: OperationModel
    parsed: dict[str, Any]


@dataclass
class Capture:
    answers: list[Answer] = field(default_factory=list)

    def __call__(self, parsed: Mapping[str, Any], model: OperationModel, **_: Any) -> None:
        if (
            "Error" in parsed
            or model.output_shape is None
            or model.service_model.signing_name == "sts"
        ):
            return  # credentials are no record of the unit
        body = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
        self.answers.append(
            Answer(model.service_model.signing_name, model.name, model, body)
        )  # fmt: skip


class UnitProbe:
    """One unit of one collector, polled on demand through a real poller and metrics view."""

    def __init__(self, config: Config, unit: UnitKey) -> None:
        self.capture = Capture()
        handlers = [("after-call.*.*", validate_response), ("after-call.*.*", self.capture)]
        self.clock = FakeClock(NOW)
        self.exporter: Exporter = demo.sandbox_exporter(
            config, clock=self.clock, executor=ImmediateExecutor(), extra_handlers=handlers
        )
        classes = collector_classes([unit.collector])
        (self.schedule,) = [s for s in unit_schedules(config, classes) if s.key == unit]
        self.runner = UnitRunner(config, self.exporter.aws, classes, self.clock)
        self.exporter.poller.replace_units([self.schedule], self.recording_runner)
        self.unit = unit
        self.last: UnitResult | None = None

    def recording_runner(self, schedule: Any) -> UnitResult:
        self.last = self.runner(schedule)
        return self.last

    def poll(self) -> UnitResult:
        self.capture.answers.clear()
        self.exporter.poller.run_round()
        assert self.last is not None
        return self.last

    def metric(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return samples(self.exporter.metrics.render().decode(), name)

    def skipped_total(self) -> float:
        return sum(self.metric("drwatch_collector_records_skipped_total").values())

    def landing_row(self) -> Any:
        (status,) = self.exporter.poller.snapshot()
        return unit_row(status)

    def fault(self, **fields: Any) -> FaultRule:
        return FaultRule(account_id=self.unit.account_id, region=self.unit.region, **fields)


# --- what observations are about ----------------------------------------------------------

# The fields that say which subject an observation is about; NAMES are those that name it
# (an id, name or ARN) rather than place or classify it.
SUBJECT = ("ref", "source", "flow", "mechanism", "location_account_id", "location_region",
           "job_id", "kind", "vault", "plan", "rule", "rule_id", "destination", "topic",
           "partition", "connector", "destination_account_id", "destination_region")  # fmt: skip
NAMES = frozenset({"job_id", "vault", "plan", "rule", "rule_id", "destination", "topic",
                   "connector"})  # fmt: skip


def identities(observations: Observations) -> dict[tuple[Any, ...], frozenset[str]]:
    """(kind, subject...) of every observation that names a subject (aggregates left out),
    with the names (ids, ARNs) it goes by."""
    found: dict[tuple[Any, ...], frozenset[str]] = {}
    for kind in (f.name for f in dataclasses.fields(Observations)):
        if kind in AGGREGATES:
            continue
        for item in getattr(observations, kind):
            subject = tuple((k, _flat(getattr(item, k))) for k in SUBJECT if hasattr(item, k))
            found[(kind, *subject)] = frozenset(_names(item))
    return found


def _flat(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return tuple(str(getattr(value, f.name)) for f in dataclasses.fields(value))
    return str(value)


def _names(item: Any) -> set[str]:
    names: set[str] = set()
    for k in SUBJECT:
        value = getattr(item, k, None)
        if isinstance(value, ResourceRef):
            names.add(value.resource_id)
        elif isinstance(value, KafkaFlowRef):
            names |= {value.replicator, value.source, value.target}
        elif k in NAMES and isinstance(value, str):
            names.add(value)
    for name in list(names):  # an ARN also goes by its last part
        names |= {name.rsplit("/", 1)[-1], name.rsplit(":", 1)[-1]}
    return names - {""}


# --- optional members the sandbox sent -----------------------------------------------------


@dataclass(frozen=True)
class RemovalCase:
    signing_name: str
    operation: str
    path: str  # where the record sits in the answer, for messages
    member: str  # the botocore member name
    wire: str  # its name on the wire (what the fault removes)
    record: str | None  # scope: a direct member value of the victim record, or None
    owner: str  # the outermost record holding the victim (one per listed item)
    related: frozenset[str]  # strings of the record, its parents and the removed value

    @property
    def label(self) -> str:
        return f"{self.operation} {self.path}.{self.member} ({self.record})"


def removal_cases(answers: list[Answer]) -> list[RemovalCase]:
    """One case per (operation, record path, optional member) present in some answer.

    Each takes its field from a record that carries it; among those, from the outermost
    record used least so far, so that cases spread over records and can share a poll.
    """
    candidates: dict[tuple[str, str, str], list[RemovalCase]] = {}
    by_operation: dict[str, list[Answer]] = {}
    for answer in answers:
        by_operation.setdefault(answer.operation, []).append(answer)
    for operation, group in by_operation.items():
        counts = _direct_value_counts([a.parsed for a in group])
        for answer in group:
            shape = answer.model.output_shape
            assert shape is not None
            for path, record_shape, record, parents, owner in _records(
                shape, answer.parsed, counts
            ):
                top = not path
                for member, member_shape in record_shape.members.items():
                    if member in record_shape.required_members or member not in record:
                        continue
                    if member_shape.serialization.get("location") or member.lower() in PAGING:
                        continue
                    if top and member_shape.type_name == "list":
                        continue  # the listing itself: an empty list is not a record's field
                    candidates.setdefault((operation, path, member), []).append(
                        RemovalCase(
                            signing_name=answer.signing_name,
                            operation=operation,
                            path=path or "$",
                            member=member,
                            wire=member_shape.serialization.get("name", member),
                            record=_scope(record, counts),
                            owner=owner,
                            related=_with_arn_names(
                                _strings(record) | _strings(record[member]) | parents
                            ),
                        )
                    )
    used: dict[str, int] = {}
    cases = []
    for options in candidates.values():
        case = min(options, key=lambda c: used.get(c.owner, 0))
        used[case.owner] = used.get(case.owner, 0) + 1
        cases.append(case)
    return cases


def batches(cases: list[RemovalCase], size: int) -> list[list[RemovalCase]]:
    """Cases that can share a poll: at most `size`, each from a different outermost record
    (a case whose fault reaches every record polls alone)."""
    packed: list[list[RemovalCase]] = []
    for case in cases:
        home = next(
            (
                batch
                for batch in packed
                if case.record is not None
                and len(batch) < size
                and all(other.record is not None and other.owner != case.owner
                        for other in batch)
            ),
            None,
        )  # fmt: skip
        if home is None:
            packed.append([case])
        else:
            home.append(case)
    return packed


def _is_record_list(shape: Shape) -> bool:
    return shape.type_name == "list" and shape.member.type_name == "structure"  # type: ignore[attr-defined]


def _records(
    shape: Shape,
    value: Any,
    counts: Mapping[str, int],
    path: str = "",
    parents: frozenset[str] = frozenset(),
    owner: str | None = None,
    depth: int = 0,
) -> Iterator[tuple[str, Shape, dict[str, Any], frozenset[str], str]]:
    if depth > MAX_DEPTH or not isinstance(value, dict) or shape.type_name != "structure":
        return
    if owner is None and (depth == 0 or path.endswith("]")):
        owner = f"{path}:{_scope(value, counts)}"
    assert owner is not None
    yield path, shape, value, parents, owner
    mine = parents | _strings(value)
    inner = owner if depth > 0 else None  # the top of a listing owns nothing below it
    for name, member in shape.members.items():  # type: ignore[attr-defined]
        child = value.get(name)
        if child is None:
            continue
        if member.type_name == "structure":
            yield from _records(member, child, counts, f"{path}.{name}", mine, owner, depth + 1)
        elif _is_record_list(member) and isinstance(child, list):
            for item in child:
                yield from _records(
                    member.member, item, counts, f"{path}.{name}[]", mine, inner, depth + 1
                )


def _strings(value: Any) -> set[str]:
    """Direct string members of a record (or the value itself, or a list's strings)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {v for v in value.values() if isinstance(v, str)}
    if isinstance(value, list):
        return {s for v in value for s in _strings(v)}
    return set()


def _direct_value_counts(bodies: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                if isinstance(v, str):
                    counts[v] = counts.get(v, 0) + 1
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for body in bodies:
        walk(body)
    return counts


def _scope(record: dict[str, Any], counts: Mapping[str, int]) -> str | None:
    """A direct string member found nowhere else in the operation's answers (an ARN first),
    so the fault touches this record only; else any direct string; else None (every record)."""
    strings = [(k, v) for k, v in record.items() if isinstance(v, str) and v.strip()]
    unique = [(k, v) for k, v in strings if counts.get(v) == 1]
    for candidates in (unique, strings):
        if candidates:
            arns = [v for k, v in candidates if k.lower().endswith("arn")]
            return arns[0] if arns else candidates[0][1]
    return None


def _with_arn_names(strings: set[str]) -> frozenset[str]:
    """The strings, and the last part of each that is an ARN (a bucket ARN names the bucket)."""
    names = set(strings)
    for value in strings:
        names |= {value.rsplit("/", 1)[-1], value.rsplit(":", 1)[-1]}
    return frozenset(names - {""})
