"""What an evaluation works on and produces: the period, the policies, the evidence of each
subject (resource, monitoring unit), and the findings of the controls.

Plain frozen types: loading them from the history is `drwatch.reports.loading` (and
`drwatch.reports.units`), judging them is `drwatch.reports.controls`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Generic, NamedTuple, TypeVar

from drwatch.core.controls import ControlParameters
from drwatch.core.model import ResourceRef
from drwatch.core.retention import RetentionPolicy
from drwatch.core.units import DAY_SECONDS
from drwatch.history.drills import DrillRecord, RestoreTestRecord
from drwatch.history.figures import ResourceFigures, RpoPolicy, day_start
from drwatch.history.store import HistoryError, RecoveryKey, ReplicationKey, epoch
from drwatch.reports.catalogue import Control, Status, worst

# A stored state key, decoded by the kind of its interval: resource, recovery, replication.
StoredKey = ResourceRef | RecoveryKey | ReplicationKey
K = TypeVar("K", bound=StoredKey)


class EvaluationError(HistoryError):
    """The period cannot be evaluated (no history in it, or a bad period)."""


# --- the period -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC, on whole seconds."""

    start: datetime
    end: datetime
    label: str

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise EvaluationError("period bounds must be timezone-aware UTC")
        if self.end <= self.start:
            raise EvaluationError(f"period {self.label}: end must be after start")

    @classmethod
    def month(cls, text: str) -> Period:
        """A calendar month, "2026-10"."""
        try:
            first = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
        except ValueError as error:
            raise EvaluationError(f"{text!r} is not a month like 2026-10") from error
        following = (first + timedelta(days=32)).replace(day=1)
        return cls(first, following, text)

    @classmethod
    def between(cls, start: datetime, end: datetime) -> Period:
        label = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        return cls(start.astimezone(UTC), end.astimezone(UTC), label)

    @property
    def start_epoch(self) -> int:
        return epoch(self.start)

    @property
    def end_epoch(self) -> int:
        return epoch(self.end)

    @property
    def seconds(self) -> int:
        return self.end_epoch - self.start_epoch

    def previous(self) -> Period:
        """The period before, for month-over-month trends (the previous calendar month)."""
        if self.start.day == 1 and self.end == (self.start + timedelta(days=32)).replace(day=1):
            before = (self.start - timedelta(days=1)).replace(day=1)
            return Period(before, self.start, f"{before:%Y-%m}")
        return Period.between(self.start - (self.end - self.start), self.start)

    def day_starts(self) -> list[int]:
        return list(range(day_start(self.start_epoch), self.end_epoch, DAY_SECONDS))


@dataclass(frozen=True, slots=True)
class Policies:
    rpo: RpoPolicy
    rto_seconds: Mapping[str, float]
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    parameters: ControlParameters = field(default_factory=ControlParameters)

    def rto_for(self, tier: str) -> float | None:
        return self.rto_seconds.get(tier)


# --- evidence -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval(Generic[K]):
    """One stored state with its effective end (same rule as `drwatch.history.figures.Span`)
    and its key decoded: a `ResourceRef`, `RecoveryKey` or `ReplicationKey` by its kind."""

    kind: str
    key: K
    start: int
    end: int
    value: Mapping[str, Any]
    key_text: str = ""  # the stored key (canonical JSON)
    resource_key: str = ""  # the stored resource key: the resource's, or a replication source's
    last_seen: int = 0  # the last poll that saw this value (not clipped to the period)
    unit: str = ""  # the unit key of the unit that observed it
    bridge_age: int | None = None  # see drwatch.history.coverage.bridge_age


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: str
    state: str
    created: int
    message_category: str


class TierChange(NamedTuple):
    start: int  # from when the resource had this tier
    tier: str


