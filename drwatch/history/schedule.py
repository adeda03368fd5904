"""When `serve` compacts its history: daily at `history.compact_at` (UTC), jittered.

The writer thread runs the compaction itself (SQLite has one writer; see writer.py), so the
plan is data plus pure time arithmetic here, and the writer only asks "is it due?".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from drwatch.history.figures import RpoPolicy

# Up to this much random delay after `compact_at`, drawn once per process, so that shards
# sharing a node or a volume do not all compact in the same minute.
COMPACTION_JITTER_SECONDS: Final = 1800.0
# After a failed compaction, try again this much later (the next day's run is kept too).
COMPACTION_RETRY_SECONDS: Final = 3600.0


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    """What to compact and when: `minute_of_day` is minutes after 00:00 UTC."""

    minute_of_day: int
    raw_days: int
    retention_days: int
    policy: RpoPolicy
    jitter_seconds: float = COMPACTION_JITTER_SECONDS

    def __post_init__(self) -> None:
        if not 0 <= self.minute_of_day < 24 * 60:
            raise ValueError(f"minute_of_day out of range: {self.minute_of_day}")
        if self.jitter_seconds < 0:
            raise ValueError("jitter_seconds must be >= 0")


@dataclass(frozen=True, slots=True)
class CompactionStatus:
    """The last compaction run by this process and the next one planned."""

    next_run: datetime
    last_success: datetime  # of this history (read at start), or the writer's start
    last_run: datetime | None = None  # when the last attempt ended
    last_duration_seconds: float | None = None
    last_run_success: bool | None = None


def draw_jitter(plan: CompactionPlan, rng: random.Random | None = None) -> float:
    """The process's delay after `compact_at`, in [0, jitter_seconds)."""
    return (rng or random.Random()).uniform(0.0, plan.jitter_seconds)  # noqa: S311 (not a secret)


def next_compaction(after: datetime, plan: CompactionPlan, jitter: float) -> datetime:
    """The first `compact_at + jitter` of a UTC day strictly after `after`."""
    midnight = after.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = timedelta(minutes=plan.minute_of_day, seconds=jitter)
    candidate = midnight + offset
    while candidate <= after:
        candidate += timedelta(days=1)
    return candidate
