"""What the AWS Backup extension of the sandbox keeps, and the request helpers its handlers share.

Per account x region backend (`backup_state`): the planned jobs, recovery points, selections
and restore testing plans, and the simulated clock they are rendered at. Records carry naive
UTC times, as moto keeps them. The helpers read rest-json query parameters and page lists
the way AWS Backup does (MaxResults 1..1000, NextToken). `backup_moto` installs the handlers
(`backup_jobs_moto`, `backup_vaults_moto`) that serve them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from moto.backup.exceptions import InvalidParameterValueException
from moto.backup.models import BackupBackend, backup_backends
from moto.backup.responses import BackupResponse
from moto.core.utils import utcnow

STATE_ATTRIBUTE = "_drwatch_backup_state"
PAGE_SIZE_MAX = 1000  # AWS Backup's MaxResults upper bound on every list call
TERMINAL_BACKUP_STATES = ("COMPLETED", "FAILED", "ABORTED", "EXPIRED", "PARTIAL")
AWS_OWNED_KEY = "AWS_OWNED_KMS_KEY"
CUSTOMER_KEY = "CUSTOMER_MANAGED_KMS_KEY"

T = TypeVar("T")


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SandboxJob:
    """A backup, copy or restore job as planned; rendered at the simulated time."""

    job_id: str
    kind: str  # backup | copy | restore
    resource_arn: str
    resource_type: str
    vault_arn: str  # backup: target vault; copy: source vault; restore: vault of the point
    created: datetime  # naive UTC, as moto keeps times
    completed: datetime
    final_state: str
    message_category: str = "SUCCESS"
    status_message: str = ""
    size_bytes: int = 0
    recovery_point_arn: str = ""
    destination_vault_arn: str = ""  # copy jobs
    destination_recovery_point_arn: str = ""  # copy jobs
    restore_testing_plan_arn: str = ""  # restore jobs
    validation_status: str = ""  # restore jobs: SUCCESSFUL | FAILED | TIMED_OUT | VALIDATING
    created_resource_arn: str = ""  # restore jobs


@dataclass(frozen=True, slots=True)
class SandboxRecoveryPoint:
    arn: str
    vault_name: str
    resource_arn: str
    resource_type: str
    created: datetime  # naive UTC; the point is listed from `completed` on
    completed: datetime
    status: str  # COMPLETED | PARTIAL | EXPIRED ...
    size_bytes: int
    encrypted: bool
    delete_after_days: int | None
    move_to_cold_after_days: int | None = None
    source_vault_arn: str = ""  # set on copies
    plan_id: str = ""

    def expires(self) -> datetime | None:
        if self.delete_after_days is None:
            return None
        return self.created + timedelta(days=self.delete_after_days)


@dataclass(frozen=True, slots=True)
class SandboxSelection:
    selection_id: str
    plan_id: str
    name: str
    iam_role_arn: str
    resources: tuple[str, ...]
    not_resources: tuple[str, ...] = ()
    created: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class SandboxRestoreTestingPlan:
    name: str
    arn: str
    schedule: str
    created: datetime


@dataclass(slots=True)
class BackupSandboxState:
    """Everything the extension adds to one account x region backend (reset with it)."""

    now: datetime | None = None
    jobs: dict[str, SandboxJob] = field(default_factory=dict)
    recovery_points: dict[str, SandboxRecoveryPoint] = field(default_factory=dict)
    selections: dict[str, SandboxSelection] = field(default_factory=dict)
    restore_testing_plans: dict[str, SandboxRestoreTestingPlan] = field(default_factory=dict)
    vault_key_types: dict[str, str] = field(default_factory=dict)

    def clock(self) -> datetime:
        return self.now if self.now is not None else utcnow()


def backup_state(account_id: str, region: str) -> BackupSandboxState:
    return state_of(backup_backends[account_id][region])


def state_of(backend: BackupBackend) -> BackupSandboxState:
    # Kept on the backend object so moto's reset forgets it with everything else.
    state: BackupSandboxState = backend.__dict__.setdefault(STATE_ATTRIBUTE, BackupSandboxState())
    return state


# --- request helpers ---------------------------------------------------------------------


def backend_of(response: BackupResponse) -> BackupBackend:
    return backup_backends[response.current_account][response.region]


def query(response: BackupResponse, name: str) -> str | None:
    values = response.querystring.get(name)
    return str(values[0]) if values else None


def query_time(response: BackupResponse, name: str) -> datetime | None:
    """botocore sends rest-json query timestamps as ISO 8601; moto keeps naive UTC."""
    raw = query(response, name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        parsed = datetime.fromtimestamp(float(raw), UTC)
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.replace(tzinfo=UTC).timestamp()


def _page_size(raw: str | None) -> int:
    if raw is None:
        return PAGE_SIZE_MAX
    size = int(raw)
    if not 1 <= size <= PAGE_SIZE_MAX:
        raise InvalidParameterValueException(
            msg=f"MaxResults must be between 1 and {PAGE_SIZE_MAX}"
        )
    return size


def paginate(
    items: Sequence[T], key: Callable[[T], str], max_results: str | None, token: str | None
) -> tuple[list[T], str | None]:
    """One page and the NextToken of the next (None on the last page)."""
    size = _page_size(max_results)
    start = 0
    if token:
        try:
            wanted = base64.urlsafe_b64decode(token.encode()).decode()
        except (binascii.Error, UnicodeDecodeError) as error:
            raise InvalidParameterValueException(msg=f"Invalid NextToken: {token}") from error
        start = next((i for i, item in enumerate(items) if key(item) == wanted), -1)
        if start < 0:
            raise InvalidParameterValueException(msg=f"Invalid NextToken: {token}")
    end = start + size
    next_token = (
        base64.urlsafe_b64encode(key(items[end]).encode()).decode() if end < len(items) else None
    )
    return list(items[start:end]), next_token


def page_body(
    response: BackupResponse,
    result_key: str,
    items: Sequence[dict[str, Any]],
    key: str,
    size_param: str = "maxResults",
    cursor_param: str = "nextToken",
) -> str:
    page, token = paginate(
        items, lambda i: str(i[key]), query(response, size_param), query(response, cursor_param)
    )
    body: dict[str, Any] = {result_key: page}
    if token:
        body["NextToken"] = token
    return json.dumps(body)


def compact(item: dict[str, Any]) -> dict[str, Any]:
    """AWS omits absent members rather than sending nulls or empty strings."""
    return {k: v for k, v in item.items() if v is not None and v != ""}
