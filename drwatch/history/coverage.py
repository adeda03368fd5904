"""Which time successful polls observed, and what a recovery point did between two polls.

One rule for DRW-14 (monitoring coverage) and for the recovery point figures
(`drwatch.history.figures`), so that time DRW-14 counts as unobserved is never judged as an
RPO breach:

- A successful poll covers the time until the unit's next poll (of any outcome), at most
  `HOLD_FACTOR` typical intervals (the median time between the unit's polls): a failed poll
  ends the coverage, and so does an exporter that stopped polling.
- Between two successful polls that both saw a continuously advancing mechanism (PITR,
  replication) advancing (a new point at each: one poll seeing the same point as the one
  before proves it stood still), the mechanism was within its lag at both ends and is
  treated as continuous in between: the point's age there is at most the larger of the two
  lags (`bridge_age`). A discrete point (a snapshot, a backup job's point) ages
  linearly from the poll that saw it until the poll that sees a newer one.
"""

from __future__ import annotations

import bisect
import itertools
import json
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlite_utils import Database

from drwatch.core.model import UnitKey
from drwatch.core.units import DAY_SECONDS
from drwatch.history.store import RecoveryKey, epoch

DEFAULT_POLL_INTERVAL_SECONDS: Final = 300
HOLD_FACTOR: Final = 1.5
# Mechanisms whose newest point advances continuously (a point at every instant, behind by
# a lag), not in discrete steps. AWS Backup continuous backups are not told apart from its
# snapshots in the stored state, so `aws_backup` ages as discrete points.
CONTINUOUS_MECHANISMS: Final = frozenset({"pitr", "replication"})


def unit_key(collector: str, account_id: str, region: str) -> str:
    return json.dumps([collector, account_id, region], separators=(",", ":"))


def decode_unit_key(key: str) -> UnitKey:
    """The unit a stored unit key names (the inverse of `unit_key`)."""
    collector, account_id, region = json.loads(key)
    return UnitKey(collector, account_id, region)


class Poll(NamedTuple):
    started: int
    success: bool
    error_code: str = ""


def typical_interval(polls: Sequence[Poll]) -> int:
    """The median time between polls (the default interval when there are too few)."""
    gaps = [b.started - a.started for a, b in itertools.pairwise(polls) if b.started > a.started]
    return int(statistics.median(gaps)) if gaps else DEFAULT_POLL_INTERVAL_SECONDS


def covered_spans(
    polls: Sequence[Poll], start: int, end: int, interval: int
) -> list[tuple[int, int]]:
    """The time of [start, end) each successful poll covers (see the module docstring)."""
    hold = int(interval * HOLD_FACTOR)
    covered: list[tuple[int, int]] = []
    for index, poll in enumerate(polls):
        if not poll.success:
            continue
        following = polls[index + 1].started if index + 1 < len(polls) else poll.started + hold
        stop = min(following, poll.started + hold)
        if stop > start and poll.started < end:
            covered.append((max(poll.started, start), min(stop, end)))
    return covered


def uncovered_spans(polls: Sequence[Poll], start: int, end: int) -> list[tuple[int, int]]:
    """The time of [start, end) no successful poll covers, in time order."""
    gaps: list[tuple[int, int]] = []
    cursor = start
    for seg_start, seg_end in covered_spans(polls, start, end, typical_interval(polls)):
        if seg_start > cursor:
            gaps.append((cursor, seg_start))
        cursor = max(cursor, seg_end)
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def load_polls(db: Database, start: int, end: int) -> dict[str, list[Poll]]:
    """Each unit's polls started in [start, end), oldest first, by unit key."""
    rows = db.execute(
        "SELECT collector, account_id, region, started_epoch, success, error_code "
        "FROM unit_runs WHERE started_epoch >= ? AND started_epoch < ? "
        "ORDER BY collector, account_id, region, started_epoch",
        [start, end],
    )
    polls: dict[str, list[Poll]] = defaultdict(list)
    for collector, account_id, region, started, success, error_code in rows:
        polls[unit_key(collector, account_id, region)].append(
            Poll(started, bool(success), error_code or "")
        )
    return polls


class PollGaps:
    """Per unit, the time of a window no successful poll covered (for the figures)."""

    def __init__(self, gaps: Mapping[str, Sequence[tuple[int, int]]]) -> None:
        self._gaps = {unit: list(spans) for unit, spans in gaps.items() if spans}
        self._starts = {unit: [s for s, _ in spans] for unit, spans in self._gaps.items()}

    @classmethod
    def load(cls, db: Database, start: int, end: int) -> PollGaps:
        """The gaps of [start, end), from the polls of the day before on (the typical
        interval is the one DRW-14 uses for a period starting at `start`)."""
        polls = load_polls(db, start - DAY_SECONDS, end)
        return cls({unit: uncovered_spans(p, start, end) for unit, p in polls.items()})

    @classmethod
    def none(cls) -> PollGaps:
        return cls({})

    def edges(self, unit: str, start: int, end: int) -> list[int]:
        return [e for s in self._gaps.get(unit, ()) for e in s if start < e < end]

    def uncovered(self, unit: str, moment: int) -> bool:
        """No successful poll of `unit` covered `moment`."""
        starts = self._starts.get(unit)
        if not starts:
            return False
        index = bisect.bisect_right(starts, moment) - 1
        return index >= 0 and moment < self._gaps[unit][index][1]


def bridge_age(
    recovery: object,
    value: Mapping[str, Any],
    seen: tuple[int, int],
    successor: Any,
    at: int,
) -> int | None:
    """The age bound between the last poll that saw `value` and the poll at `at` that saw
    `successor`, when both are points of one continuously advancing local mechanism
    (`recovery`: the decoded key; anything else is not) that was advancing at both polls:
    `value` was seen by one poll only (`seen`: its first and last poll; several polls
    seeing one point prove it stood still) and `successor`'s point is newer. None otherwise:
    the point then ages linearly."""
    first_seen, last_seen = seen
    if not isinstance(recovery, RecoveryKey) or not isinstance(successor, Mapping):
        return None
    if first_seen != last_seen:
        return None
    if recovery.mechanism not in CONTINUOUS_MECHANISMS or recovery.is_copy:
        return None
    before, after = _point(value), _point(successor)
    if before is None or after is None or after <= before:
        return None
    return max(last_seen - before, at - after, 0)


def _point(value: Mapping[str, Any]) -> int | None:
    text = value.get("newest_point")
    if not value.get("enabled") or not text:
        return None
    return epoch(datetime.fromisoformat(str(text)))
