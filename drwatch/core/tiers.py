"""DR tiers: the recovery targets a resource's tier sets (DESIGN.md, "Tiers")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TierTarget:
    """Recovery targets of one tier, in seconds."""

    rpo_seconds: float
    rto_seconds: float
