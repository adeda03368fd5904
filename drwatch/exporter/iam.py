"""The least-privilege IAM policy, generated from the actions each collector declares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drwatch.exporter.collectors.base import Collector


def required_actions(collectors: Sequence[type[Collector]]) -> tuple[str, ...]:
    return tuple(sorted({action for c in collectors for action in c.iam_actions}))


def policy_document(collectors: Sequence[type[Collector]]) -> dict[str, Any]:
    """An identity policy for the role drwatch assumes in each account (read-only)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DrwatchReadOnly",
                "Effect": "Allow",
                "Action": list(required_actions(collectors)),
                # List/Describe/Get calls of these services do not support resource-level
                # restrictions for the list form, so "*" is the narrowest that works.
                "Resource": "*",
            }
        ],
    }
