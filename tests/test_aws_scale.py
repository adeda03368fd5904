"""What keeps the exporter's CPU and memory flat as the estate grows (bench/scale.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import botocore.session
import botocore.utils
import pytest

from drwatch.config import AccountConfig, AwsConfig
from drwatch.exporter.aws import ApiStats, AwsAccess, parse_timestamp
from drwatch.sandbox import demo
from drwatch.sandbox.server import Sandbox


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-21T20:00:00Z",
        "2026-11-21T20:00:00.123Z",
        "2026-11-21T20:00:00.1234567Z",  # 7 digits: more than datetime holds
        "2026-11-21T20:00:00+02:00",
        "2026-11-21T20:00:00",
        "Sat, 21 Nov 2026 20:00:00 GMT",  # RFC 822 (S3 headers): botocore's path
        "1700000000",  # epoch seconds as text: botocore's path
        1700000000.5,
    ],
)
def test_timestamps_parse_to_what_botocore_gives(value: str | float) -> None:
    parsed = parse_timestamp(value)
    expected = botocore.utils.parse_timestamp(value)
    assert parsed == expected
    assert parsed.isoformat() == expected.isoformat()


def test_iso_timestamps_come_back_in_utc() -> None:
    parsed = parse_timestamp("2026-11-21T20:00:00.5Z")
    assert parsed == datetime(2026, 11, 21, 20, 0, 0, 500000, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)
    assert parse_timestamp("2026-11-21T22:00:00+02:00").tzinfo == timezone(timedelta(hours=2))


def test_every_account_shares_one_service_model_loader(sandbox: Sandbox) -> None:
    accounts = [
        AccountConfig(
            id=account, name=account, role_arn=f"arn:aws:iam::{account}:role/drwatch-read"
        )
        for account in ("111111111111", "222222222222")
    ]
    made: list[botocore.session.Session] = []

    def factory() -> botocore.session.Session:
        session = demo.sandbox_session()
        made.append(session)
        return session

    access = AwsAccess(
        accounts,
        AwsConfig(endpoint_url=sandbox.endpoint_url, max_attempts=1),
        ApiStats(),
        sts_region="us-east-1",
        session_factory=factory,
    )
    identities = [
        access.client(a.id, "eu-west-1", "sts").get_caller_identity()["Account"] for a in accounts
    ]
    assert len(made) == 4  # a base session (AssumeRole) and a role session per account
    loaders = {id(session.get_component("data_loader")) for session in made}
    assert len(loaders) == 1
    # Each account's clients still sign as that account's role.
    assert identities == [a.id for a in accounts]
