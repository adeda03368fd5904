"""`drwatch demo`: a fresh sandbox seeded with a mixed fleet, served by the exporter.

In its own module because moto's state is per process: the demo resets it.
"""

from __future__ import annotations

import urllib.request

from drwatch.exporter.service import Exporter
from drwatch.sandbox.demo import run_demo
from tests.conftest import NOW


def test_demo_serves_metrics_for_the_seeded_fleet() -> None:
    scraped: list[str] = []

    def scrape(exporter: Exporter) -> None:
        exporter.poller.run_round()
        server = exporter.serve("127.0.0.1", 0)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as r:
                scraped.append(r.read().decode())
        finally:
            server.stop()
            exporter.close()

    run_demo(instances=6, clusters=2, seed=7, interval=60, now=NOW, run=scrape)
    (text,) = scraped
    rds = [line for line in text.splitlines() if line.startswith("drwatch_resource_info{")]
    assert sum('service="rds"' in line for line in rds) == 8
    assert "drwatch_recovery_mechanism_enabled{" in text
    assert 'mechanism="pitr"' in text
