"""The `kafka` config section: defaults, what switches the collector on, documented fields."""

from __future__ import annotations

import re
from typing import Any

import pytest

from drwatch.config import ConfigError, KafkaConfig, load_config, parse_config
from tests.test_config import CONFIGS, EXAMPLE, MINIMAL, accepted_fields

FLOW: dict[str, Any] = {
    "region": "eu-west-1",
    "consumer_group": "mm2",
    "source": {"alias": "primary", "bootstrap_servers": ["a.example:9092"]},
    "target": {"alias": "dr", "bootstrap_servers": ["b.example:9092"]},
}


def test_defaults_and_flow_defaults() -> None:
    assert parse_config(MINIMAL).kafka == KafkaConfig()
    assert "kafka" not in parse_config(MINIMAL).enabled_collectors()
    config = parse_config({**MINIMAL, "kafka": {"mirrormaker2": [FLOW]}})
    (flow,) = config.kafka.mirrormaker2
    assert flow.account_id == "111111111111"  # the only account
    assert flow.offset_syncs_topic == "mm2-offset-syncs.dr.internal"
    assert flow.heartbeats_topic == "primary.heartbeats"
    assert flow.source.security_protocol == "PLAINTEXT"
    # Configured flows switch the collector on; partition detail stays off.
    assert "kafka" in config.enabled_collectors()
    assert not config.kafka.partition_detail


def test_ok_file_with_msk_iam_and_scram() -> None:
    config = load_config(CONFIGS / "kafka_mm2.ok.yml")
    (flow,) = config.kafka.mirrormaker2
    assert flow.source.sasl_mechanism == "AWS_MSK_IAM"
    assert flow.target.sasl_password_env == "DRWATCH_KAFKA_DR_PASSWORD"
    assert flow.position == "offset_syncs"
    assert flow.topics == ("orders", "payments")
    assert config.kafka.partition_detail


def test_duplicate_flows_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "kafka": {"mirrormaker2": [FLOW, FLOW]}})
    assert str(caught.value) == "kafka.mirrormaker2[1]: duplicate of kafka.mirrormaker2[0]"


def test_region_must_be_configured() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "kafka": {"mirrormaker2": [{**FLOW, "region": "us-east-2"}]}})
    assert caught.value.field == "kafka.mirrormaker2[0].region"


def test_passwords_are_never_in_the_config() -> None:
    source = {**FLOW["source"], "sasl_password": "s3cret"}
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "kafka": {"mirrormaker2": [{**FLOW, "source": source}]}})
    assert caught.value.field == "kafka.mirrormaker2[0].source.sasl_password"
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("where", "section"),
    [
        (["kafka"], {}),
        (["kafka", "mirrormaker2"], None),
    ],
    ids=["kafka", "kafka.mirrormaker2"],
)
def test_example_documents_every_kafka_field(where: list[str], section: Any) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    if section is None:
        data: dict[str, Any] = {**MINIMAL, "kafka": {"mirrormaker2": [{**FLOW, "zz": 1}]}}
        with pytest.raises(ConfigError) as caught:
            parse_config(data)
        names = caught.value.problem.removeprefix("unknown field; expected one of ").split(", ")
        cluster = {**MINIMAL, "kafka": {"mirrormaker2": [{**FLOW, "source": {"zz": 1}}]}}
        with pytest.raises(ConfigError) as caught:
            parse_config(cluster)
        names += caught.value.problem.removeprefix("unknown field; expected one of ").split(", ")
    else:
        names = accepted_fields(section, where)
    assert len(names) > 1
    for name in names:
        assert re.search(rf"\b{name}:", text), f"{name} is not in {EXAMPLE.name}"
