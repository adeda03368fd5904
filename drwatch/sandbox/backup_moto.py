"""AWS Backup behaviour moto 5.2 lacks, added to moto in-process for the sandbox.

moto's backup backend knows vaults (with lock), plans and report plans, and lists them in one
page whatever MaxResults says. AWS Backup's reads that drwatch needs and moto does not have:

- ListBackupJobs, ListCopyJobs, ListRestoreJobs (with the ByCreated*/ByComplete* windows),
  Describe{Backup,Copy,Restore}Job, and StartBackupJob (20 simulated minutes, then a point);
- ListBackupJobSummaries (counts by state, resource type and message category);
- ListRecoveryPointsByBackupVault and ListProtectedResources;
- ListBackupSelections / GetBackupSelection and ListRestoreTestingPlans;
- pagination (MaxResults 1..1000, NextToken) on every list, vaults and plans included;
- vault key type, vault type and state in ListBackupVaults.

Jobs move through their states over simulated time: each sandbox record carries its planned
creation and completion times and final state, and every list call renders it as it is at
the backend's simulated clock (`BackupSandboxState.now`; wall clock when unset). A job is
invisible before its creation, RUNNING until its completion, then in its final state; a
recovery point appears when its job completes and disappears when its lifecycle deletes it.
The fleet writes its history in-process (thousands of jobs with planned times); a job
started through StartBackupJob runs for 20 simulated minutes, then completes with a point.
"""

from __future__ import annotations

from collections.abc import Callable

import moto.backup.urls
from moto.backup.responses import BackupResponse

from drwatch.sandbox.backup_jobs_moto import (
    describe_backup_job,
    describe_copy_job,
    describe_restore_job,
    list_backup_job_summaries,
    list_backup_jobs,
    list_copy_jobs,
    list_restore_jobs,
    start_backup_job,
)
from drwatch.sandbox.backup_vaults_moto import (
    get_backup_selection,
    list_backup_plans,
    list_backup_selections,
    list_backup_vaults,
    list_protected_resources,
    list_recovery_points_by_backup_vault,
    list_restore_testing_plans,
)

INSTALLED_MARKER = "_drwatch_backup_extensions_installed"

# rest-json routes moto's backup module lacks, spelled with the trailing slash of botocore's
# requestUri. moto resolves the operation itself from botocore's model, so a route only has
# to reach BackupResponse.dispatch.
EXTRA_URL_PATHS = (
    "{0}/backup-jobs/?$",
    "{0}/backup-jobs/(?P<job>[^/]+)$",
    "{0}/copy-jobs/$",
    "{0}/copy-jobs/(?P<job>[^/]+)$",
    "{0}/restore-jobs/$",
    "{0}/restore-jobs/(?P<job>[^/]+)$",
    "{0}/audit/backup-job-summaries$",
    "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/$",
    "{0}/resources/$",
    "{0}/restore-testing/plans$",
)


# --- installation ------------------------------------------------------------------------


def install_backup_extensions() -> None:
    """Add the routes and handlers (idempotent; before the first backup request)."""
    if getattr(BackupResponse, INSTALLED_MARKER, False):
        return
    for path in EXTRA_URL_PATHS:
        moto.backup.urls.url_paths[path] = BackupResponse.dispatch
    handlers: dict[str, Callable[[BackupResponse], str]] = {
        "list_backup_jobs": list_backup_jobs,
        "describe_backup_job": describe_backup_job,
        "describe_copy_job": describe_copy_job,
        "describe_restore_job": describe_restore_job,
        "start_backup_job": start_backup_job,
        "list_copy_jobs": list_copy_jobs,
        "list_restore_jobs": list_restore_jobs,
        "list_backup_job_summaries": list_backup_job_summaries,
        "list_recovery_points_by_backup_vault": list_recovery_points_by_backup_vault,
        "list_protected_resources": list_protected_resources,
        "list_backup_selections": list_backup_selections,
        "get_backup_selection": get_backup_selection,
        "list_restore_testing_plans": list_restore_testing_plans,
        "list_backup_vaults": list_backup_vaults,
        "list_backup_plans": list_backup_plans,
    }
    # moto dispatches on method names found on the class, so adding one adds the action.
    for name, handler in handlers.items():
        setattr(BackupResponse, name, handler)
    setattr(BackupResponse, INSTALLED_MARKER, True)
