"""Account discovery through AWS Organizations (the moto sandbox), and the live unit set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drwatch.cli.main import cli
from drwatch.config import Config, OrganizationsConfig, parse_config
from drwatch.core.sharding import Shard
from drwatch.exporter.discovery import IAM_ACTIONS, list_org_accounts, to_watch
from drwatch.exporter.reload import LiveExporter
from drwatch.sandbox.demo import sandbox_session
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.organizations import (
    OrgUnitSpec,
    SeededOrg,
    add_account,
    close_account,
    reset_organization,
    seed_organization,
)
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.validation import validate_response
from tests.conftest import NOW, OperationRecorder
from tests.helpers import FakeClock, ImmediateExecutor

TEMPLATE = "arn:aws:iam::{account_id}:role/drwatch-read"
MANAGEMENT = "123456789012"  # moto's default account owns the organisation
SUSPENDED = "444444444444"
NESTED = "333333333333"
# Accounts of the sandbox fleet other modules seed; here only their units matter.
FIRST, SECOND = "111111111111", "222222222222"
REGIONS = ("eu-west-1", "us-east-1")


@pytest.fixture
def org(sandbox: Sandbox) -> Iterator[SeededOrg]:
    """prod (FIRST) > team (NESTED); dev (SECOND); a closed account under the root."""
    first, second = FIRST, SECOND
    reset_organization()
    seeded = seed_organization(
        sandbox,
        [
            OrgUnitSpec("prod", (first,)),
            OrgUnitSpec("team", (NESTED,), parent="prod"),
            OrgUnitSpec("dev", (second,)),
        ],
        root_accounts=(SUSPENDED,),
    )
    close_account(sandbox, SUSPENDED)
    yield seeded
    reset_organization()


def ids(accounts: Any) -> set[str]:
    return {account.id for account in accounts}


def discovered(sandbox: Sandbox, **settings: Any) -> set[str]:
    config = OrganizationsConfig(TEMPLATE, **settings)
    return ids(to_watch(list_org_accounts(sandbox.client("organizations"), config), config))


def test_only_active_accounts_in_scope_are_discovered(sandbox: Sandbox, org: SeededOrg) -> None:
    first, second = FIRST, SECOND
    everyone = {MANAGEMENT, first, second, NESTED}
    assert discovered(sandbox) == everyone  # SUSPENDED is closed
    assert discovered(sandbox, exclude_accounts=(MANAGEMENT,)) == everyone - {MANAGEMENT}
    # An OU filter takes whole subtrees, nested OUs included.
    assert discovered(sandbox, ous=(org.ou_ids["prod"],)) == {first, NESTED}
    assert discovered(sandbox, ous=(org.ou_ids["prod"], org.ou_ids["team"])) == {first, NESTED}
    assert discovered(sandbox, exclude_ous=(org.ou_ids["team"],)) == everyone - {NESTED}
    assert discovered(
        sandbox, ous=(org.ou_ids["prod"], org.ou_ids["dev"]), exclude_ous=(org.ou_ids["team"],)
    ) == {first, second}


def test_discovered_accounts_get_the_templated_role(sandbox: Sandbox, org: SeededOrg) -> None:
    config = OrganizationsConfig(TEMPLATE, external_id="ext-id", session_name="drwatch-org")
    accounts = to_watch(list_org_accounts(sandbox.client("organizations"), config), config)
    assert [a.id for a in accounts] == sorted(a.id for a in accounts)
    for account in accounts:
        assert account.role_arn == f"arn:aws:iam::{account.id}:role/drwatch-read"
        assert (account.external_id, account.session_name) == ("ext-id", "drwatch-org")
    assert next(a for a in accounts if a.id == NESTED).name == f"account-{NESTED}"


def org_config(sandbox: Sandbox, **extra: Any) -> Config:
    data: dict[str, Any] = {
        "organizations": {"role_arn_template": TEMPLATE, "exclude_accounts": [MANAGEMENT]},
        "regions": list(REGIONS),
        "collectors": {
            name: {"enabled": name == "rds"}
            for name in ("rds", "backup", "elasticache", "s3_replication", "dynamodb", "ebs")
        },
        "aws": {"endpoint_url": sandbox.endpoint_url, "max_attempts": 1},
    }
    data.update(extra)
    return parse_config(data)


class AssumedRoles:
    """Counts AssumeRole calls by role ARN: each one is a new session for an account."""

    def __init__(self) -> None:
        self.arns: list[str] = []

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        self.arns.append(params["RoleArn"])

    def count(self, account: str) -> int:
        return sum(f"::{account}:" in arn for arn in self.arns)


def live(
    config: Config,
    recorder: OperationRecorder | None = None,
    shard: Shard | None = None,
    roles: AssumedRoles | None = None,
) -> LiveExporter:
    handlers: list[tuple[str, Any]] = [("after-call.*.*", validate_response)]
    if recorder is not None:
        handlers.append(("before-call.*.*", recorder))
    if roles is not None:
        handlers.append(("before-parameter-build.sts.AssumeRole", roles))
    return LiveExporter(
        config,
        lambda: config,
        shard=shard,
        clock=FakeClock(NOW),
        executor=ImmediateExecutor(),
        session_factory=sandbox_session,
        extra_handlers=handlers,
    )


def unit_accounts(runtime: LiveExporter) -> set[str]:
    return {s.schedule.key.account_id for s in runtime.exporter.poller.snapshot()}


def scrape(runtime: LiveExporter) -> str:
    return runtime.exporter.metrics.render().decode()


def sample(body: str, name: str) -> float:
    line = next(line for line in body.splitlines() if line.startswith(f"{name} "))
    return float(line.split()[-1])


def test_accounts_come_and_go_without_a_restart(sandbox: Sandbox, org: SeededOrg) -> None:
    first, second = FIRST, SECOND
    recorder = OperationRecorder()
    roles = AssumedRoles()
    runtime = live(org_config(sandbox), recorder, roles=roles)
    try:
        assert unit_accounts(runtime) == {first, second, NESTED}
        runtime.exporter.poller.run_round()
        body = scrape(runtime)
        assert f'account_id="{second}"' in body
        assert sample(body, "drwatch_discovery_accounts") == 3
        assert sample(body, "drwatch_discovery_last_refresh_successful") == 1
        rds_before = runtime.exporter.poller.snapshot()
        assert [roles.count(a) for a in (first, second, NESTED)] == [1, 1, 1]
        # A refresh that finds nothing new rebuilds nothing: no new sessions, no AssumeRole.
        assert runtime.refresh_accounts()
        runtime.exporter.poller.run_round()
        assert len(roles.arns) == 3

        close_account(sandbox, second)
        add_account(sandbox, org, "555555555555", "dev")
        assert runtime.refresh_accounts()
        assert unit_accounts(runtime) == {first, NESTED, "555555555555"}
        # Units that stay keep their data; the closed account's series are gone.
        kept = {s.schedule.key: s.runs for s in runtime.exporter.poller.snapshot() if s.runs}
        assert kept == {
            s.schedule.key: 2 for s in rds_before if s.schedule.key.account_id != second
        }
        body = scrape(runtime)
        assert f'account_id="{second}"' not in body
        assert f'account_id="{first}"' in body
        assert runtime.exporter.poller.ready
        runtime.exporter.poller.run_round()
        assert all(s.healthy for s in runtime.exporter.poller.snapshot())
        # Only the new account assumed its role; the survivors kept their sessions.
        assert [roles.count(a) for a in (first, NESTED, "555555555555")] == [1, 1, 1]
    finally:
        runtime.close()
    calls = {
        f"organizations:{op}" for service, op in recorder.operations if service == "organizations"
    }
    assert calls == {"organizations:ListAccounts"}
    assert calls <= set(IAM_ACTIONS)


def test_a_failed_refresh_keeps_the_accounts_found_before(sandbox: Sandbox, org: SeededOrg) -> None:
    runtime = live(org_config(sandbox))
    try:
        before = unit_accounts(runtime)
        sandbox.faults.add(FaultRule("TooManyRequestsException", service="organizations"))
        assert not runtime.refresh_accounts()
        assert unit_accounts(runtime) == before
        body = scrape(runtime)
        assert sample(body, "drwatch_discovery_last_refresh_successful") == 0
        assert sample(body, "drwatch_discovery_accounts") == len(before)
    finally:
        runtime.close()


def test_ou_walk_uses_only_declared_actions(sandbox: Sandbox, org: SeededOrg) -> None:
    recorder = OperationRecorder()
    config = org_config(
        sandbox,
        organizations={"role_arn_template": TEMPLATE, "exclude_ous": [org.ou_ids["team"]]},
    )
    runtime = live(config, recorder)
    runtime.close()
    assert unit_accounts(runtime) == {MANAGEMENT, FIRST, SECOND}
    calls = {
        f"organizations:{op}" for service, op in recorder.operations if service == "organizations"
    }
    # Together with ListAccounts (previous test) these are exactly the declared actions.
    assert calls | {"organizations:ListAccounts"} == set(IAM_ACTIONS)


def test_shards_split_a_discovered_organisation(sandbox: Sandbox, org: SeededOrg) -> None:
    config = org_config(sandbox)
    shares = []
    for index in range(3):
        runtime = live(config, shard=Shard(index, 3))
        shares.append(unit_accounts(runtime))
        assert sample(scrape(runtime), f'drwatch_watched_accounts{{shard="{index}/3"}}') == len(
            shares[-1]
        )
        runtime.close()
    assert set().union(*shares) == {NESTED, FIRST, SECOND}
    assert sum(len(share) for share in shares) == 3


def test_static_accounts_win_over_discovered_ones(sandbox: Sandbox, org: SeededOrg) -> None:
    first = FIRST
    custom = f"arn:aws:iam::{first}:role/special"
    config = org_config(sandbox, accounts=[{"id": first, "name": "prod", "role_arn": custom}])
    runtime = live(config)
    runtime.close()
    accounts = {a.id: a for a in runtime.config.accounts}
    assert accounts[first].role_arn == custom
    assert accounts[first].name == "prod"
    assert len(accounts) == 3


def test_iam_policy_for_the_management_account() -> None:
    result = CliRunner().invoke(cli, ["iam-policy", "--organizations"])
    assert result.exit_code == 0, result.output
    import json

    (statement,) = json.loads(result.stdout)["Statement"]
    assert statement["Action"] == list(IAM_ACTIONS)
    assert all(a.split(":")[1].startswith("List") for a in statement["Action"])


def test_example_config_documents_every_organizations_field() -> None:
    from pathlib import Path

    from drwatch.config import ConfigError

    data = {"regions": ["eu-west-1"], "organizations": {"role_arn_template": TEMPLATE, "zz": 1}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    fields = caught.value.problem.removeprefix("unknown field; expected one of ").split(", ")
    assert "role_arn_template" in fields
    example = (Path(__file__).parent.parent / "drwatch.example.yml").read_text(encoding="utf-8")
    for name in fields:
        assert f"#   {name}:" in example, name
    assert "# organizations:" in example
    assert 'shard: "0/1"' in example


def test_poll_command_watches_the_discovered_accounts_of_its_shard(
    sandbox: Sandbox, org: SeededOrg, tmp_path: Path
) -> None:
    import json

    import yaml

    from tests.test_cli import SANDBOX_ENV

    path = tmp_path / "org.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "organizations": {"role_arn_template": TEMPLATE, "exclude_accounts": [MANAGEMENT]},
                "regions": ["eu-west-1"],
                "collectors": {
                    name: {"enabled": name == "rds"}
                    for name in (
                        "rds",
                        "backup",
                        "elasticache",
                        "s3_replication",
                        "dynamodb",
                        "ebs",
                    )
                },
                "aws": {"endpoint_url": sandbox.endpoint_url, "max_attempts": 1},
            }
        )
    )
    runner = CliRunner()
    accounts = {NESTED, FIRST, SECOND}
    seen: set[str] = set()
    for index in range(2):
        result = runner.invoke(
            cli,
            ["poll", "--config", str(path), "--once", "--json", "--shard", f"{index}/2"],
            env=SANDBOX_ENV,
        )
        assert result.exit_code == 0, result.output
        units = json.loads(result.stdout)["units"]
        share = {u["run"]["unit"]["account_id"] for u in units}
        assert share == {a for a in accounts if Shard(index, 2).owns(a)}
        seen |= share
    assert seen == accounts
    bad = runner.invoke(cli, ["poll", "--config", str(path), "--once", "--shard", "2/2"])
    assert bad.exit_code == 2
    assert "shard index must be between 0 and 1" in bad.stderr


def test_a_reload_can_switch_discovery_on(sandbox: Sandbox, org: SeededOrg) -> None:
    static = org_config(sandbox, organizations=None, accounts=[{"id": FIRST}])
    discovering = org_config(sandbox)
    configs = [static]
    runtime = LiveExporter(
        static,
        lambda: configs[-1],
        clock=FakeClock(NOW),
        executor=ImmediateExecutor(),
        session_factory=sandbox_session,
    )
    try:
        assert unit_accounts(runtime) == {FIRST}
        assert "drwatch_discovery_accounts" not in scrape(runtime)
        configs.append(discovering)
        assert runtime.reload() is None
        assert unit_accounts(runtime) == {FIRST, SECOND, NESTED}
        assert sample(scrape(runtime), "drwatch_discovery_accounts") == 3
        # Organizations unreachable with new discovery settings: the reload fails as a whole.
        sandbox.faults.add(FaultRule("AccessDeniedException", 403, service="organizations"))
        configs.append(org_config(sandbox, organizations={"role_arn_template": TEMPLATE}))
        problem = runtime.reload()
        assert problem is not None
        assert "organizations discovery failed: AccessDeniedException" in problem
        assert unit_accounts(runtime) == {FIRST, SECOND, NESTED}
        assert sample(scrape(runtime), "drwatch_config_last_reload_successful") == 0
    finally:
        runtime.close()