@dataclass(frozen=True, slots=True)
class ResourceEvidence:
    key: str
    account_id: str
    region: str
    service: str
    resource_type: str
    resource_id: str
    name: str
    tier: str  # at the end of the period (or when last seen)
    tiers: tuple[TierChange, ...]  # changes in the period, oldest first
    tags: Mapping[str, str]
    data_class: str
    first_seen: int  # ever (history), epoch
    last_seen: int
    gone: bool
    lifetime_start: int  # in the period
    lifetime_end: int
    # False when compaction removed the raw intervals that bound its life in the period:
    # then creation, deletion and unobserved time cannot be told apart.
    lifetime_known: bool
    figures: ResourceFigures
    daily: Mapping[int, ResourceFigures]
    # The raw intervals while the resource controls run; empty in an Evaluation's resources
    # (evaluate drops them batch by batch: a month of them does not fit in memory at once).
    recovery: tuple[Interval[RecoveryKey], ...]
    replication: tuple[Interval[ReplicationKey], ...]
    jobs: tuple[JobRecord, ...]
    compacted_jobs: Mapping[str, int]
    restores: tuple[RestoreTestRecord, ...]
    raw: bool  # raw intervals exist for it in the period
    poll_interval_seconds: int  # of the most frequent unit in its account and region
    # When its observations in the period cover no time (one poll saw it, or only at the
    # period's edge): the last instant a poll saw it there. Its controls are judged at it.
    instant: int | None = None

    @property
    def label(self) -> str:
        shown = self.name if self.name and self.name != self.resource_id else ""
        suffix = f" ({shown})" if shown else ""
        where = f"{self.account_id} {self.region} {self.service}/{self.resource_type}"
        return f"{where} {self.resource_id}{suffix}"

    @property
    def lifetime_seconds(self) -> int:
        return max(self.lifetime_end - self.lifetime_start, 0)

    def created_in(self, period: Period) -> bool:
        return self.lifetime_known and period.start_epoch < self.first_seen < period.end_epoch

    def deleted_in(self, period: Period) -> bool:
        return (
            self.lifetime_known
            and self.gone
            and period.start_epoch <= self.last_seen < period.end_epoch
        )


@dataclass(frozen=True, slots=True)
class FlowEvidence:
    """One replication flow, source to destination (S3 rule, MSK Replicator, MirrorMaker 2,
    RDS cross-region backup replication, ElastiCache global datastore): a DRW-10 subject,
    whether or not its source is a resource of the other controls (a Kafka replicator is
    not)."""

    key: str  # the stored replication key
    kind: str
    source: ResourceRef
    destination_account_id: str
    destination_region: str
    destination: str
    intervals: tuple[Interval[ReplicationKey], ...]  # in the period, oldest first
    time_control: bool = False  # S3 Replication Time Control on its rules when observed

    @property
    def label(self) -> str:
        source = self.source
        return (
            f"{source.account_id} {source.region} {self.kind} {source.resource_id} to "
            f"{self.destination_account_id} {self.destination_region} {self.destination}"
        )


class CoverageGap(NamedTuple):
    """Time of the period not covered by successful polls, and the errors polled in it."""

    start: int
    end: int
    errors: str  # the error codes, or "no poll"

    @property
    def seconds(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class UnitEvidence:
    key: str
    collector: str
    account_id: str
    region: str
    covered_seconds: int
    runs: int
    successful_runs: int
    gaps: tuple[CoverageGap, ...]  # uncovered time, in time order
    interval_seconds: int  # typical time between polls (median)

    @property
    def label(self) -> str:
        return f"{self.collector} {self.account_id} {self.region}"


# --- findings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    control_id: str
    subject_key: str
    subject: str
    status: Status
    facts: str
    first_seen: int | None = None  # when the failing condition was first observed
    duration_seconds: int | None = None  # how long it held in the period
    open: bool = False  # still failing at the end of the period
    # The figures the status was decided on, by name (e.g. "age_seconds"), for checks that
    # compare a report with the exporter's metrics; the facts say the same in words.
    values: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class ControlResult:
    control: Control
    findings: tuple[Finding, ...]

    @property
    def counts(self) -> Mapping[Status, int]:
        counts = dict.fromkeys(Status, 0)
        for finding in self.findings:
            counts[finding.status] += 1
        return MappingProxyType(counts)

    @property
    def status(self) -> Status:
        return worst(f.status for f in self.findings)


@dataclass(frozen=True, slots=True)
class Evaluation:
    period: Period
    resources: tuple[ResourceEvidence, ...]
    units: tuple[UnitEvidence, ...]
    drills: tuple[DrillRecord, ...]
    results: tuple[ControlResult, ...]
    daily_resources: Mapping[int, ResourceFigures]  # all resources combined, per day
    daily_jobs: Mapping[int, Mapping[str, int]]  # backup jobs by final state, per creation day
    rolled_up_until: int

    def result(self, control_id: str) -> ControlResult:
        for result in self.results:
            if result.control.control_id == control_id:
                return result
        raise KeyError(control_id)
