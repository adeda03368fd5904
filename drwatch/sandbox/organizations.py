"""An AWS Organizations estate in the sandbox: OUs and member accounts with chosen ids.

moto implements Organizations, but gives every created account a random id; the fleet is
seeded into fixed account ids, so after creating an account through the API its id is set
in moto's in-process backend (moto does the same for the management account). Everything
else goes through the real API over HTTP, so the exporter reads it exactly as from AWS.
The organisation belongs to moto's default account, which the sandbox's static keys reach.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.organizations.models import organizations_backends

from drwatch.sandbox.server import Sandbox

PARTITION = "aws"


@dataclass(frozen=True, slots=True)
class OrgUnitSpec:
    """An OU (`parent` None: under the root) and the accounts directly in it."""

    name: str
    accounts: tuple[str, ...] = ()
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class SeededOrg:
    root_id: str
    ou_ids: Mapping[str, str] = field(default_factory=dict)
    management_account_id: str = DEFAULT_ACCOUNT_ID


def _backend() -> Any:
    return organizations_backends[DEFAULT_ACCOUNT_ID][PARTITION]


def _client(sandbox: Sandbox) -> Any:
    return sandbox.client("organizations")


def seed_organization(
    sandbox: Sandbox, units: Sequence[OrgUnitSpec], root_accounts: Sequence[str] = ()
) -> SeededOrg:
    """Creates the organisation, its OUs (parents listed first) and accounts."""
    client = _client(sandbox)
    client.create_organization(FeatureSet="ALL")
    root_id = client.list_roots()["Roots"][0]["Id"]
    ou_ids: dict[str, str] = {}
    for unit in units:
        parent = root_id if unit.parent is None else ou_ids[unit.parent]
        created = client.create_organizational_unit(ParentId=parent, Name=unit.name)
        ou_ids[unit.name] = created["OrganizationalUnit"]["Id"]
    seeded = SeededOrg(root_id, ou_ids)
    for account_id in root_accounts:
        add_account(sandbox, seeded, account_id)
    for unit in units:
        for account_id in unit.accounts:
            add_account(sandbox, seeded, account_id, unit.name)
    return seeded


def add_account(sandbox: Sandbox, org: SeededOrg, account_id: str, ou: str | None = None) -> None:
    """Creates a member account with id `account_id` under `ou` (None: the root)."""
    client = _client(sandbox)
    status = client.create_account(
        AccountName=f"account-{account_id}", Email=f"aws+{account_id}@example.com"
    )["CreateAccountStatus"]
    _set_account_id(status["AccountId"], account_id)
    if ou is not None:
        client.move_account(
            AccountId=account_id, SourceParentId=org.root_id, DestinationParentId=org.ou_ids[ou]
        )


def close_account(sandbox: Sandbox, account_id: str) -> None:
    """Closes an account: Organizations then lists it as SUSPENDED."""
    _client(sandbox).close_account(AccountId=account_id)


def _set_account_id(generated: str, wanted: str) -> None:
    backend = _backend()
    account = backend.get_account_by_id(generated)
    account.id = wanted
    # moto maps member accounts to their organisation by id (DescribeOrganization, ListRoots).
    masters = organizations_backends.master_accounts
    masters[wanted] = masters.pop(generated)


def reset_organization() -> None:
    """Forgets the organisation only (the fleet's resources stay), so a test can seed anew."""
    _backend()._reset()
    masters = organizations_backends.master_accounts
    for member in [m for m, (master, _) in masters.items() if master == DEFAULT_ACCOUNT_ID]:
        del masters[member]
