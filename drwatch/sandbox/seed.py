"""Seeding the whole simulated estate: RDS first, then every other service's fleet.

`seed_fleet(sandbox, plan)` makes the sandbox hold the estate an RDS fleet plan implies; the
other services plan their part from it (`spec_for`, `stores_spec_for`) or from its spec.
"""

from __future__ import annotations

from drwatch.sandbox.backup_fleet import plan_backup_fleet, seed_backup_fleet, spec_for
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.kafka_fleet import plan_for_fleet, seed_kafka_fleet
from drwatch.sandbox.rds_seed import seed_databases
from drwatch.sandbox.s3_fleet import plan_s3_fleet, seed_s3_fleet
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.stores_fleet import plan_stores, seed_stores, stores_spec_for


def seed_fleet(sandbox: Sandbox, plan: FleetPlan) -> None:
    """Make the sandbox hold exactly the databases and snapshots of `plan`, then the estate of
    every other service planned from it."""
    seed_databases(sandbox, plan)
    # AWS Backup protects every other database of each unit, plus a few DynamoDB tables.
    seed_backup_fleet(sandbox, plan_backup_fleet(spec_for(plan)))
    # DynamoDB tables (those AWS Backup protects among them) and EBS volumes.
    seed_stores(sandbox, plan_stores(stores_spec_for(plan)))
    # Replicated buckets with CloudWatch lag, and backup-file prefixes (s3_fleet).
    seed_s3_fleet(sandbox, plan_s3_fleet(plan.spec.now, plan.spec.accounts, plan.spec.regions))
    # MSK Replicators (one lagging, one failed) with CloudWatch figures, MSK Connect connectors.
    seed_kafka_fleet(sandbox, plan_for_fleet(plan.spec.now, plan.spec.accounts, plan.spec.regions))
