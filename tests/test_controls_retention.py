"""Retention data classes: config parsing, class assignment, the metrics the alerts join."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from drwatch.config import TierConfig, parse_config
from drwatch.core.model import Resource, ResourceRef
from drwatch.core.retention import RetentionPolicy
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.metrics.retention import retention_families
from drwatch.exporter.metrics.view import MetricsView

CONFIG = parse_config(
    {
        "accounts": [{"id": "111111111111"}],
        "regions": ["eu-west-1"],
        "retention": {
            "default": "internal",
            "classes": {
                "internal": {"min_days": 35},
                "personal": {"min_days": 7, "max_days": 35},
                "financial": {"min_days": 365},
            },
            "rules": [
                {"service": "dynamodb", "class": "personal"},
                {"service": "rds", "resource_type": "db_cluster", "class": "financial"},
            ],
        },
    }
)


def resource(service: str, resource_type: str, name: str, **tags: str) -> Resource:
    ref = ResourceRef("111111111111", "eu-west-1", service, resource_type, name)
    return Resource(ref, name, "standard", tags=tuple(sorted(tags.items())))


def test_tag_beats_rules_and_rules_beat_the_default() -> None:
    retention = CONFIG.retention
    assert retention.class_for("dynamodb", "table", {}) == "personal"
    assert retention.class_for("rds", "db_cluster", {}) == "financial"
    assert retention.class_for("rds", "db_instance", {}) == "internal"
    # The tag wins, whatever its case and spaces; an unknown class name falls through.
    assert retention.class_for("dynamodb", "table", {"data-class": " Financial "}) == "financial"
    assert retention.class_for("dynamodb", "table", {"data-class": "secret"}) == "personal"


def test_reports_apply_the_same_classes_as_the_config() -> None:
    policy = CONFIG.retention
    cases = [
        ("dynamodb", "table", {}),
        ("rds", "db_cluster", {}),
        ("rds", "db_instance", {"data-class": "personal"}),
        ("ebs", "volume", {}),
    ]
    for service, resource_type, tags in cases:
        expected = CONFIG.retention.class_for(service, resource_type, tags)
        assert policy.class_for(service, resource_type, tags) == expected
    assert policy.policy_for("personal").max_days == 35
    assert policy.policy_for("financial").max_days is None


class Families(Collector):
    def __init__(self, resources: list[Resource]) -> None:
        self.resources = resources

    def collect(self) -> Iterator[Metric]:
        yield from retention_families(self.resources, CONFIG.retention, "Cached.")


def test_metrics_export_each_class_policy_and_resource_class() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        Families([resource("dynamodb", "table", "users"), resource("rds", "db_instance", "x")])
    )
    text = generate_latest(registry).decode()
    assert 'drwatch_retention_policy_min_seconds{data_class="financial"} 3.1536e+07' in text
    assert 'drwatch_retention_policy_max_seconds{data_class="personal"} 3.024e+06' in text
    # No maximum for financial: no series (the alert's join then never matches it).
    assert 'drwatch_retention_policy_max_seconds{data_class="financial"}' not in text
    assert (
        'drwatch_resource_data_class_info{account_id="111111111111",data_class="personal",'
        'region="eu-west-1",resource="users",resource_type="table",service="dynamodb"} 1.0'
    ) in text
    assert 'resource="x",resource_type="db_instance",service="rds"} 1.0' in text


def test_a_config_reload_changes_the_exported_policy() -> None:
    view = MetricsView(lambda: [], ApiStats(), TierConfig(), retention=CONFIG.retention)
    before = view.render().decode()
    assert 'drwatch_retention_policy_min_seconds{data_class="internal"} 3.024e+06' in before
    view.set_retention(RetentionPolicy())
    after = view.render().decode()
    assert 'data_class="internal"' not in after
    assert 'drwatch_retention_policy_min_seconds{data_class="default"} 604800.0' in after
