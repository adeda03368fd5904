"""The landing page at /: failing units first, a summary line, readable with 200 units.

Rendered by a real headless Chromium (Debian's chromium-headless-shell, installed by
scripts/system-deps) against a real HttpServer; `pytest --update-golden` rewrites the
screenshot in docs/landing.png.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import urllib.request
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drwatch.config import TierConfig
from drwatch.core.model import Observations, Resource, ResourceRef, UnitKey, UnitRun
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.poller import UnitSchedule, UnitStatus
from drwatch.exporter.server import HEALTH_ORDER, ExporterApp, HttpServer, landing_summary

DOCS_PICTURE = Path(__file__).parent.parent / "docs" / "landing.png"
WIDTH, HEIGHT = 1280, 2000
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
COLLECTORS = ("rds", "backup", "elasticache", "s3_replication", "dynamodb", "ebs", "kafka")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2")


def unit_status(index: int) -> UnitStatus:
    """One of 200 varied units: every 11th failing, every 5th partial, every 23rd pending."""
    key = UnitKey(
        COLLECTORS[index % len(COLLECTORS)],
        f"{100000000000 + (index // 9) * 111111:012d}",
        REGIONS[index % len(REGIONS)],
    )
    schedule = UnitSchedule(key, interval_seconds=300, stale_after_seconds=900, timeout_seconds=60)
    if index % 23 == 5:
        return UnitStatus(schedule, None, None, None, runs=0, skipped=0, errors_by_code={})
    started = NOW - timedelta(seconds=index * 7)
    failing = index % 11 == 3
    partial = not failing and index % 5 == 2
    run = UnitRun(
        key,
        started,
        0.2 + (index % 13) / 4,
        success=not failing,
        error_code="AccessDenied" if failing and index % 2 else ("Throttling" if failing else ""),
        records_skipped={"missing_field": 1 + index % 3} if partial and index % 2 else {},
        features={"serverless": "failed", "global_datastore": "unavailable"} if partial else {},
    )
    refs = [
        ResourceRef(key.account_id, key.region, key.collector, "thing", f"r-{index}-{n}")
        for n in range(index % 6)
    ]
    resources = tuple(Resource(r, r.resource_id, "standard") for r in refs)
    observations = Observations(resources=resources)
    return UnitStatus(
        schedule,
        run,
        None if failing and index % 2 else started,
        None if failing else observations,
        runs=1 + index % 5,
        skipped=0,
        errors_by_code={run.error_code: 1} if failing else {},
        records_skipped=dict(run.records_skipped),
    )


STATUSES: Sequence[UnitStatus] = tuple(unit_status(i) for i in range(200))


def png_size_and_rows(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the (filtered) scanlines of an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    assert data[12:16] == b"IHDR"
    assert (depth, interlace) == (8, 0)
    assert colour in (2, 6), colour  # RGB or RGBA
    idat, offset = b"", 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            idat += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * (3 if colour == 2 else 4)
    assert len(raw) == stride * height
    return width, height, [raw[i : i + stride] for i in range(0, len(raw), stride)]


def screenshot(url: str, out: Path, profile: Path) -> None:
    binary = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    assert binary, "chromium-headless-shell is required: scripts/system-deps installs it"
    subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            f"--window-size={WIDTH},{HEIGHT}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )


def test_summary_orders_failing_then_partial_pending_ok_each_by_unit() -> None:
    summary = landing_summary(reversed(STATUSES))
    assert [g.health for g in summary.groups] == list(HEALTH_ORDER)
    assert summary.units == 200 == sum(len(g.rows) for g in summary.groups)
    assert all(summary.count(h) for h in HEALTH_ORDER), [summary.count(h) for h in HEALTH_ORDER]
    for group in summary.groups:
        keys = [(r.collector, r.account_id, r.region) for r in group.rows]
        assert keys == sorted(keys)
        assert {r.health for r in group.rows} == {group.health}
    assert summary.resources == sum(
        len(s.observations.resources) for s in STATUSES if s.observations
    )


def test_landing_page_renders_200_units_in_headless_chromium(
    tmp_path: Path, update_golden: bool
) -> None:
    app = ExporterApp(
        MetricsView(lambda: STATUSES, ApiStats(), TierConfig()), lambda: True, lambda: STATUSES
    )
    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    url = f"http://127.0.0.1:{server.port}/"
    picture = tmp_path / "landing.png"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            page = response.read().decode()
        screenshot(url, picture, tmp_path / "profile")
    finally:
        server.stop()

    # Failing rows first, then partial, pending and ok: the HTML's order, not only the CSS's.
    healths = re.findall(r'<tr class="unit (\w+)">', page)
    assert len(healths) == 200
    assert healths == sorted(healths, key=HEALTH_ORDER.index)
    assert healths[0] == "failing"
    assert healths[-1] == "ok"
    summary = landing_summary(STATUSES)
    line = re.search(r'<p class="summary[^"]*" id="summary">(.*?)</p>', page, re.S)
    assert line, "no summary line"
    words = " ".join(re.sub(r"<[^>]+>", "", line.group(1)).split())
    assert words == (
        f"200 units: {summary.count('failing')} failing, {summary.count('partial')} partial, "
        f"{summary.count('pending')} pending, {summary.count('ok')} ok; "
        f"{summary.resources} resources served."
    )

    data = picture.read_bytes()
    width, height, rows = png_size_and_rows(data)
    assert (width, height) == (WIDTH, HEIGHT)
    # A blank or single-colour page repeats one scanline; text and table rows do not. The
    # lower half too: the 200-unit table fills the window rather than stopping short.
    assert len(set(rows)) > 600, len(set(rows))
    assert len(set(rows[HEIGHT // 2 :])) > 200, len(set(rows[HEIGHT // 2 :]))
    if update_golden:
        DOCS_PICTURE.write_bytes(data)
