"""The metrics view: one custom prometheus-client collector rendering the latest unit results.

Nothing here calls AWS. Every scrape renders the poller's current snapshot, so values are
as fresh as the last poll of each collector (see the HELP texts). No sample timestamps:
freshness is exported explicitly as `drwatch_collector_last_success_timestamp_seconds`.
"""

from __future__ import annotations

import gzip
import io
import platform
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PrometheusCollector

from drwatch import __version__
from drwatch.config import RetentionConfig, TierConfig
from drwatch.core.model import (
    BackupCoverage,
    BackupFileSetState,
    JobCount,
    KafkaConnectorState,
    KafkaFlowRef,
    KafkaPartitionLag,
    KafkaReplicatorState,
    KafkaTopicState,
    Observations,
    PlanRuleState,
    RecoveryState,
    ReplicationState,
    Resource,
    ResourceJobState,
    ResourceRef,
    S3BucketState,
    S3ReplicationRule,
    UnitKey,
    VaultState,
)
from drwatch.core.pricing import (
    PriceTable,
    StorageItem,
    load_price_table,
    monthly_cost,
    storage_by_key,
    storage_items,
)
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.poller import UnitStatus
from drwatch.exporter.retention_metrics import retention_families

# Fast enough to compress megabytes in milliseconds; the larger levels gain little on text.
GZIP_LEVEL = 1
CACHED = "Cached from the last successful poll of its collector, not read at scrape time."
RESOURCE_LABELS = ("account_id", "region", "service", "resource_type", "resource")
UNIT_LABELS = ("collector", "account_id", "region")
COPY_LABELS = (*RESOURCE_LABELS, "mechanism", "destination_account_id", "destination_region")
REPLICATION_LABELS = (
    "kind",
    *RESOURCE_LABELS,
    "destination_account_id",
    "destination_region",
    "destination",
)


def ref_labels(ref: ResourceRef) -> list[str]:
    return [ref.account_id, ref.region, ref.service, ref.resource_type, ref.resource_id]


@dataclass(frozen=True, slots=True)
class RecoveryGauge:
    """A per-resource, per-mechanism gauge and how to read its value from a RecoveryState."""

    name: str
    documentation: str
    value: Callable[[RecoveryState], float | None]


def timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def days_to_seconds(days: int | None) -> float | None:
    return float(days) * 86400 if days is not None else None


def flag(value: bool | None) -> float | None:
    return None if value is None else float(value)


LOCAL_RECOVERY_GAUGES = (
    RecoveryGauge(
        "drwatch_recovery_mechanism_enabled",
        "1 if the mechanism is configured to produce recovery points for the resource.",
        lambda s: float(s.enabled),
    ),
    RecoveryGauge(
        "drwatch_recovery_point_timestamp_seconds",
        "Time of the newest restorable point; time() minus this is the RPO achieved.",
        lambda s: timestamp(s.newest_point),
    ),
    RecoveryGauge(
        "drwatch_recovery_point_oldest_timestamp_seconds",
        "Time of the oldest restorable point.",
        lambda s: timestamp(s.oldest_point),
    ),
    RecoveryGauge(
        "drwatch_recovery_points",
        "Number of restorable points (snapshots, backups); 0 for continuous PITR.",
        lambda s: float(s.point_count),
    ),
    RecoveryGauge(
        "drwatch_recovery_points_failed",
        "Number of recovery points in a failed state.",
        lambda s: float(s.failed_count),
    ),
    RecoveryGauge(
        "drwatch_recovery_points_never_expire",
        "Number of recovery points with no expiry (kept until someone deletes them).",
        lambda s: float(s.never_expire_count),
    ),
    RecoveryGauge(
        "drwatch_recovery_points_archived",
        "Number of restorable points in an archive tier (hours to restore: an RTO concern).",
        lambda s: float(s.archived_count),
    ),
    RecoveryGauge(
        "drwatch_recovery_point_bytes",
        "Storage of the restorable points in bytes (allocated size: an upper bound for "
        "incremental snapshots).",
        lambda s: float(s.size_bytes),
    ),
    RecoveryGauge(
        "drwatch_recovery_retention_min_seconds",
        "Shortest configured retention of the mechanism's points.",
        lambda s: days_to_seconds(s.retention_min_days),
    ),
    RecoveryGauge(
        "drwatch_recovery_retention_max_seconds",
        "Longest configured retention of the mechanism's points.",
        lambda s: days_to_seconds(s.retention_max_days),
    ),
    RecoveryGauge(
        "drwatch_recovery_encrypted",
        "1 if every restorable point is encrypted at rest.",
        lambda s: flag(s.encrypted),
    ),
    RecoveryGauge(
        "drwatch_recovery_immutable",
        "1 if the points cannot be deleted before expiry (vault lock).",
        lambda s: flag(s.immutable),
    ),
)

COPY_RECOVERY_GAUGES = (
    RecoveryGauge(
        "drwatch_copy_recovery_point_timestamp_seconds",
        "Time of the newest restorable point copied to another region or account.",
        lambda s: timestamp(s.newest_point),
    ),
    RecoveryGauge(
        "drwatch_copy_recovery_points",
        "Number of restorable points copied to another region or account.",
        lambda s: float(s.point_count),
    ),
    RecoveryGauge(
        "drwatch_copy_recovery_point_bytes",
        "Storage of the copied points in bytes (allocated size: an upper bound).",
        lambda s: float(s.size_bytes),
    ),
)


