"""Tests for exporter.config.

Config files under tests/configs/ are the main cases: every ``*.ok.yml`` must
load, and every ``*.bad.yml`` must fail with exactly the message in its first
line, ``# expect: <message>`` (``<file>`` stands for the file's path).
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from drwatch.config import (
    DEFAULT_INTERVALS,
    DEFAULT_PORT,
    KNOWN_COLLECTORS,
    AccountConfig,
    Config,
    ConfigError,
    TierConfig,
    TierTarget,
    load_config,
    parse_config,
)

CONFIGS = Path(__file__).parent / "configs"
EXAMPLE = Path(__file__).parent.parent / "drwatch.example.yml"
OK_FILES = sorted(CONFIGS.glob("*.ok.yml"))
BAD_FILES = sorted(CONFIGS.glob("*.bad.yml"))
EXPECT_PREFIX = "# expect: "

MINIMAL: dict[str, Any] = {"accounts": [{"id": "111111111111"}], "regions": ["eu-west-1"]}


def with_fields(**fields: Any) -> dict[str, Any]:
    """The minimal config plus (or with replaced) top-level fields."""
    return {**MINIMAL, **fields}


def parse_outcome(data: object) -> Config | ConfigError:
    """The parsed config, or the ConfigError; any other exception propagates."""
    try:
        return parse_config(data)
    except ConfigError as error:
        return error


def config_error(data: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value


def expected_message(path: Path) -> str:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(EXPECT_PREFIX), f"{path.name} lacks an '# expect:' first line"
    return first_line.removeprefix(EXPECT_PREFIX).replace("<file>", str(path))


# --- The config file corpus. -------------------------------------------------


def test_corpus_is_not_empty() -> None:
    # Guards against a moved directory turning the parametrized tests vacuous.
    assert len(OK_FILES) >= 6
    assert len(BAD_FILES) >= 20


@pytest.mark.parametrize("path", OK_FILES, ids=lambda path: path.name)
def test_ok_config_loads(path: Path) -> None:
    assert isinstance(load_config(path), Config)


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda path: path.name)
def test_bad_config_fails_with_expected_message(path: Path) -> None:
    expected = expected_message(path)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == expected


def test_bad_messages_are_unique() -> None:
    # Two files expecting the same message usually means one tests nothing new;
    # the few deliberate repeats (same rule, different input) are listed.
    deliberate = {
        "accounts: required",
        'collectors.rds.interval: must be a duration such as 300, "5m" or "1h"',
    }
    messages = [expected_message(path) for path in BAD_FILES]
    repeated = {message for message in messages if messages.count(message) > 1}
    assert repeated <= deliberate


# --- Defaults. ----------------------------------------------------------------


def test_minimal_config_gets_defaults() -> None:
    config = load_config(CONFIGS / "minimal.ok.yml")
    assert config.accounts == (
        AccountConfig(id="111111111111", name="111111111111", session_name="drwatch"),
    )
    assert config.regions == ("eu-west-1",)
    assert config.listen_address == f"0.0.0.0:{DEFAULT_PORT}"
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 9638)
    assert config.history_path == "drwatch-history.db"
    rds = config.collectors["rds"]
    assert (rds.enabled, rds.interval_seconds, rds.stale_after_seconds, rds.timeout_seconds) == (
        True,
        300,
        900,
        300,
    )
    assert config.enabled_collectors() == (
        "rds",
        "backup",
        "elasticache",
        "s3_replication",
        "dynamodb",
        "ebs",
    )
    assert config.tiers.tag_key == "dr-tier"
    assert config.tiers.default_tier == "standard"
    assert dict(config.tiers.targets) == {
        "premium": TierTarget(rpo_seconds=300, rto_seconds=900),
        "standard": TierTarget(rpo_seconds=900, rto_seconds=3600),
        "basic": TierTarget(rpo_seconds=3600, rto_seconds=14400),
    }
    assert (config.aws.endpoint_url, config.aws.retry_mode, config.aws.max_attempts) == (
        None,
        "standard",
        5,
    )
    assert (config.aws.connect_timeout_seconds, config.aws.read_timeout_seconds) == (5, 30)
    assert config.aws.max_pool_connections == 10
    assert config.poller.max_workers == 32


def test_every_known_collector_gets_its_default_schedule() -> None:
    config = parse_config(MINIMAL)
    assert tuple(config.collectors) == KNOWN_COLLECTORS == tuple(DEFAULT_INTERVALS)
    for name, collector in config.collectors.items():
        assert collector.enabled == (
            name in ("rds", "backup", "elasticache", "s3_replication", "dynamodb", "ebs")
        )
        assert collector.interval_seconds == DEFAULT_INTERVALS[name] >= 60
        assert collector.stale_after_seconds == 3 * collector.interval_seconds
        assert collector.timeout_seconds == collector.interval_seconds
    assert config.collectors["kafka"].interval_seconds == 60
    assert config.collectors["ebs"].interval_seconds == 900


def test_null_means_default() -> None:
    assert load_config(CONFIGS / "defaults_nulls.ok.yml") == parse_config(MINIMAL)


def test_dataclass_defaults_match_parsed_defaults() -> None:
    config = parse_config(MINIMAL)
    built = Config(accounts=config.accounts, regions=config.regions, collectors=config.collectors)
    assert built == config


def test_empty_document_asks_for_accounts() -> None:
    assert str(config_error(None)) == "accounts: required"


# --- Values from the ok files. --------------------------------------------------


def test_full_config_values() -> None:
    config = load_config(CONFIGS / "full.ok.yml")
    prod = config.accounts[0]
    assert prod.id == "011111111111"  # the leading zero survives
    assert prod.role_arn == "arn:aws:iam::011111111111:role/ops/drwatch-read"
    assert prod.external_id == "ext+id=1,a.b@c:d/e-f_g"
    assert prod.session_name == "drwatch-prod"
    assert config.accounts[1].name == "staging"
    assert config.enabled_collectors() == ("rds", "backup", "s3_replication", "kafka", "ebs")
    seconds = {name: c.interval_seconds for name, c in config.collectors.items()}
    assert seconds == {
        "rds": 600,
        "backup": 300,
        "elasticache": 300,
        "s3_replication": 5400,
        "kafka": 60,
        "dynamodb": 86400,
        "ebs": 1800,
        "s3_freshness": 150,
    }
    assert config.collectors["rds"].stale_after_seconds == 3600
    assert config.collectors["rds"].timeout_seconds == 120
    assert config.tiers.default_tier == "basic"
    assert config.tiers.targets["basic"] == TierTarget(rpo_seconds=86400, rto_seconds=172800)
    assert config.aws.endpoint_url == "http://127.0.0.1:5000"
    assert config.aws.read_timeout_seconds == 60
    assert config.poller.max_workers == 16
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9100)


def test_custom_tiers_replace_defaults_wholesale() -> None:
    tiers = load_config(CONFIGS / "custom_tiers.ok.yml").tiers
    assert list(tiers.targets) == ["gold", "silver", "bronze_2"]
    assert tiers.default_tier == "silver"
    assert tiers.tag_key == "backup-class"


def test_ipv6_listen_address() -> None:
    config = load_config(CONFIGS / "ipv6_listen.ok.yml")
    assert config.listen_address == "[::]:9638"
    assert (config.listen_host, config.listen_port) == ("::", 9638)


def test_adaptive_retries() -> None:
    config = load_config(CONFIGS / "adaptive_retries.ok.yml")
    assert (config.aws.retry_mode, config.aws.max_attempts) == ("adaptive", 20)
    assert config.accounts[0].role_arn == "arn:aws-cn:iam::111111111111:role/drwatch"


def test_merge_keys_and_overrides() -> None:
    backup = load_config(CONFIGS / "anchors.ok.yml").collectors["backup"]
    assert (backup.enabled, backup.interval_seconds, backup.stale_after_seconds) == (
        True,
        900,
        1800,
    )


# --- Durations. ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (300, 300),
        (90.5, 90.5),
        ("300", 300),
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("2d", 172800),
        ("1d2h3m4s", 93784),
        (" 5m ", 300),
    ],
)
def test_duration_forms(text: object, seconds: float) -> None:
    targets = {"only": {"rpo": text, "rto": "1d"}}
    config = parse_config(with_fields(tiers={"default": "only", "targets": targets}))
    assert config.tiers.targets["only"].rpo_seconds == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "5M", "m", "1h1h", "5ms", "-5m", "1e3", "PT5M"])
def test_duration_garbage_is_rejected(text: str) -> None:
    collectors = {"rds": {"stale_after": text}}
    error = config_error(with_fields(collectors=collectors))
    # "5" is a valid duration, just too short; everything else is not a duration.
    assert error.field == "collectors.rds.stale_after"
    assert error.problem in {
        'must be a duration such as 300, "5m" or "1h"',
        "must be >= interval (300s)",
    }


# --- tier_for. ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "tier"),
    [
        ({"dr-tier": "premium"}, "premium"),
        ({"dr-tier": "  Premium "}, "premium"),
        ({"dr-tier": "BASIC"}, "basic"),
        ({"dr-tier": "gold"}, "standard"),
        ({"dr-tier": ""}, "standard"),
        ({}, "standard"),
        ({"DR-TIER": "premium"}, "standard"),  # tag keys are case-sensitive in AWS
        ({"other": "premium"}, "standard"),
    ],
)
def test_tier_for(tags: Mapping[str, str], tier: str) -> None:
    assert TierConfig().tier_for(tags) == tier


def test_tier_for_uses_configured_key_and_default() -> None:
    tiers = load_config(CONFIGS / "custom_tiers.ok.yml").tiers
    assert tiers.tier_for({"backup-class": "Gold"}) == "gold"
    assert tiers.tier_for({"dr-tier": "gold"}) == "silver"
    assert tiers.tier_for({"backup-class": "premium"}) == "silver"


# --- Immutability and errors. ---------------------------------------------------


def test_config_is_immutable() -> None:
    config = parse_config(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.regions = ("us-east-1",)  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.collectors["rds"] = config.collectors["ebs"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.tiers.targets["x"] = TierTarget(1, 1)  # type: ignore[index]


def test_config_error_parts_and_pickling() -> None:
    error = ConfigError("collectors.rds.interval", "must be >= 60")
    assert (error.field, error.problem) == ("collectors.rds.interval", "must be >= 60")
    assert str(error) == "collectors.rds.interval: must be >= 60"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.problem) == (error.field, error.problem)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert caught.value.field == str(missing)
    assert caught.value.problem.startswith("cannot read")


def test_yaml_errors_do_not_quote_the_source_line(tmp_path: Path) -> None:
    path = tmp_path / "drwatch.yml"
    path.write_text('accounts:\n  - external_id: "hunter2-secret\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "hunter2" not in str(caught.value)
    assert re.search(r"line \d+, column \d+", caught.value.problem)


def test_external_id_is_not_in_repr() -> None:
    account = {
        "id": "111111111111",
        "role_arn": "arn:aws:iam::111111111111:role/r",
        "external_id": "hunter2-secret",
    }
    config = parse_config(with_fields(accounts=[account]))
    assert "hunter2" not in repr(config)


@given(secret=st.text(min_size=1).map(lambda text: "SECRET" + text))
def test_external_id_is_never_echoed(secret: str) -> None:
    base_account = {"id": "111111111111", "external_id": secret}
    for account in (base_account, {**base_account, "role_arn": "arn:aws:iam::111111111111:role/r"}):
        outcome = parse_outcome(with_fields(accounts=[account]))
        assert "SECRET" not in str(outcome)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,  # deeper than PyYAML's recursion allows
        "a: !!int abc",
        "a: !!python/object:os.system x",
        "? [a, b]\n: 1",
        "a: &x [*x]\nregions: *x",
        "--- 1\n--- 2\n",
        "\ta: 1",
    ],
)
def test_pathological_yaml_gives_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "drwatch.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(path)


def test_non_utf8_file_gives_config_error(tmp_path: Path) -> None:
    path = tmp_path / "drwatch.yml"
    path.write_bytes(b"accounts: \xff\xfe")
    with pytest.raises(ConfigError, match="cannot read: not UTF-8 text"):
        load_config(path)


yaml_texts = st.text(alphabet="[]{}:,-!&*?|>'\"#% \n\tab01.e", max_size=60)


@given(yaml_texts)
def test_arbitrary_yaml_text_gives_config_or_config_error(text: str) -> None:
    # A fresh file per example (hypothesis cannot reuse function fixtures).
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "drwatch.yml")
        path.write_text(text, encoding="utf-8")
        with contextlib.suppress(ConfigError):
            assert isinstance(load_config(path), Config)


# --- The example file. ----------------------------------------------------------


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.enabled_collectors() == (
        "rds",
        "backup",
        "elasticache",
        "s3_replication",
        "dynamodb",
        "ebs",
    )
    assert config.tiers == TierConfig()


def accepted_fields(section: dict[str, Any], where: list[str]) -> list[str]:
    """Ask the parser which fields a section accepts, via its unknown-field error."""
    data: dict[str, Any] = dict(MINIMAL)
    target: dict[str, Any] = data
    for key in where:
        target[key] = dict(target.get(key) or {})
        target = target[key]
    target.update(section)
    target["zz_not_a_field"] = 1
    problem = config_error(data).problem
    return problem.removeprefix("unknown field; expected one of ").split(", ")


@pytest.mark.parametrize(
    "where",
    [
        [],
        ["collectors", "rds"],
        ["tiers"],
        ["tiers", "targets", "x"],
        ["aws"],
        ["poller"],
        ["s3_freshness"],
        ["retention"],
        ["retention", "classes", "x"],
        ["controls"],
        ["pricing"],
    ],
    ids=".".join,
)
def test_example_documents_every_field(where: list[str]) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    section: dict[str, Any] = {}
    if where[-1:] == ["x"]:
        section = {"min_days": 1} if "retention" in where else {"rpo": 1, "rto": 1}
    for name in accepted_fields(section, where):
        assert re.search(rf"\b{name}:", text), f"{name} is not in {EXAMPLE.name}"


def test_example_documents_every_account_field() -> None:
    error = config_error(with_fields(accounts=[{"id": "111111111111", "zz": 1}]))
    text = EXAMPLE.read_text(encoding="utf-8")
    for name in error.problem.removeprefix("unknown field; expected one of ").split(", "):
        assert re.search(rf"\b{name}:", text), f"{name} is not in {EXAMPLE.name}"


# --- Properties: parse_config raises ConfigError or nothing. --------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def parse_or_config_error(data: object) -> None:
    outcome = parse_outcome(data)
    if isinstance(outcome, ConfigError):
        assert outcome.field
        assert str(outcome) == f"{outcome.field}: {outcome.problem}"


@given(json_values)
def test_arbitrary_data_gives_config_or_config_error(data: object) -> None:
    parse_or_config_error(data)


FULL: dict[str, Any] = yaml.safe_load((CONFIGS / "full.ok.yml").read_text(encoding="utf-8"))


def leaf_paths(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the full config, so mutations reach every validator."""
    paths = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            paths.extend(leaf_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths.extend(leaf_paths(child, (*prefix, index)))
    return paths


def replaced(data: Any, path: tuple[Any, ...], new: object) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[head] = replaced(data[head], tuple(rest), new)
    return copy


@given(st.sampled_from(leaf_paths(FULL)[1:]), json_values)
def test_mutated_valid_config_gives_config_or_config_error(
    path: tuple[Any, ...], new: object
) -> None:
    parse_or_config_error(replaced(FULL, path, new))
