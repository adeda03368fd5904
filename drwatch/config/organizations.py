"""`organizations:` (account discovery through AWS Organizations, drwatch.exporter.discovery)
and `shard:` (this replica's share of the accounts, drwatch.core.sharding)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from drwatch.config import identifiers
from drwatch.config.accounts import external_id
from drwatch.config.catalogue import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS
from drwatch.config.fields import (
    ConfigError,
    child,
    duration,
    optional,
    pattern,
    required,
    section,
    string,
    unique_list_of,
)
from drwatch.config.identifiers import DEFAULT_SESSION_NAME, ROLE_ARN_RE
from drwatch.core import sharding
from drwatch.core.sharding import Shard, ShardError

# Accounts join and leave an organisation rarely; an hour keeps Organizations calls negligible.
DEFAULT_DISCOVERY_REFRESH_SECONDS: Final = 3600.0
ACCOUNT_ID_PLACEHOLDER: Final = "{account_id}"

# Organizational unit and root ids, as AWS documents their patterns.
_OU_ID_RE: Final = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32}", re.ASCII)
_ORGANIZATIONS_FIELDS: Final = (
    "role_arn_template",
    "management_role_arn",
    "external_id",
    "session_name",
    "ous",
    "exclude_ous",
    "exclude_accounts",
    "refresh_interval",
)


@dataclass(frozen=True, slots=True)
class OrganizationsConfig:
    """Account discovery through AWS Organizations (drwatch.exporter.discovery).

    Every ACTIVE account under `ous` (default: the whole organisation), minus `exclude_ous`
    subtrees and `exclude_accounts`, is watched through the role `role_arn_template` names.
    """

    role_arn_template: str
    # Role in the management (or delegated administrator) account for the Organizations
    # calls; None: drwatch's own credentials.
    management_role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    session_name: str = DEFAULT_SESSION_NAME
    ous: tuple[str, ...] = ()
    exclude_ous: tuple[str, ...] = ()
    exclude_accounts: tuple[str, ...] = ()
    refresh_interval_seconds: float = DEFAULT_DISCOVERY_REFRESH_SECONDS

    def role_arn_for(self, account_id: str) -> str:
        return self.role_arn_template.replace(ACCOUNT_ID_PLACEHOLDER, account_id)


def parse_organizations(value: object, path: str) -> OrganizationsConfig | None:
    if value is None:
        return None
    fields = section(value, path, _ORGANIZATIONS_FIELDS)
    template = required(fields, path, "role_arn_template", _role_arn_template)
    return OrganizationsConfig(
        role_arn_template=template,
        management_role_arn=optional(
            fields,
            path,
            "management_role_arn",
            None,
            lambda v, p: identifiers.role_arn(v, p, "arn:aws:iam::111111111111:role/drwatch-org"),
        ),
        external_id=external_id(fields.get("external_id"), child(path, "external_id"), template),
        session_name=optional(
            fields, path, "session_name", DEFAULT_SESSION_NAME, identifiers.session_name
        ),
        ous=optional(fields, path, "ous", (), _ou_ids),
        exclude_ous=optional(fields, path, "exclude_ous", (), _ou_ids),
        exclude_accounts=optional(fields, path, "exclude_accounts", (), identifiers.account_ids),
        refresh_interval_seconds=optional(
            fields,
            path,
            "refresh_interval",
            DEFAULT_DISCOVERY_REFRESH_SECONDS,
            _refresh_interval,
        ),
    )


def _role_arn_template(value: object, path: str) -> str:
    template = string(value, path)
    if template.count(ACCOUNT_ID_PLACEHOLDER) != 1:
        raise ConfigError(path, f"must contain {ACCOUNT_ID_PLACEHOLDER} exactly once")
    # Checked with a sample id, so the template yields a valid role ARN for every account.
    sample = "123456789012"
    match = ROLE_ARN_RE.fullmatch(template.replace(ACCOUNT_ID_PLACEHOLDER, sample))
    if match is None or match["account"] != sample:
        raise ConfigError(
            path,
            "must be a role ARN with {account_id} as its account, "
            "e.g. arn:aws:iam::{account_id}:role/drwatch-read",
        )
    return template


def _ou_ids(value: object, path: str) -> tuple[str, ...]:
    return unique_list_of(
        value,
        path,
        lambda v, p: pattern(
            v, p, _OU_ID_RE, "must be an OU id (ou-xxxx-xxxxxxxx) or a root id (r-xxxx)"
        ),
    )


def _refresh_interval(value: object, path: str) -> float:
    interval = duration(value, path)
    if not MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS:
        raise ConfigError(
            path, f"must be between {MIN_INTERVAL_SECONDS:g} and {MAX_INTERVAL_SECONDS:g} seconds"
        )
    return interval


def parse_shard(value: object, path: str) -> Shard:
    try:
        return sharding.parse_shard(string(value, path))
    except ShardError as exc:
        raise ConfigError(path, str(exc)) from exc
