"""DRW-07 (a copy in another region exists and is fresh) and DRW-08 (a copy in another
account exists): recovery points stored elsewhere, and backup replications."""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import compacted, day_text, finding, point_epoch
from drwatch.reports.evidence import Finding, Period, Policies, ResourceEvidence
from drwatch.reports.render import format_duration

# Replications that are backup copies in another region (DRW-07), not live data replicas.
COPY_REPLICATION_KINDS: Final = frozenset({"rds_cross_region_backup"})


class _CopyAge(NamedTuple):
    moment: int  # when it was observed
    age: int | None  # of the newest copied point then; None: no point
    destination: str  # "account region"


def cross_region_copy(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-07: copy in another region, newest copied point age <= copy_max_age."""
    if not resource.raw:
        return compacted("DRW-07", resource)
    ages = _copy_ages(resource, "region")
    limit = policies.parameters.copy_max_age_seconds
    if not ages:
        return finding(
            "DRW-07",
            resource,
            Status.FAIL,
            "no copy in another region observed in the period",
            first_seen=resource.lifetime_start,
            duration_seconds=resource.lifetime_seconds,
            open=True,
        )
    destinations = ", ".join(sorted({a.destination for a in ages}))
    known = [a for a in ages if a.age is not None]
    if not known:
        return finding(
            "DRW-07", resource, Status.FAIL, f"copies in {destinations} hold no restorable point"
        )
    oldest = max(known, key=lambda a: (a.age or 0, -a.moment))
    facts = (
        f"copies in {destinations}; oldest newest-copy age {format_duration(oldest.age)} on "
        f"{day_text(oldest.moment)} against {format_duration(limit)}"
    )
    values = {"copy_age_seconds": float(oldest.age or 0)}
    if (oldest.age or 0) <= limit:
        return finding("DRW-07", resource, Status.PASS, facts, values=values)
    stale = [a for a in known if (a.age or 0) > limit]
    return finding(
        "DRW-07",
        resource,
        Status.FAIL,
        facts,
        values=values,
        first_seen=min(a.moment for a in stale),
        open=max(a.moment for a in stale) >= resource.lifetime_end,
    )


def cross_account_copy(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-08: copy in another account."""
    if not resource.raw:
        return compacted("DRW-08", resource)
    ages = _copy_ages(resource, "account")
    if ages:
        destinations = ", ".join(sorted({a.destination for a in ages}))
        return finding("DRW-08", resource, Status.PASS, f"copies in {destinations}")
    return finding(
        "DRW-08",
        resource,
        Status.FAIL,
        "no copy in another account observed in the period",
        first_seen=resource.lifetime_start,
        duration_seconds=resource.lifetime_seconds,
        open=True,
    )


def _copy_ages(
    resource: ResourceEvidence, other: Literal["region", "account"]
) -> list[_CopyAge]:
    """The copies elsewhere (in another region, or another account) as observed."""
    out: list[_CopyAge] = []
    for item in resource.recovery:
        account, region = item.key.location_account_id, item.key.location_region
        if _elsewhere(resource, account, region, other):
            newest = point_epoch(item.value, "newest_point")
            age = None if newest is None else item.end - newest
            out.append(_CopyAge(item.end, age, f"{account} {region}"))
    for replication in resource.replication:
        key = replication.key
        account, region = key.destination_account_id, key.destination_region
        if key.kind in COPY_REPLICATION_KINDS and _elsewhere(resource, account, region, other):
            newest = point_epoch(replication.value, "latest_replicated_point")
            age = None if newest is None else replication.end - newest
            out.append(_CopyAge(replication.end, age, f"{account} {region}"))
    return out


def _elsewhere(
    resource: ResourceEvidence, account: str, region: str, other: Literal["region", "account"]
) -> bool:
    return region != resource.region if other == "region" else account != resource.account_id