class ObservedMetrics(PrometheusCollector):
    """Resources, recovery states, copies, replication and tier targets of one snapshot."""

    def __init__(
        self,
        statuses: Sequence[UnitStatus],
        tiers: TierConfig,
        prices: PriceTable,
        retention: RetentionConfig | None = None,
    ) -> None:
        self._statuses = statuses
        self._tiers = tiers
        self._prices = prices
        self._retention = retention or RetentionConfig()

    def collect(self) -> Iterator[Metric]:
        observed = [s.observations for s in self._statuses if s.observations is not None]
        # Sorted so that the exposition is stable whatever order AWS lists things in.
        resources = sorted((r for o in observed for r in o.resources), key=lambda r: r.ref)
        states = sorted(
            (st for o in observed for st in o.recovery_states),
            key=lambda st: (st.ref, st.mechanism, st.location_account_id, st.location_region),
        )
        replications = sorted(
            (r for o in observed for r in o.replication_states),
            key=lambda r: (r.source, r.kind, r.destination_account_id, r.destination_region),
        )
        tier_of = {r.ref: r.tier for r in resources}
        yield from self._tier_targets()
        yield from self._resources(resources)
        yield from self._local_recovery([s for s in states if not s.is_copy])
        yield from self._copies([s for s in states if s.is_copy])
        yield from self._replication(replications)
        yield from self._tiered_rpo(states, tier_of)
        yield from retention_families(resources, self._retention, CACHED)
        yield from backup_families(observed)
        yield from s3_families(observed)
        yield from kafka_families(observed)
        vaults = [v for o in observed for v in o.vault_states]
        yield from storage_families(storage_items(states, vaults), self._prices)

    def _tier_targets(self) -> Iterator[Metric]:
        rpo = GaugeMetricFamily(
            "drwatch_rpo_target_seconds", "Recovery point objective of the tier.", labels=("tier",)
        )
        rto = GaugeMetricFamily(
            "drwatch_rto_target_seconds", "Recovery time objective of the tier.", labels=("tier",)
        )
        for tier, target in sorted(self._tiers.targets.items()):
            rpo.add_metric([tier], target.rpo_seconds)
            rto.add_metric([tier], target.rto_seconds)
        yield rpo
        yield rto

    def _resources(self, resources: Iterable[Resource]) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "drwatch_resource_info",
            f"A resource drwatch watches, with its DR tier; always 1. {CACHED}",
            labels=(*RESOURCE_LABELS, "tier", "name"),
        )
        deletion = GaugeMetricFamily(
            "drwatch_resource_deletion_protection",
            f"1 if the resource has deletion protection on. {CACHED}",
            labels=(*RESOURCE_LABELS, "tier"),
        )
        for resource in resources:
            labels = [*ref_labels(resource.ref), resource.tier]
            info.add_metric([*labels, resource.name], 1)
            if resource.deletion_protection is not None:
                deletion.add_metric(labels, float(resource.deletion_protection))
        yield info
        yield deletion

    def _local_recovery(self, states: Sequence[RecoveryState]) -> Iterator[Metric]:
        # One family at a time, each written out before the next is built: at 10,000
        # resources one holds ~20,000 samples, all eleven at once ~70 MB (bench/scale.py).
        for gauge in LOCAL_RECOVERY_GAUGES:
            family = GaugeMetricFamily(
                gauge.name,
                f"{gauge.documentation} {CACHED}",
                labels=(*RESOURCE_LABELS, "mechanism"),
            )
            for state in states:
                value = gauge.value(state)
                if value is not None:
                    family.add_metric([*ref_labels(state.ref), state.mechanism.value], value)
            yield family

    def _copies(self, states: Sequence[RecoveryState]) -> Iterator[Metric]:
        families = [
            (g, GaugeMetricFamily(g.name, f"{g.documentation} {CACHED}", labels=COPY_LABELS))
            for g in COPY_RECOVERY_GAUGES
        ]
        for state in states:
            labels = [
                *ref_labels(state.ref),
                state.mechanism.value,
                state.location_account_id,
                state.location_region,
            ]
            for gauge, family in families:
                value = gauge.value(state)
                if value is not None:
                    family.add_metric(labels, value)
        for _, family in families:
            yield family

    def _replication(self, replications: Sequence[ReplicationState]) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "drwatch_replication_info",
            f"A replication drwatch watches, with its state as AWS reports it; always 1. {CACHED}",
            labels=(*REPLICATION_LABELS, "state"),
        )
        latest = GaugeMetricFamily(
            "drwatch_replication_latest_timestamp_seconds",
            f"Newest point the destination holds. {CACHED}",
            labels=REPLICATION_LABELS,
        )
        latency = GaugeMetricFamily(
            "drwatch_replication_latency_seconds",
            f"Replication latency as measured at poll time. {CACHED}",
            labels=REPLICATION_LABELS,
        )
        pending_bytes = gauge(
            "drwatch_replication_pending_bytes",
            "Bytes waiting to be replicated (S3: BytesPendingReplication); absent when unknown.",
            REPLICATION_LABELS,
        )
        pending_operations = gauge(
            "drwatch_replication_pending_operations",
            "Operations waiting to be replicated (S3: OperationsPendingReplication); absent "
            "when unknown.",
            REPLICATION_LABELS,
        )
        failed_operations = gauge(
            "drwatch_replication_failed_operations",
            "Operations that failed to replicate in the newest 5-minute period (S3: "
            "OperationsFailedReplication); absent when unknown.",
            REPLICATION_LABELS,
        )
        for replication in replications:
            labels = [
                replication.kind,
                *ref_labels(replication.source),
                replication.destination_account_id,
                replication.destination_region,
                replication.destination,
            ]
            info.add_metric([*labels, replication.state], 1)
            if replication.latest_replicated_point is not None:
                latest.add_metric(labels, replication.latest_replicated_point.timestamp())
            if replication.latency_seconds is not None:
                latency.add_metric(labels, replication.latency_seconds)
            add(pending_bytes, labels, replication.pending_bytes)
            add(pending_operations, labels, replication.pending_operations)
            add(failed_operations, labels, replication.failed_operations)
        yield info
        yield latest
        yield latency
        yield from (pending_bytes, pending_operations, failed_operations)

    def _tiered_rpo(
        self, states: Sequence[RecoveryState], tier_of: dict[ResourceRef, str]
    ) -> Iterator[Metric]:
        """Newest point over all local mechanisms, labelled with the tier for one alert rule."""
        newest: dict[ResourceRef, float] = {}
        for state in states:
            if state.is_copy or state.newest_point is None:
                continue
            point = state.newest_point.timestamp()
            newest[state.ref] = max(point, newest.get(state.ref, point))
        family = GaugeMetricFamily(
            "drwatch_resource_recovery_point_timestamp_seconds",
            "Newest restorable point of the resource over all its mechanisms (PITR, snapshots, "
            f"backups); time() minus this is the RPO achieved. {CACHED}",
            labels=(*RESOURCE_LABELS, "tier"),
        )
        for ref, point in sorted(newest.items()):
            family.add_metric([*ref_labels(ref), tier_of.get(ref, self._tiers.default_tier)], point)
        yield family


