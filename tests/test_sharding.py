"""Sharding: N replicas split the accounts with no overlap and no gap, like Prometheus hashmod."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from drwatch.config import AccountConfig
from drwatch.core.sharding import Shard, ShardError, hashmod, parse_shard
from drwatch.sandbox.ports import free_port


def synthetic_accounts(count: int, seed: int = 13) -> list[AccountConfig]:
    generator = random.Random(seed)
    ids = {f"{generator.randrange(10**12):012d}" for _ in range(count * 2)}
    return [AccountConfig(id=i, name=i) for i in sorted(ids)[:count]]


@pytest.mark.parametrize("total", [1, 2, 3, 5, 7, 16, 64])
def test_shards_partition_500_accounts_without_overlap_or_gap(total: int) -> None:
    accounts = synthetic_accounts(500)
    assert len({a.id for a in accounts}) == 500
    shards = [Shard(index, total).select(accounts) for index in range(total)]
    owners = [
        [index for index, share in enumerate(shards) if account in share] for account in accounts
    ]
    assert all(len(owner) == 1 for owner in owners)  # exactly one shard: no gap, no overlap
    assert sum(len(share) for share in shards) == 500
    if total > 1:
        # Hash-mod spreads evenly enough that no replica is idle or carries twice its share.
        assert min(len(share) for share in shards) > 0
        assert max(len(share) for share in shards) < 2 * 500 / total + 10


def test_assignment_is_stable_and_independent_of_order_and_other_accounts() -> None:
    accounts = synthetic_accounts(500)
    shard = Shard(1, 3)
    shuffled = list(accounts)
    random.Random(1).shuffle(shuffled)
    assert set(shard.select(shuffled)) == set(shard.select(accounts))
    # An account joining the organisation never moves the others between shards.
    assert shard.select(accounts[:250]) == tuple(
        a for a in shard.select(accounts) if a in accounts[:250]
    )


def test_hashmod_is_md5_low_64_bits_big_endian() -> None:
    import hashlib

    value = "123456789012"
    digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
    assert hashmod(value, 2**64) == int.from_bytes(digest[8:], "big")
    assert 0 <= hashmod(value, 7) < 7


@pytest.mark.parametrize(
    ("text", "shard"), [("0/1", Shard(0, 1)), ("2/3", Shard(2, 3)), (" 0/16 ", Shard(0, 16))]
)
def test_parse_shard(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard
    assert parse_shard(shard.label) == shard


@pytest.mark.parametrize("text", ["3/3", "-1/3", "1/0", "1", "a/b", "1/3/5", "", "0/1001"])
def test_parse_shard_rejects(text: str) -> None:
    with pytest.raises(ShardError):
        parse_shard(text)


def test_real_prometheus_hashmod_keeps_the_same_accounts_as_the_shard(tmp_path: Path) -> None:
    """The documented relabel config (hashmod over account_id) agrees with --shard."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is required: make system-deps installs it"
    accounts = [a.id for a in synthetic_accounts(60)]
    shard = Shard(1, 3)
    config = {
        "global": {"scrape_interval": "1h"},
        "scrape_configs": [
            {
                "job_name": "accounts",
                # Unreachable targets: only relabelling matters, nothing is scraped.
                "static_configs": [
                    {"targets": [f"192.0.2.1:{1000 + n}"], "labels": {"account_id": account}}
                    for n, account in enumerate(accounts)
                ],
                "relabel_configs": [
                    {
                        "source_labels": ["account_id"],
                        "modulus": shard.total,
                        "target_label": "__tmp_shard",
                        "action": "hashmod",
                    },
                    {
                        "source_labels": ["__tmp_shard"],
                        "regex": str(shard.index),
                        "action": "keep",
                    },
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kept = active_target_accounts(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=30)
    expected = {account for account in accounts if shard.owns(account)}
    assert 0 < len(expected) < len(accounts)
    assert kept == expected


def active_target_accounts(base: str) -> set[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/v1/targets", timeout=2) as r:
                data = json.load(r)["data"]
            # Target discovery is asynchronous: wait until the dropped and kept targets add up.
            if len(data["activeTargets"]) + len(data.get("droppedTargets", [])) >= 60:
                return {t["labels"]["account_id"] for t in data["activeTargets"]}
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise AssertionError("prometheus never reported its targets")
