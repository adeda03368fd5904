"""Simulated AWS for drwatch: moto in server mode, extended in-tree, with fault injection.

The same sandbox serves the demo, the tests and the benchmarks:

- `server.Sandbox` runs moto over real HTTP on loopback behind the fault middleware;
- `faults` decides which requests fail or slow down, steerable over HTTP from other processes;
- `moto_extensions` fills the gaps where moto's RDS model differs from AWS;
- `fleet` plans a deterministic estate, `seed` seeds it (RDS through `rds_seed`, the other
  services through their `*_fleet` modules);
- `kafka_brokers` starts real Kafka-protocol brokers for the MirrorMaker 2 tests and benchmark;
- `validation` makes botocore's own models judge every response the sandbox sends.

Nothing here runs at import time: moto patches are installed by `Sandbox.start`.
"""
