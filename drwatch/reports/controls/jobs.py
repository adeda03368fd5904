"""DRW-09: backup job success rate, and failures recovered (the newest job succeeded)."""

from __future__ import annotations

from typing import Final

from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import day_text, finding
from drwatch.reports.evidence import Finding, JobRecord, Period, Policies, ResourceEvidence
from drwatch.reports.render import format_percent

FINISHED_JOB_STATES: Final = frozenset({"COMPLETED", "FAILED", "ABORTED", "EXPIRED", "PARTIAL"})


def job_success(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-09: success rate >= job_success_rate; newest job succeeded."""
    finished = [j for j in resource.jobs if j.state in FINISHED_JOB_STATES]
    ok = sum(1 for j in finished if j.state == "COMPLETED")
    total = len(finished)
    compacted_total = sum(n for s, n in resource.compacted_jobs.items() if s in FINISHED_JOB_STATES)
    ok += resource.compacted_jobs.get("COMPLETED", 0)
    total += compacted_total
    if total == 0:
        return finding(
            "DRW-09", resource, Status.NOT_APPLICABLE, "no backup jobs recorded in the period"
        )
    rate = ok / total
    target = policies.parameters.job_success_rate
    failed = [j for j in finished if j.state != "COMPLETED"]
    facts = f"{ok} of {total} backup jobs completed ({format_percent(rate)})" + _failures(failed)
    recovered = not finished or finished[-1].state == "COMPLETED"
    recovery = success_after(finished) if failed and recovered else None
    if recovery is not None:
        facts += f"; recovered {day_text(recovery.created)}"
    if rate >= target and recovered:
        return finding("DRW-09", resource, Status.PASS, facts)
    if not recovered:
        facts += "; newest job failed (not recovered)"
    return finding(
        "DRW-09",
        resource,
        Status.FAIL,
        f"{facts}; required {format_percent(target)}",
        first_seen=failed[0].created if failed else None,
        duration_seconds=(
            (recovery.created if recovery is not None else resource.lifetime_end)
            - failed[0].created
            if failed
            else None
        ),
        open=not recovered,
    )


def _failures(failed: list[JobRecord]) -> str:
    """The failed jobs in words (empty without failures)."""
    if not failed:
        return ""
    categories = sorted({j.message_category for j in failed if j.message_category})
    return (
        f"; {len(failed)} failed from {day_text(failed[0].created)} to "
        f"{day_text(failed[-1].created)}" + (f" ({', '.join(categories)})" if categories else "")
    )


def success_after(finished: list[JobRecord]) -> JobRecord:
    """The first completed job after the last failure, in job order: a job created in the
    same second as that failure but listed after it counts (comparing times alone found
    none there and raised StopIteration). Called only when the newest job completed."""
    last_failure = max(i for i, job in enumerate(finished) if job.state != "COMPLETED")
    return next(job for job in finished[last_failure + 1 :] if job.state == "COMPLETED")
