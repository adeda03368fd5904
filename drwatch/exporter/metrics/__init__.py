"""Every metric family drwatch serves, one module per source; import from the module.

- `view`: MetricsView, the /metrics body (observed part cached and gzipped, health live),
  and ObservedMetrics, which renders one poller snapshot in a fixed family order.
- `recovery`: resources, tier targets, recovery states per mechanism, copies, replication.
- `retention`: data-class retention policy and each resource's class.
- `backup`, `s3`, `kafka`: each service's own families; `storage`: backup storage and cost.
- `health`: build info, unit polls, AWS API counters, reload/discovery/shard scope.
- `drill`: drills and restore tests, read from the history rather than polled.
- `common`: the shared label sets, the CACHED note and value helpers.
"""