# --- S3 -------------------------------------------------------------------------------

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


# --- AWS Backup -------------------------------------------------------------------------

VAULT_LABELS = ("account_id", "region", "vault")
JOB_COUNT_LABELS = (
    "account_id",
    "region",
    "kind",
    "vault",
    "resource_type",
    "state",
    "message_category",
)
SUMMARY_LABELS = ("account_id", "region", "resource_type", "state", "message_category")
COPY_JOB_LABELS = (*RESOURCE_LABELS, "destination_account_id", "destination_region")
RESTORE_JOB_LABELS = (*RESOURCE_LABELS, "restore_testing_plan")
PLAN_LABELS = ("account_id", "region", "plan")
RULE_LABELS = (*PLAN_LABELS, "rule")


def gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, f"{documentation} {CACHED}", labels=labels)


def add(family: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None:
        family.add_metric(labels, value)


def backup_families(observed: Sequence[Observations]) -> Iterator[Metric]:
    """The AWS Backup collector's own families (its recovery states render above)."""
    yield from vault_families(
        sorted(
            (v for o in observed for v in o.vault_states),
            key=lambda v: (v.account_id, v.region, v.vault),
        )
    )
    yield from job_count_families(
        sorted(c for o in observed for c in o.job_counts),
        sorted(c for o in observed for c in o.job_summaries),
    )
    yield from resource_job_families(
        sorted(
            (j for o in observed for j in o.resource_job_states),
            key=lambda j: (
                j.ref,
                j.kind,
                j.destination_account_id,
                j.destination_region,
                j.restore_testing_plan,
            ),
        )
    )
    yield from coverage_families(
        sorted((c for o in observed for c in o.backup_coverage), key=lambda c: c.ref)
    )
    yield from plan_families(
        sorted(
            (r for o in observed for r in o.plan_rules),
            key=lambda r: (r.account_id, r.region, r.plan, r.rule),
        )
    )


STORAGE_LABELS = ("account_id", "region", "service", "mechanism", "storage_class")


def storage_families(items: Sequence[StorageItem], prices: PriceTable) -> Iterator[Metric]:
    """Backup storage where it is billed, and its estimated monthly cost (exporter/pricing.py)."""
    storage = gauge(
        "drwatch_backup_storage_bytes",
        "Backup storage by the account and region holding it, the protected resource's "
        "service, mechanism and storage class (warm, cold, archive). Allocated sizes: an upper "
        "bound for incremental snapshots.",
        STORAGE_LABELS,
    )
    cost = gauge(
        "drwatch_backup_storage_estimated_monthly_cost_dollars",
        f"Estimated USD per month to keep that storage at the price table of {prices.as_of} "
        "(exporter/prices/) with config overrides; an estimate, not a bill.",
        STORAGE_LABELS,
    )
    for key, size in sorted(storage_by_key(items).items()):
        _, region, service, _, storage_class = key
        add(storage, list(key), float(size))
        price = prices.price(service, storage_class, region)
        # Micro-dollars: enough precision, and no float noise in the exposition.
        add(cost, list(key), round(monthly_cost(size, price), 6))
    yield storage
    yield cost


def vault_families(vaults: Sequence[VaultState]) -> Iterator[Metric]:
    info = gauge(
        "drwatch_backup_vault_info",
        "An AWS Backup vault with its type and key type; always 1.",
        (*VAULT_LABELS, "vault_type", "encryption_key_type"),
    )
    locked = gauge("drwatch_backup_vault_locked", "1 if vault lock is on.", VAULT_LABELS)
    lock_min = gauge(
        "drwatch_backup_vault_lock_min_retention_seconds",
        "Minimum retention the vault lock enforces.",
        VAULT_LABELS,
    )
    lock_max = gauge(
        "drwatch_backup_vault_lock_max_retention_seconds",
        "Maximum retention the vault lock enforces.",
        VAULT_LABELS,
    )
    points = gauge(
        "drwatch_backup_vault_recovery_points",
        "Restorable (completed) recovery points in the vault by storage class (warm, cold).",
        (*VAULT_LABELS, "storage_class"),
    )
    size = gauge(
        "drwatch_backup_vault_recovery_point_bytes",
        "Size of the restorable recovery points in the vault by storage class.",
        (*VAULT_LABELS, "storage_class"),
    )
    incomplete = gauge(
        "drwatch_backup_vault_recovery_points_incomplete",
        "Recovery points that are not restorable as a whole (PARTIAL, EXPIRED, STOPPED).",
        VAULT_LABELS,
    )
    never = gauge(
        "drwatch_backup_vault_recovery_points_never_expire",
        "Restorable recovery points without a deletion date.",
        VAULT_LABELS,
    )
    unencrypted = gauge(
        "drwatch_backup_vault_recovery_points_unencrypted",
        "Restorable recovery points that are not encrypted.",
        VAULT_LABELS,
    )
    oldest = gauge(
        "drwatch_backup_vault_recovery_point_oldest_timestamp_seconds",
        "Creation time of the oldest restorable recovery point in the vault.",
        VAULT_LABELS,
    )
    for vault in vaults:
        labels = [vault.account_id, vault.region, vault.vault]
        info.add_metric([*labels, vault.vault_type, vault.encryption_key_type], 1)
        locked.add_metric(labels, float(vault.locked))
        add(lock_min, labels, days_to_seconds(vault.lock_min_retention_days))
        add(lock_max, labels, days_to_seconds(vault.lock_max_retention_days))
        points.add_metric([*labels, "warm"], vault.warm_points)
        points.add_metric([*labels, "cold"], vault.cold_points)
        size.add_metric([*labels, "warm"], vault.warm_bytes)
        size.add_metric([*labels, "cold"], vault.cold_bytes)
        incomplete.add_metric(labels, vault.incomplete_points)
        never.add_metric(labels, vault.never_expire_points)
        unencrypted.add_metric(labels, vault.unencrypted_points)
        add(oldest, labels, timestamp(vault.oldest_point))
    yield from (info, locked, lock_min, lock_max, points, size, incomplete, never, unencrypted)
    yield oldest


def job_count_families(
    counts: Sequence[JobCount], summaries: Sequence[JobCount]
) -> Iterator[Metric]:
    jobs = gauge(
        "drwatch_backup_jobs",
        "AWS Backup jobs (kind backup, copy, restore) that finished in the last 24 hours, by "
        "vault, resource type, final state and message category (COMPLETED with a category "
        "other than SUCCESS is completed with issues).",
        JOB_COUNT_LABELS,
    )
    summary = gauge(
        "drwatch_backup_jobs_created_last_day",
        "Backup jobs created in AWS Backup's last one-day summary, by state (including "
        "CREATED and RUNNING), resource type and message category.",
        SUMMARY_LABELS,
    )
    for count in counts:
        jobs.add_metric(
            [
                count.account_id,
                count.region,
                count.kind,
                count.vault,
                count.resource_type,
                count.state,
                count.message_category,
            ],
            count.count,
        )
    for row in summaries:
        summary.add_metric(
            [row.account_id, row.region, row.resource_type, row.state, row.message_category],
            row.count,
        )
    yield jobs
    yield summary


def resource_job_families(states: Sequence[ResourceJobState]) -> Iterator[Metric]:
    backup_success = gauge(
        "drwatch_backup_job_last_success_timestamp_seconds",
        "Completion time of the resource's newest successful backup job.",
        RESOURCE_LABELS,
    )
    backup_failure = gauge(
        "drwatch_backup_job_last_failure_timestamp_seconds",
        "Completion time of the resource's newest failed, aborted, expired or partial job.",
        RESOURCE_LABELS,
    )
    backup_duration = gauge(
        "drwatch_backup_job_last_duration_seconds",
        "Completion minus creation of the resource's newest finished backup job.",
        RESOURCE_LABELS,
    )
    backup_bytes = gauge(
        "drwatch_backup_job_last_bytes",
        "Backup size reported by the resource's newest finished backup job.",
        RESOURCE_LABELS,
    )
    copy_success = gauge(
        "drwatch_backup_copy_job_last_success_timestamp_seconds",
        "Completion time of the newest successful copy job of the resource to a destination.",
        COPY_JOB_LABELS,
    )
    copy_failure = gauge(
        "drwatch_backup_copy_job_last_failure_timestamp_seconds",
        "Completion time of the newest failed copy job of the resource to a destination.",
        COPY_JOB_LABELS,
    )
    restore_success = gauge(
        "drwatch_backup_restore_job_last_success_timestamp_seconds",
        "Completion time of the newest successful restore of the resource, per restore "
        "testing plan (empty for restores started by hand).",
        RESTORE_JOB_LABELS,
    )
    restore_failure = gauge(
        "drwatch_backup_restore_job_last_failure_timestamp_seconds",
        "Completion time of the newest failed restore of the resource.",
        RESTORE_JOB_LABELS,
    )
    restore_duration = gauge(
        "drwatch_backup_restore_job_last_duration_seconds",
        "Completion minus creation of the newest finished restore: the measured restore time.",
        RESTORE_JOB_LABELS,
    )
    restore_validated = gauge(
        "drwatch_backup_restore_job_last_validated",
        "1 if the newest finished restore's validation status is SUCCESSFUL.",
        RESTORE_JOB_LABELS,
    )
    for state in states:
        labels = ref_labels(state.ref)
        if state.kind == "backup":
            add(backup_success, labels, timestamp(state.last_success))
            add(backup_failure, labels, timestamp(state.last_failure))
            add(backup_duration, labels, state.last_duration_seconds)
            add(backup_bytes, labels, state.last_size_bytes)
        elif state.kind == "copy":
            copy = [*labels, state.destination_account_id, state.destination_region]
            add(copy_success, copy, timestamp(state.last_success))
            add(copy_failure, copy, timestamp(state.last_failure))
        else:
            restore = [*labels, state.restore_testing_plan]
            add(restore_success, restore, timestamp(state.last_success))
            add(restore_failure, restore, timestamp(state.last_failure))
            add(restore_duration, restore, state.last_duration_seconds)
            add(restore_validated, restore, flag(state.last_validated))
    yield from (backup_success, backup_failure, backup_duration, backup_bytes)
    yield from (copy_success, copy_failure)
    yield from (restore_success, restore_failure, restore_duration, restore_validated)


def coverage_families(coverage: Sequence[BackupCoverage]) -> Iterator[Metric]:
    selected = gauge(
        "drwatch_backup_resource_selected",
        "1 if a backup plan's selection names the resource AWS Backup protects, 0 if none "
        "does (its points are orphans of a removed plan); absent when tag conditions decide.",
        RESOURCE_LABELS,
    )
    last = gauge(
        "drwatch_backup_protected_resource_last_backup_timestamp_seconds",
        "LastBackupTime AWS Backup reports for the protected resource.",
        RESOURCE_LABELS,
    )
    for item in coverage:
        labels = ref_labels(item.ref)
        add(selected, labels, flag(item.selected))
        add(last, labels, timestamp(item.last_backup))
    yield selected
    yield last


def plan_families(rules: Sequence[PlanRuleState]) -> Iterator[Metric]:
    info = gauge(
        "drwatch_backup_plan_rule_info",
        "A rule of an AWS Backup plan with its target vault and schedule; always 1.",
        (*RULE_LABELS, "vault", "schedule"),
    )
    continuous = gauge(
        "drwatch_backup_plan_rule_continuous",
        "1 if the rule enables continuous backup (point-in-time restore).",
        RULE_LABELS,
    )
    retention = gauge(
        "drwatch_backup_plan_rule_retention_seconds",
        "Retention of the rule's recovery points; absent when they never expire.",
        RULE_LABELS,
    )
    cold = gauge(
        "drwatch_backup_plan_rule_cold_storage_after_seconds",
        "Age at which the rule moves recovery points to cold storage.",
        RULE_LABELS,
    )
    copies = gauge(
        "drwatch_backup_plan_rule_copy_action",
        "1 for each destination the rule copies its recovery points to.",
        (*RULE_LABELS, "destination_account_id", "destination_region"),
    )
    selections = gauge(
        "drwatch_backup_plan_selections",
        "Resource selections (assignments) of the plan; a plan without one protects nothing.",
        PLAN_LABELS,
    )
    seen_plans: set[tuple[str, str, str]] = set()
    for rule in rules:
        plan = [rule.account_id, rule.region, rule.plan]
        labels = [*plan, rule.rule]
        info.add_metric([*labels, rule.vault, rule.schedule], 1)
        continuous.add_metric(labels, float(rule.continuous))
        add(retention, labels, days_to_seconds(rule.delete_after_days))
        add(cold, labels, days_to_seconds(rule.cold_after_days))
        for account, region in rule.copy_destinations:
            copies.add_metric([*labels, account, region], 1)
        if tuple(plan) not in seen_plans:
            seen_plans.add((rule.account_id, rule.region, rule.plan))
            selections.add_metric(plan, rule.selections)
    yield from (info, continuous, retention, cold, copies, selections)


class HealthMetrics(PrometheusCollector):
    """drwatch's own health: build info, every unit's polls and the AWS API counters."""

    def __init__(self, snapshot: Callable[[], Sequence[UnitStatus]], stats: ApiStats) -> None:
        self._snapshot = snapshot
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        yield from self._build_info()
        yield from self._units(self._snapshot())
        yield from self._api()

    def _build_info(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "drwatch_build_info",
            "drwatch version and Python runtime; always 1.",
            labels=("version", "python_version"),
        )
        info.add_metric([__version__, platform.python_version()], 1)
        yield info

    def _units(self, statuses: Sequence[UnitStatus]) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "drwatch_collector_success",
            "1 if the last poll of the unit succeeded.",
            labels=UNIT_LABELS,
        )
        duration = GaugeMetricFamily(
            "drwatch_collector_duration_seconds",
            "Wall time of the last poll of the unit.",
            labels=UNIT_LABELS,
        )
        last_success = GaugeMetricFamily(
            "drwatch_collector_last_success_timestamp_seconds",
            "Start time of the last successful poll of the unit.",
            labels=UNIT_LABELS,
        )
        interval = GaugeMetricFamily(
            "drwatch_collector_interval_seconds",
            "Configured poll interval of the unit.",
            labels=UNIT_LABELS,
        )
        serving = GaugeMetricFamily(
            "drwatch_collector_data_present",
            "1 if the unit's last good data is still served (it is dropped after stale_after).",
            labels=UNIT_LABELS,
        )
        runs = CounterMetricFamily(
            "drwatch_collector_runs", "Completed polls of the unit.", labels=UNIT_LABELS
        )
        skipped = CounterMetricFamily(
            "drwatch_collector_skipped_runs",
            "Polls skipped because the previous poll of the unit was still running.",
            labels=UNIT_LABELS,
        )
        errors = CounterMetricFamily(
            "drwatch_collector_errors",
            "Failed polls of the unit by error code.",
            labels=(*UNIT_LABELS, "error_code"),
        )
        for status in statuses:
            key = status.schedule.key
            labels = [key.collector, key.account_id, key.region]
            interval.add_metric(labels, status.schedule.interval_seconds)
            serving.add_metric(labels, float(status.observations is not None))
            runs.add_metric(labels, status.runs)
            skipped.add_metric(labels, status.skipped)
            for code, count in sorted(status.errors_by_code.items()):
                errors.add_metric([*labels, code], count)
            if status.last_run is not None:
                success.add_metric(labels, float(status.last_run.success))
                duration.add_metric(labels, status.last_run.duration_seconds)
            if status.last_success is not None:
                last_success.add_metric(labels, status.last_success.timestamp())
        yield from (success, duration, last_success, interval, serving, runs, skipped, errors)

    def _api(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "drwatch_aws_api_requests",
            "AWS API HTTP attempts (retries included) by service and operation.",
            labels=("service", "operation"),
        )
        errors = CounterMetricFamily(
            "drwatch_aws_api_errors",
            "AWS API attempts that failed, by service, operation and error code.",
            labels=("service", "operation", "error_code"),
        )
        for (service, operation), count in sorted(self._stats.requests().items()):
            requests.add_metric([service, operation], count)
        for (service, operation, code), count in sorted(self._stats.errors().items()):
            errors.add_metric([service, operation, code], count)
        yield requests
        yield errors


