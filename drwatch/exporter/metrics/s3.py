"""S3: bucket settings, replication rules and backup files under configured prefixes.

The rules' lag and pending figures render with every other replication (recovery.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric

from drwatch.core.model import BackupFileSetState, Observations, S3BucketState, S3ReplicationRule
from drwatch.exporter.metrics.common import RESOURCE_LABELS, add, gauge, ref_labels

S3_RULE_LABELS = (*RESOURCE_LABELS, "rule")


def s3_families(observed: Sequence[Observations]) -> Iterator[Metric]:
    """Bucket settings and replication rules (their lag renders with replication above)."""
    yield from s3_bucket_families(
        sorted((b for o in observed for b in o.s3_buckets), key=lambda b: b.ref)
    )
    yield from s3_rule_families(
        sorted(
            (r for o in observed for r in o.s3_replication_rules),
            key=lambda r: (r.source, r.rule_id),
        )
    )
    yield from backup_file_families(
        sorted((f for o in observed for f in o.backup_file_sets), key=lambda f: f.ref)
    )


def backup_file_families(file_sets: Sequence[BackupFileSetState]) -> Iterator[Metric]:
    newest = gauge(
        "drwatch_backup_file_newest_bytes",
        "Size of the newest file under a configured backup prefix (a tiny newest dump is a "
        "failed dump); absent when the prefix holds no file.",
        RESOURCE_LABELS,
    )
    expected = gauge(
        "drwatch_backup_file_expected_interval_seconds",
        "How often the job is expected to write a file under the prefix, from config.",
        RESOURCE_LABELS,
    )
    for file_set in file_sets:
        labels = ref_labels(file_set.ref)
        add(newest, labels, file_set.newest_bytes)
        add(expected, labels, file_set.expected_interval_seconds)
    yield from (newest, expected)


def s3_bucket_families(buckets: Sequence[S3BucketState]) -> Iterator[Metric]:
    versioning = gauge(
        "drwatch_s3_bucket_versioning_enabled",
        "1 if bucket versioning is Enabled, 0 if Suspended or never enabled.",
        RESOURCE_LABELS,
    )
    object_lock = gauge(
        "drwatch_s3_bucket_object_lock_enabled",
        "1 if S3 Object Lock is enabled on the bucket.",
        RESOURCE_LABELS,
    )
    rules = gauge(
        "drwatch_s3_bucket_replication_rules",
        "Replication rules configured on the bucket (0: not replicated).",
        RESOURCE_LABELS,
    )
    for bucket in buckets:
        labels = ref_labels(bucket.ref)
        versioning.add_metric(labels, float(bucket.versioning == "Enabled"))
        object_lock.add_metric(labels, float(bucket.object_lock))
        rules.add_metric(labels, bucket.replication_rules)
    yield from (versioning, object_lock, rules)


def s3_rule_families(rules: Sequence[S3ReplicationRule]) -> Iterator[Metric]:
    info = gauge(
        "drwatch_s3_replication_rule_info",
        "A replication rule with its destination and storage class (empty: the source "
        "object's class); always 1.",
        (
            *S3_RULE_LABELS,
            "destination_account_id",
            "destination_region",
            "destination",
            "storage_class",
        ),
    )
    enabled = gauge(
        "drwatch_s3_replication_rule_enabled", "1 if the rule's status is Enabled.", S3_RULE_LABELS
    )
    metrics = gauge(
        "drwatch_s3_replication_metrics_enabled",
        "1 if the rule publishes replication metrics; 0 means its lag is unknown (no "
        "drwatch_replication_latency_seconds), not zero.",
        S3_RULE_LABELS,
    )
    rtc = gauge(
        "drwatch_s3_replication_time_control_enabled",
        "1 if S3 Replication Time Control (15-minute SLA) is on for the rule.",
        S3_RULE_LABELS,
    )
    delete_markers = gauge(
        "drwatch_s3_replication_delete_marker_replication_enabled",
        "1 if the rule replicates delete markers.",
        S3_RULE_LABELS,
    )
    for rule in rules:
        labels = [*ref_labels(rule.source), rule.rule_id]
        destination = [rule.destination_account_id, rule.destination_region, rule.destination]
        info.add_metric([*labels, *destination, rule.storage_class], 1)
        enabled.add_metric(labels, float(rule.status == "Enabled"))
        metrics.add_metric(labels, float(rule.metrics_enabled))
        rtc.add_metric(labels, float(rule.replication_time_control))
        delete_markers.add_metric(labels, float(rule.delete_marker_replication))
    yield from (info, enabled, metrics, rtc, delete_markers)
