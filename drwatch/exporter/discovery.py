"""Account discovery through AWS Organizations: which accounts to watch, refreshed on an interval.

Only List calls, made with the management (or delegated administrator) account's role. Every
ACTIVE account found (suspended and closing accounts have nothing left to protect and refuse
the role) becomes an `AccountConfig` whose role ARN comes from the configured template.
Accounts listed statically in the config win over discovered ones with the same id (their own
role, external id or name), so a special account can be handled by hand.

A failed refresh raises; the caller keeps the accounts found before, because dropping every
account's series on an Organizations throttle would page everyone for nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from drwatch.config import AccountConfig, OrganizationsConfig

log = logging.getLogger(__name__)

# The key AwsAccess files the management account's session under: not an account id, so it
# never collides with a watched account that happens to be the management account.
MANAGEMENT_KEY: Final = "organizations"
ACTIVE: Final = "ACTIVE"

# What discovery may call, for `drwatch iam-policy --organizations` (management account).
IAM_ACTIONS: Final[tuple[str, ...]] = (
    "organizations:ListAccounts",
    "organizations:ListAccountsForParent",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListRoots",
)


@dataclass(frozen=True, slots=True)
class OrgAccount:
    """One account as Organizations lists it."""

    id: str
    name: str
    status: str


def management_account(settings: OrganizationsConfig) -> AccountConfig:
    """The pseudo-account whose session makes the Organizations calls."""
    return AccountConfig(
        id=MANAGEMENT_KEY,
        name=MANAGEMENT_KEY,
        role_arn=settings.management_role_arn,
        session_name=settings.session_name,
    )


def _pages(client: Any, operation: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**params):
        yield from page[key]


def _account(item: dict[str, Any]) -> OrgAccount:
    # `State` is the newer field (it distinguishes PENDING_CLOSURE); `Status` the older one.
    return OrgAccount(
        item["Id"], item.get("Name") or item["Id"], item.get("State") or item["Status"]
    )


def list_org_accounts(client: Any, settings: OrganizationsConfig) -> list[OrgAccount]:
    """Every account in scope: the whole organisation, or the `ous` subtrees minus exclusions.

    Without OU filters one `ListAccounts` pagination suffices; with filters the tree is walked
    from each start (the roots when only exclusions are given), skipping excluded subtrees.
    """
    if not settings.ous and not settings.exclude_ous:
        return [_account(item) for item in _pages(client, "list_accounts", "Accounts")]
    starts = settings.ous or tuple(root["Id"] for root in _pages(client, "list_roots", "Roots"))
    found: dict[str, OrgAccount] = {}
    for parent in _walk(client, starts, frozenset(settings.exclude_ous)):
        for item in _pages(client, "list_accounts_for_parent", "Accounts", ParentId=parent):
            account = _account(item)
            found[account.id] = account
    return list(found.values())


def _walk(client: Any, starts: Iterable[str], excluded: frozenset[str]) -> Iterator[str]:
    """Each parent id under `starts` (themselves included), depth first, once each."""
    pending = [start for start in starts if start not in excluded]
    seen: set[str] = set()
    while pending:
        parent = pending.pop()
        if parent in seen:
            continue  # nested `ous` entries name a subtree twice
        seen.add(parent)
        yield parent
        children = _pages(
            client, "list_organizational_units_for_parent", "OrganizationalUnits", ParentId=parent
        )
        pending.extend(child["Id"] for child in children if child["Id"] not in excluded)


def to_watch(
    accounts: Iterable[OrgAccount], settings: OrganizationsConfig
) -> tuple[AccountConfig, ...]:
    """ACTIVE, not excluded accounts, sorted by id, with the role of the template."""
    excluded = set(settings.exclude_accounts)
    return tuple(
        AccountConfig(
            id=account.id,
            name=account.name,
            role_arn=settings.role_arn_for(account.id),
            external_id=settings.external_id,
            session_name=settings.session_name,
        )
        for account in sorted(accounts, key=lambda a: a.id)
        if account.status == ACTIVE and account.id not in excluded
    )


def combine(
    static: Sequence[AccountConfig], discovered: Sequence[AccountConfig]
) -> tuple[AccountConfig, ...]:
    """Static accounts first (they win on the same id), then the discovered ones."""
    known = {account.id for account in static}
    return (*static, *(account for account in discovered if account.id not in known))


@dataclass(frozen=True, slots=True)
class DiscoveryState:
    """The last discovery outcome (what metrics show)."""

    accounts: tuple[AccountConfig, ...] = ()
    successful: bool = False
    last_success: datetime | None = None


class AccountDiscovery:
    """Lists the organisation's accounts on demand and remembers the last good answer."""

    def __init__(
        self,
        settings: OrganizationsConfig,
        client: Callable[[], Any],
        now: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self._client = client
        self._now = now
        self.state = DiscoveryState()

    def refresh(self) -> tuple[AccountConfig, ...]:
        """The accounts to watch now; raises (and records the failure) when AWS fails."""
        started = self._now()
        try:
            accounts = to_watch(list_org_accounts(self._client(), self.settings), self.settings)
        except Exception:
            self.state = DiscoveryState(self.state.accounts, False, self.state.last_success)
            raise
        self.state = DiscoveryState(accounts, True, started)
        log.info("organizations discovery: %d active accounts in scope", len(accounts))
        return accounts


def policy_document() -> dict[str, Any]:
    """The identity policy of the role discovery uses in the management account."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DrwatchOrganizationsDiscovery",
                "Effect": "Allow",
                "Action": list(IAM_ACTIONS),
                # Organizations List calls accept no narrower resource for these reads.
                "Resource": "*",
            }
        ],
    }