class MetricsView:
    """The /metrics body: observed data rendered once per change, health on every scrape.

    Rendering tens of thousands of series takes long; they only change when a unit result
    is swapped in or dropped as stale, so that part is cached under a key of every unit's
    run count and data presence. Gzip members concatenate into one valid gzip stream, so the
    cached part is never compressed twice.

    Only the gzipped part is kept: at 10,000 resources the plain text is ~40 MB and gzip ~2 MB,
    and Prometheus always asks for gzip; a plain scrape decompresses it. It is rendered one
    metric family at a time straight into the compressor, so the whole text never sits in
    memory at once (bench/scale.py measures the exporter's peak memory).
    """

    def __init__(
        self,
        snapshot: Callable[[], Sequence[UnitStatus]],
        stats: ApiStats,
        tiers: TierConfig,
        prices: PriceTable | None = None,
        extra: Sequence[PrometheusCollector] = (),
        retention: RetentionConfig | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._tiers = tiers
        self._retention = retention
        # Read once: the shipped table (with the config's overrides when the caller passes them).
        self._prices = prices or load_price_table()
        self._health = CollectorRegistry(auto_describe=False)
        self._health.register(HealthMetrics(snapshot, stats))
        # Rendered on every scrape like the health part (reload and discovery status).
        for collector in extra:
            self._health.register(collector)
        self._lock = threading.Lock()
        self._key: tuple[tuple[UnitKey, int, bool], ...] | None = None
        self._observed_gzip = gzip.compress(b"", compresslevel=GZIP_LEVEL)

    def render(self, gzipped: bool = False) -> bytes:
        health = generate_latest(self._health)
        observed_gzip = self._observed_part()
        if gzipped:
            return observed_gzip + gzip.compress(health, compresslevel=GZIP_LEVEL)
        return gzip.decompress(observed_gzip) + health

    def set_tiers(self, tiers: TierConfig) -> None:
        """New RPO/RTO targets (config reload); the next scrape re-renders."""
        with self._lock:
            self._tiers = tiers
            self._key = None

    def set_retention(self, retention: RetentionConfig) -> None:
        """New retention classes (config reload); the next scrape re-renders."""
        with self._lock:
            self._retention = retention
            self._key = None

    def register(self, collector: PrometheusCollector) -> None:
        """Adds a collector rendered on every scrape (e.g. drill status from the history)."""
        self._health.register(collector)

    def _observed_part(self) -> bytes:
        statuses = self._snapshot()
        # Unit keys are part of the key: units come and go with discovery and reloads.
        key = tuple((s.schedule.key, s.runs, s.observations is not None) for s in statuses)
        with self._lock:
            if key != self._key:
                observed = ObservedMetrics(statuses, self._tiers, self._prices, self._retention)
                self._observed_gzip = b""  # let the old body go before building the new one
                self._observed_gzip = gzip_families(observed.collect())
                self._key = key
            return self._observed_gzip


class _OneFamily:
    """A collector of one ready-made family, so families can be rendered one by one."""

    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterator[Metric]:
        yield self._family


def gzip_families(families: Iterable[Metric]) -> bytes:
    """The families in the text format, gzipped, rendered and compressed one at a time."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as stream:
        for family in families:
            stream.write(generate_latest(_OneFamily(family)))
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class ScopeStatus:
    """Config reloads, account discovery and sharding, as drwatch's self-metrics show them."""

    shard: str = "0/1"
    watched_accounts: int = 0
    reload_successful: bool = True
    last_reload_success: datetime | None = None
    discovery_enabled: bool = False
    discovery_successful: bool = False
    last_discovery_success: datetime | None = None
    discovered_accounts: int = 0


class ScopeMetrics(PrometheusCollector):
    """Reload state (named as Prometheus names its own), discovery and shard size."""

    def __init__(self, status: Callable[[], ScopeStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        reloaded = GaugeMetricFamily(
            "drwatch_config_last_reload_successful",
            "1 if the last config reload (SIGHUP or POST /-/reload) succeeded; "
            "after a failed one the previous config stays in force.",
        )
        reloaded.add_metric([], float(status.reload_successful))
        yield reloaded
        if status.last_reload_success is not None:
            yield GaugeMetricFamily(
                "drwatch_config_last_reload_success_timestamp_seconds",
                "Time the config was last loaded successfully (start-up or reload).",
                value=status.last_reload_success.timestamp(),
            )
        watched = GaugeMetricFamily(
            "drwatch_watched_accounts",
            "Accounts this exporter polls: its shard's share of the configured and "
            "discovered accounts.",
            labels=("shard",),
        )
        watched.add_metric([status.shard], status.watched_accounts)
        yield watched
        if status.discovery_enabled:
            yield from discovery_families(status)


def discovery_families(status: ScopeStatus) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "drwatch_discovery_last_refresh_successful",
        "1 if the last AWS Organizations account discovery succeeded; after a failure the "
        "accounts found before stay watched.",
        value=float(status.discovery_successful),
    )
    yield GaugeMetricFamily(
        "drwatch_discovery_accounts",
        "ACTIVE accounts the last successful discovery found (OU filters applied, all shards).",
        value=status.discovered_accounts,
    )
    if status.last_discovery_success is not None:
        yield GaugeMetricFamily(
            "drwatch_discovery_last_success_timestamp_seconds",
            "Time of the last successful AWS Organizations account discovery.",
            value=status.last_discovery_success.timestamp(),
        )


# --- Kafka ------------------------------------------------------------------------------

KAFKA_FLOW_LABELS = ("account_id", "region", "kind", "replicator", "source", "target")
KAFKA_TOPIC_LABELS = (*KAFKA_FLOW_LABELS, "topic")
KAFKA_CONNECTOR_LABELS = ("account_id", "region", "connector")


def kafka_flow_labels(flow: KafkaFlowRef) -> list[str]:
    return [flow.account_id, flow.region, flow.kind, flow.replicator, flow.source, flow.target]


def kafka_families(observed: Sequence[Observations]) -> Iterator[Metric]:
    """MSK Replicator and MirrorMaker 2 flows, their topics (and partitions), MSK Connect."""
    yield from kafka_replicator_families(
        sorted((r for o in observed for r in o.kafka_replicators), key=lambda r: r.flow)
    )
    yield from kafka_topic_families(
        sorted((t for o in observed for t in o.kafka_topics), key=lambda t: (t.flow, t.topic))
    )
    yield from kafka_partition_families(
        sorted(
            (p for o in observed for p in o.kafka_partitions),
            key=lambda p: (p.flow, p.topic, p.partition),
        )
    )
    yield from kafka_connector_families(
        sorted(
            (c for o in observed for c in o.kafka_connectors),
            key=lambda c: (c.account_id, c.region, c.connector),
        )
    )


def kafka_replicator_families(replicators: Sequence[KafkaReplicatorState]) -> Iterator[Metric]:
    info = gauge(
        "drwatch_kafka_replicator_info",
        "A Kafka replication flow (MSK Replicator, MirrorMaker 2) with its state (MSK: "
        "RUNNING, FAILED...; MirrorMaker 2: RUNNING, or STALLED without a heartbeat in 5 "
        "minutes); always 1.",
        (*KAFKA_FLOW_LABELS, "state"),
    )
    topics = gauge(
        "drwatch_kafka_replicator_topics",
        "Topics with replication figures in the flow.",
        KAFKA_FLOW_LABELS,
    )
    lag = gauge(
        "drwatch_kafka_replicator_lag_messages",
        "Messages not yet replicated, over all topics of the flow (MSK: MessageLag, Sum of "
        "the newest 5 minutes; MirrorMaker 2: log-end offsets minus replicated positions).",
        KAFKA_FLOW_LABELS,
    )
    latency = gauge(
        "drwatch_kafka_replicator_latency_seconds",
        "Replication latency of the flow (MSK: ReplicationLatency, Maximum of the newest 5 "
        "minutes; MirrorMaker 2: poll time minus the newest replicated heartbeat).",
        KAFKA_FLOW_LABELS,
    )
    heartbeat = gauge(
        "drwatch_kafka_replicator_heartbeat_timestamp_seconds",
        "MirrorMaker 2: emit time of the newest heartbeat replicated to the target.",
        KAFKA_FLOW_LABELS,
    )
    failures = gauge(
        "drwatch_kafka_replicator_failures",
        "MSK ReplicatorFailure in the newest 5 minutes (Sum).",
        KAFKA_FLOW_LABELS,
    )
    auth_errors = gauge(
        "drwatch_kafka_replicator_auth_errors",
        "MSK AuthError in the newest 5 minutes (Sum); topic-level auth errors are not in it.",
        KAFKA_FLOW_LABELS,
    )
    throttle = gauge(
        "drwatch_kafka_replicator_throttle_seconds",
        "MSK ThrottleTime, Maximum of the newest 5 minutes.",
        KAFKA_FLOW_LABELS,
    )
    for replicator in replicators:
        labels = kafka_flow_labels(replicator.flow)
        info.add_metric([*labels, replicator.state], 1)
        topics.add_metric(labels, replicator.topics)
        add(lag, labels, replicator.message_lag)
        add(latency, labels, replicator.latency_seconds)
        add(heartbeat, labels, timestamp(replicator.latest_replicated_point))
        add(failures, labels, replicator.failures)
        add(auth_errors, labels, replicator.auth_errors)
        add(throttle, labels, replicator.throttle_seconds)
    yield from (info, topics, lag, latency, heartbeat, failures, auth_errors, throttle)


def kafka_topic_families(topic_states: Sequence[KafkaTopicState]) -> Iterator[Metric]:
    lag = gauge(
        "drwatch_kafka_replication_lag_messages",
        "Messages of the topic not yet replicated (MSK: topic MessageLag; MirrorMaker 2: sum "
        "over partitions of log-end offset minus replicated position); absent when unknown.",
        KAFKA_TOPIC_LABELS,
    )
    latency = gauge(
        "drwatch_kafka_replication_latency_seconds",
        "MSK: topic ReplicationLatency, Maximum of the newest 5 minutes; absent when unknown.",
        KAFKA_TOPIC_LABELS,
    )
    zero = gauge(
        "drwatch_kafka_replication_latency_zero_while_producing",
        "1 if the topic's latency is 0 while messages wait at the source (MessageLag > 0): "
        "AWS's documented sign of a topic-level authorisation failure.",
        KAFKA_TOPIC_LABELS,
    )
    for state in topic_states:
        labels = [*kafka_flow_labels(state.flow), state.topic]
        add(lag, labels, state.message_lag)
        add(latency, labels, state.latency_seconds)
        if state.flow.kind == "msk_replicator":
            zero.add_metric(labels, float(state.zero_latency_while_producing))
    yield from (lag, latency, zero)


def kafka_partition_families(partitions: Sequence[KafkaPartitionLag]) -> Iterator[Metric]:
    lag = gauge(
        "drwatch_kafka_partition_lag_messages",
        "MirrorMaker 2: messages of one partition not yet replicated (only with "
        "kafka.partition_detail).",
        (*KAFKA_TOPIC_LABELS, "partition"),
    )
    for item in partitions:
        lag.add_metric(
            [*kafka_flow_labels(item.flow), item.topic, str(item.partition)], item.message_lag
        )
    yield lag


def kafka_connector_families(connectors: Sequence[KafkaConnectorState]) -> Iterator[Metric]:
    info = gauge(
        "drwatch_kafka_connector_info",
        "An MSK Connect connector with its state (RUNNING, FAILED...); always 1.",
        (*KAFKA_CONNECTOR_LABELS, "state"),
    )
    workers = gauge(
        "drwatch_kafka_connector_workers",
        "Workers of the connector (provisioned count, or the autoscaling minimum).",
        KAFKA_CONNECTOR_LABELS,
    )
    tasks = gauge(
        "drwatch_kafka_connector_tasks_max",
        "tasks.max of the connector's configuration (MSK Connect reports no running count).",
        KAFKA_CONNECTOR_LABELS,
    )
    for connector in connectors:
        labels = [connector.account_id, connector.region, connector.connector]
        info.add_metric([*labels, connector.state], 1)
        add(workers, labels, connector.workers)
        add(tasks, labels, connector.tasks_max)
    yield from (info, workers, tasks)
