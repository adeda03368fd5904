"""Which resource an AWS Backup ARN names, in drwatch's identity (shared by points and jobs)."""

from __future__ import annotations

import re

from drwatch.core.model import ResourceRef
from drwatch.exporter.collectors.base import ObserveContext

# Resource types whose ARN names them differently from drwatch's other collectors.
RESOURCE_TYPE_ALIASES = {("rds", "db"): "db_instance", ("rds", "cluster"): "db_cluster"}


def resource_ref(arn: str, ctx: ObserveContext) -> ResourceRef:
    """drwatch's identity of the resource an ARN names (same labels as its own collector).

    `arn:aws:rds:eu-west-1:1111:db:orders` -> rds/db_instance/orders;
    `arn:aws:dynamodb:eu-west-1:1111:table/users` -> dynamodb/table/users. S3 ARNs carry no
    account or region: the unit's are used.
    """
    parts = arn.split(":", 5)
    service, region, account = parts[2], parts[3] or ctx.region, parts[4] or ctx.account_id
    resource = parts[5]
    if "/" in resource:
        raw_type, identifier = resource.split("/", 1)
    elif ":" in resource:
        raw_type, identifier = resource.split(":", 1)
    else:
        raw_type, identifier = service, resource
    resource_type = RESOURCE_TYPE_ALIASES.get(
        (service, raw_type), re.sub(r"[^a-z0-9]+", "_", raw_type.lower())
    )
    return ResourceRef(account, region, service, resource_type, identifier)


def is_local(ref: ResourceRef, ctx: ObserveContext) -> bool:
    return (ref.account_id, ref.region) == (ctx.account_id, ctx.region)
