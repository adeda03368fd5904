"""AWS Backup: vaults, job counts, each resource's newest jobs, plan coverage and plan rules.

The recovery points AWS Backup holds render with every other mechanism's (recovery.py);
these are the AWS Backup collector's own families.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric

from drwatch.core.model import (
    BackupCoverage,
    JobCount,
    Observations,
    PlanRuleState,
    ResourceJobState,
    VaultState,
)
from drwatch.exporter.metrics.common import (
    RESOURCE_LABELS,
    add,
    days_to_seconds,
    flag,
    gauge,
    ref_labels,
    timestamp,
)

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
