"""AWS Backup's vault-side reads for the sandbox: recovery points, protected resources,
vaults (with key type, vault type and state), plans, selections and restore testing plans.

A recovery point appears when its job completes and disappears when its lifecycle deletes
it; every list pages like AWS Backup (moto's own vault and plan lists answer in one page).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from moto.backup.exceptions import ResourceNotFoundException
from moto.backup.models import BackupBackend, Plan, Vault
from moto.backup.responses import BackupResponse

from drwatch.sandbox.backup_records import (
    AWS_OWNED_KEY,
    BackupSandboxState,
    SandboxRecoveryPoint,
    backend_of,
    compact,
    epoch,
    page_body,
    query,
    query_time,
    state_of,
)

# --- recovery points and protected resources ---------------------------------------------


def visible_points(state: BackupSandboxState) -> list[SandboxRecoveryPoint]:
    """Points that exist at the simulated time: completed, and not yet deleted by lifecycle."""
    now = state.clock()
    points = []
    for point in state.recovery_points.values():
        expires = point.expires()
        if point.completed <= now and (expires is None or expires > now):
            points.append(point)
    return sorted(points, key=lambda p: (p.created, p.arn))


def _point_item(point: SandboxRecoveryPoint, vault: Vault) -> dict[str, Any]:
    lifecycle: dict[str, Any] = {}
    calculated: dict[str, Any] = {}
    if point.move_to_cold_after_days is not None:
        lifecycle["MoveToColdStorageAfterDays"] = point.move_to_cold_after_days
        calculated["MoveToColdStorageAt"] = epoch(
            point.created + timedelta(days=point.move_to_cold_after_days)
        )
    if point.delete_after_days is not None:
        lifecycle["DeleteAfterDays"] = point.delete_after_days
        calculated["DeleteAt"] = epoch(point.expires())
    return compact(
        {
            "RecoveryPointArn": point.arn,
            "BackupVaultName": vault.backup_vault_name,
            "BackupVaultArn": vault.backup_vault_arn,
            "SourceBackupVaultArn": point.source_vault_arn,
            "ResourceArn": point.resource_arn,
            "ResourceType": point.resource_type,
            "Status": point.status,
            "CreationDate": epoch(point.created),
            "CompletionDate": epoch(point.completed),
            "BackupSizeInBytes": point.size_bytes,
            "Lifecycle": lifecycle or None,
            "CalculatedLifecycle": calculated or None,
            "IsEncrypted": point.encrypted,
            "EncryptionKeyArn": vault.encryption_key_arn,
            "CreatedBy": {"BackupPlanId": point.plan_id} if point.plan_id else None,
        }
    )


def list_recovery_points_by_backup_vault(self: BackupResponse) -> str:
    name = unquote(self.path.split("/backup-vaults/")[1].split("/")[0])
    backend = backend_of(self)
    vault = backend.vaults.get(name)
    if vault is None:
        raise ResourceNotFoundException(msg=f"Backup vault {name} not found")
    state = state_of(backend)
    wanted_arn = query(self, "resourceArn")
    wanted_type = query(self, "resourceType")
    created_after = query_time(self, "createdAfter")
    created_before = query_time(self, "createdBefore")
    points = [
        p
        for p in visible_points(state)
        if p.vault_name == name
        and (wanted_arn is None or p.resource_arn == wanted_arn)
        and (wanted_type is None or p.resource_type == wanted_type)
        and (created_after is None or p.created > created_after)
        and (created_before is None or p.created < created_before)
    ]
    items = [_point_item(p, vault) for p in points]
    return page_body(self, "RecoveryPoints", items, "RecoveryPointArn")


def protected_resources(backend: BackupBackend) -> list[dict[str, Any]]:
    """Resources of this account and region with a point here; the newest point wins."""
    state = state_of(backend)
    newest: dict[str, SandboxRecoveryPoint] = {}
    for point in visible_points(state):
        if point.source_vault_arn:
            continue  # copies protect a resource of another region or account
        if point.resource_arn not in newest or point.created >= newest[point.resource_arn].created:
            newest[point.resource_arn] = point
    items = []
    for arn, point in sorted(newest.items()):
        vault = backend.vaults[point.vault_name]
        items.append(
            {
                "ResourceArn": arn,
                "ResourceType": point.resource_type,
                "LastBackupTime": epoch(point.created),
                "ResourceName": arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1],
                "LastBackupVaultArn": vault.backup_vault_arn,
                "LastRecoveryPointArn": point.arn,
            }
        )
    return items


def list_protected_resources(self: BackupResponse) -> str:
    return page_body(self, "Results", protected_resources(backend_of(self)), "ResourceArn")


# --- vaults, plans, selections, restore testing -----------------------------------------


def list_backup_vaults(self: BackupResponse) -> str:
    backend = backend_of(self)
    state = state_of(backend)
    points = Counter(p.vault_name for p in visible_points(state))
    items = []
    for vault in sorted(backend.vaults.values(), key=lambda v: v.backup_vault_name):
        item = vault.to_list_dict()
        item["NumberOfRecoveryPoints"] = points[vault.backup_vault_name]
        item["VaultType"] = "BACKUP_VAULT"
        item["VaultState"] = "AVAILABLE"
        item["EncryptionKeyType"] = state.vault_key_types.get(
            vault.backup_vault_name, AWS_OWNED_KEY
        )
        items.append(compact(item))
    return page_body(self, "BackupVaultList", items, "BackupVaultName")


def list_backup_plans(self: BackupResponse) -> str:
    include_deleted = query(self, "includeDeleted") == "true"
    plans: Iterable[Plan] = backend_of(self).list_backup_plans(include_deleted=include_deleted)
    items = [p.to_list_dict() for p in sorted(plans, key=lambda p: p.backup_plan_id)]
    return page_body(self, "BackupPlansList", items, "BackupPlanId")


def _plan_id_from_path(path: str) -> str:
    return unquote(path.split("/backup/plans/")[1].split("/")[0])


def list_backup_selections(self: BackupResponse) -> str:
    plan_id = _plan_id_from_path(self.path)
    backend = backend_of(self)
    backend.get_backup_plan(plan_id, None)  # raises ResourceNotFoundException like AWS
    selections = sorted(
        (s for s in state_of(backend).selections.values() if s.plan_id == plan_id),
        key=lambda s: s.selection_id,
    )
    items = [
        {
            "SelectionId": s.selection_id,
            "SelectionName": s.name,
            "BackupPlanId": s.plan_id,
            "CreationDate": epoch(s.created),
            "IamRoleArn": s.iam_role_arn,
        }
        for s in selections
    ]
    return page_body(self, "BackupSelectionsList", items, "SelectionId")


def get_backup_selection(self: BackupResponse) -> str:
    plan_id = _plan_id_from_path(self.path)
    selection_id = unquote(self.path.rstrip("/").rsplit("/", 1)[-1])
    selection = state_of(backend_of(self)).selections.get(selection_id)
    if selection is None or selection.plan_id != plan_id:
        raise ResourceNotFoundException(msg=f"Backup selection {selection_id} not found")
    document: dict[str, Any] = {
        "SelectionName": selection.name,
        "IamRoleArn": selection.iam_role_arn,
        "Resources": list(selection.resources),
    }
    if selection.not_resources:
        document["NotResources"] = list(selection.not_resources)
    return json.dumps(
        {
            "BackupSelection": document,
            "SelectionId": selection.selection_id,
            "BackupPlanId": selection.plan_id,
            "CreationDate": epoch(selection.created),
        }
    )


def list_restore_testing_plans(self: BackupResponse) -> str:
    plans = sorted(state_of(backend_of(self)).restore_testing_plans.values(), key=lambda p: p.name)
    items = [
        {
            "CreationTime": epoch(p.created),
            "RestoreTestingPlanArn": p.arn,
            "RestoreTestingPlanName": p.name,
            "ScheduleExpression": p.schedule,
        }
        for p in plans
    ]
    return page_body(
        self,
        "RestoreTestingPlans",
        items,
        "RestoreTestingPlanName",
        size_param="MaxResults",
        cursor_param="NextToken",
    )
