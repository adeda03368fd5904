"""`accounts:`: the AWS accounts to watch, each optionally reached by assuming a role."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from drwatch.config import identifiers
from drwatch.config.fields import (
    ConfigError,
    child,
    list_of,
    optional,
    reject_duplicates,
    require,
    section,
    string,
)
from drwatch.config.identifiers import DEFAULT_SESSION_NAME

_ACCOUNT_FIELDS: Final = ("id", "name", "role_arn", "external_id", "session_name")


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One AWS account to watch, optionally reached by assuming a role."""

    id: str
    name: str
    role_arn: str | None = None
    # Kept out of repr so a logged config never leaks it.
    external_id: str | None = field(default=None, repr=False)
    session_name: str = DEFAULT_SESSION_NAME


def parse_accounts(value: object, path: str) -> tuple[AccountConfig, ...]:
    accounts = list_of(value, path, _parse_account)
    reject_duplicates([account.id for account in accounts], path, "id")
    return accounts


def _parse_account(value: object, path: str) -> AccountConfig:
    fields = section(require(value, path), path, _ACCOUNT_FIELDS)
    account_id = identifiers.account_id(fields.get("id"), child(path, "id"))
    role_arn = _role_arn(fields.get("role_arn"), child(path, "role_arn"), account_id)
    return AccountConfig(
        id=account_id,
        name=optional(fields, path, "name", account_id, string),
        role_arn=role_arn,
        external_id=external_id(fields.get("external_id"), child(path, "external_id"), role_arn),
        session_name=optional(
            fields, path, "session_name", DEFAULT_SESSION_NAME, identifiers.session_name
        ),
    )


def _role_arn(value: object, path: str, account_id: str) -> str | None:
    if value is None:
        return None
    role_arn = identifiers.role_arn(value, path)
    account = identifiers.role_arn_account(role_arn)
    if account != account_id:
        raise ConfigError(path, f"is in account {account}, but id is {account_id}")
    return role_arn


def external_id(value: object, path: str, role_arn: str | None) -> str | None:
    """An external id, which only means something next to a role to assume."""
    if value is None:
        return None
    if role_arn is None:
        raise ConfigError(path, "only allowed together with role_arn")
    return identifiers.external_id(value, path)


def account_of(value: object, path: str, accounts: Sequence[AccountConfig]) -> str:
    """A configured account's id; may be left out when there is only one account."""
    ids = [account.id for account in accounts]
    if value is None:
        if len(ids) == 1:
            return ids[0]
        raise ConfigError(path, "required when more than one account is configured")
    account_id = identifiers.account_id(value, path)
    if account_id not in ids:
        raise ConfigError(path, f"must be one of the accounts ({', '.join(ids)})")
    return account_id
