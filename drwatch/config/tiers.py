"""`tiers:`: RPO/RTO targets per tier and how resources are assigned to a tier."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from drwatch.config.fields import (
    child,
    known,
    known_or_default,
    named,
    optional,
    positive_duration,
    require,
    required,
    section,
)
from drwatch.config.identifiers import tag_key
from drwatch.core.tiers import TierTarget

DEFAULT_TIER_TAG_KEY: Final = "dr-tier"
DEFAULT_TIER: Final = "standard"
DEFAULT_TIER_TARGETS: Final[Mapping[str, TierTarget]] = MappingProxyType(
    {
        "premium": TierTarget(rpo_seconds=5 * 60.0, rto_seconds=15 * 60.0),
        "standard": TierTarget(rpo_seconds=15 * 60.0, rto_seconds=60 * 60.0),
        "basic": TierTarget(rpo_seconds=60 * 60.0, rto_seconds=240 * 60.0),
    }
)

_TIER_FIELDS: Final = ("tag_key", "default", "targets")
_TIER_TARGET_FIELDS: Final = ("rpo", "rto")


@dataclass(frozen=True, slots=True)
class TierConfig:
    """RPO/RTO targets per tier and how resources are assigned to a tier."""

    tag_key: str = DEFAULT_TIER_TAG_KEY
    default_tier: str = DEFAULT_TIER
    # A default_factory because dataclasses refuse unhashable default values.
    targets: Mapping[str, TierTarget] = field(default_factory=lambda: DEFAULT_TIER_TARGETS)

    def tier_for(self, tags: Mapping[str, str]) -> str:
        """The tier named by the resource's tier tag, else ``default_tier``.

        Tag values are matched case-insensitively and stripped because they
        are typed by hand in consoles ("Premium ", "PREMIUM"); tier names are
        validated to be lower case so this lookup is unambiguous.
        """
        value = tags.get(self.tag_key)
        if value is None:
            return self.default_tier
        candidate = value.strip().lower()
        return candidate if candidate in self.targets else self.default_tier


def parse_tiers(value: object, path: str) -> TierConfig:
    fields = section(value, path, _TIER_FIELDS)
    # User targets replace the defaults wholesale: merging would leave tiers
    # behind that the user believes are gone.
    targets = optional(
        fields,
        path,
        "targets",
        DEFAULT_TIER_TARGETS,
        lambda v, p: named(v, p, "tier", _parse_tier_target),
    )
    return TierConfig(
        tag_key=optional(fields, path, "tag_key", DEFAULT_TIER_TAG_KEY, tag_key),
        default_tier=known_or_default(
            fields.get("default"),
            child(path, "default"),
            targets,
            "tier",
            DEFAULT_TIER,
            "tiers.targets",
        ),
        targets=targets,
    )


def _parse_tier_target(value: object, path: str) -> TierTarget:
    fields = section(require(value, path), path, _TIER_TARGET_FIELDS)
    return TierTarget(
        rpo_seconds=required(fields, path, "rpo", positive_duration),
        rto_seconds=required(fields, path, "rto", positive_duration),
    )


def known_tier(tiers: TierConfig) -> Callable[[object, str], str]:
    """A parser for the name of one of ``tiers``' targets."""
    return lambda value, path: known(value, path, tiers.targets, "tier")
