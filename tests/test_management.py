"""The management review PDF: figures on the executive summary, charts, tables, escaping."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdf
import pytest
import yaml
from click.testing import CliRunner

from drwatch.cli.main import cli
from drwatch.cli.report import policies_from
from drwatch.config import parse_config
from drwatch.config.price_table import load_price_table
from drwatch.core.model import (
    Mechanism,
    Observations,
    RecoveryState,
    UnitKey,
    UnitResult,
    UnitRun,
    VaultState,
)
from drwatch.core.units import GIB
from drwatch.history.store import HistoryStore, open_reader
from drwatch.reports.cost import StorageDay
from drwatch.reports.management import (
    ManagementError,
    build_context,
    parse_month,
    retention_findings,
)
from drwatch.reports.render import render_html
from tests.test_cost import (
    DB1,
    DDB_COLD,
    DDB_WARM,
    EC2_WARM_CENTRAL,
    NOV_START,
    RDS_WARM,
    SEP_START,
    TABLE,
    TRANSFER,
    A,
    fleet,
)

NOW = datetime(2026, 11, 21, tzinfo=UTC)
HOSTILE = '<img src="https://example.invalid/x">'
CONFIG_YAML = f"""
accounts:
  - id: "{A}"
regions: [eu-west-1]
retention:
  classes:
    default: {{min_days: 14, max_days: 30}}
pricing:
  manual_snapshot_max_age: 90d
"""
CONFIG = parse_config(yaml.safe_load(CONFIG_YAML))
RETENTION = CONFIG.retention
# Hand-computed from the price table (tests/test_cost.py explains each term).
OCTOBER = (
    120 * RDS_WARM
    + 50 * EC2_WARM_CENTRAL
    + 20 * DDB_WARM
    + 10 * DDB_COLD
    + (15 * 30 + 16 * 40) / 31 * DDB_WARM
)
SEPTEMBER = 120 * RDS_WARM + 50 * EC2_WARM_CENTRAL + 20 * DDB_WARM + 10 * DDB_COLD + 30 * DDB_WARM


def usd(value: float) -> str:
    return f"${value:,.2f}"


@pytest.fixture(scope="module")
def history_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("management") / "history.db"
    hostile_unit = UnitKey("backup", A, "us-east-1")
    with HistoryStore(path) as store:
        day = SEP_START
        while day < NOV_START:
            for result in fleet(day):
                store.ingest(result)
            # A vault whose name is markup: it must print as text.
            vault = VaultState(A, "us-east-1", HOSTILE, "BACKUP_VAULT", "", False, warm_bytes=1)
            run = UnitRun(hostile_unit, day.replace(hour=12), 1.0, True)
            store.ingest(UnitResult(run, Observations(vault_states=(vault,))))
            day += timedelta(days=1)
    return path


@dataclass(frozen=True)
class Report:
    pdf: Path
    json: Path
    stdout: str


@pytest.fixture(scope="module")
def report(history_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """`drwatch report --framework management`, through the real CLI."""
    work = tmp_path_factory.mktemp("pdf")
    config = work / "drwatch.yml"
    config.write_text(CONFIG_YAML)
    pdf, companion = work / "management-2026-10.pdf", work / "management-2026-10.json"
    args = ["report", "--framework", "management", "--period", "2026-10",
            "--db", str(history_path), "--config", str(config),
            "--out", str(pdf), "--json", str(companion)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return Report(pdf, companion, result.stdout)


def page_texts(path: Path) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(path).pages]


def test_executive_summary_is_one_page_with_the_hand_computed_figures(
    report: Report,
) -> None:
    pages = page_texts(report.pdf)
    summary = pages[1]
    assert summary.startswith("Executive summary")
    assert usd(OCTOBER) in summary
    assert "+" + usd(OCTOBER - SEPTEMBER) in summary
    assert f"previous month {usd(SEPTEMBER)}" in summary
    assert usd(10 * TRANSFER) in summary  # 10 GiB newly copied to eu-central-1
    assert usd(120 * RDS_WARM) in summary  # largest service: rds
    # Removing the never-expiring manual snapshots saves their cost (20 GiB of RDS).
    assert usd(20 * RDS_WARM) in summary
    assert "upper bounds" in summary
    assert "Forecast, next month" in summary
    # The summary fits one page: the next section starts on the next page.
    assert pages[2].startswith("Storage and cost")


def test_sections_tables_and_forecast_are_labelled(report: Report) -> None:
    # Table cells wrap: compare with runs of whitespace made single spaces.
    text = " ".join(" ".join(page_texts(report.pdf)).split())
    for heading in ("Top 10", "Most expensive resources", "Forecast", "Retention outliers",
                    "Method and limitations", "By storage class", "AWS Backup vaults"):  # fmt: skip
        assert heading in text
    assert "Estimate: a least-squares straight line" in text
    assert "never expires" in text
    assert "old manual snapshot" in text
    # Upper bounds carry the mark in front of the figure.
    assert "≤" + usd(120 * RDS_WARM) in text
    assert len(pypdf.PdfReader(report.pdf).pages) >= 5


def test_retention_findings_against_the_data_classes(history_path: Path) -> None:
    db = open_reader(history_path)
    try:
        context = build_context(
            db,
            parse_month("2026-10"),
            load_price_table(CONFIG.pricing),
            manual_snapshot_max_age_days=90,
            policies=policies_from(CONFIG),
            now=NOW,
        )
    finally:
        db.close()
    # The fleet's states carry no configured retention: nothing to judge, nothing invented.
    assert context["retention_findings"] == []
    # The controls: db1's manual snapshots never expire and are older than the 30-day maximum.
    (control,) = context["retention_controls"]
    assert control["control_id"] == "DRW-04"
    assert "db1" in control["subject"]
    assert "never expire" in control["facts"]
    assert context["summary"]["over_retention"] == 1
    assert [row["kind"] for row in context["outliers"]] == ["never expires", "old manual snapshot"]
    assert context["summary"]["total_cost"] == pytest.approx(OCTOBER)
    services = {row["label"]: row["cost"] for row in context["breakdowns"]["service"]}
    assert services["ec2"] == pytest.approx(50 * EC2_WARM_CENTRAL)
    html = render_html("management.html.j2", context)
    assert HOSTILE not in html
    assert "&lt;img src=&#34;https://example.invalid/x&#34;&gt;" in html
    assert html.count("<svg") == 3


def test_json_companion_is_written_and_embedded(report: Report) -> None:
    data = json.loads(report.json.read_text())
    assert data["summary"]["total_cost"] == pytest.approx(OCTOBER)
    assert data["prices"]["as_of"] == "2026-11-21"
    attachments = pypdf.PdfReader(report.pdf).attachments
    assert report.pdf.with_suffix(".json").name in attachments
    assert str(report.pdf) in report.stdout


def test_pages_render_and_are_not_blank(report: Report, tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm (poppler-utils) is required: scripts/system-deps"
    subprocess.run(
        [pdftoppm, "-r", "20", "-gray", str(report.pdf), str(tmp_path / "p")], check=True
    )
    images = sorted(tmp_path.glob("p-*.pgm"))
    assert len(images) == len(pypdf.PdfReader(report.pdf).pages)
    for image in images:
        pixels = image.read_bytes().split(b"\n", 3)[3]  # P5 header: magic, size, max value
        dark = sum(1 for value in pixels if value < 128)
        assert dark > 50, f"{image.name} looks blank"


def test_bad_periods_are_refused(history_path: Path) -> None:
    with pytest.raises(ManagementError, match="expected a month"):
        parse_month("2026-13")
    db = open_reader(history_path)
    try:
        with pytest.raises(ManagementError, match="no storage"):
            build_context(
                db,
                parse_month("2025-01"),
                load_price_table(),
                manual_snapshot_max_age_days=90,
                policies=policies_from(CONFIG),
                now=NOW,
            )
    finally:
        db.close()


def test_over_and_under_retention_with_the_saving_beyond_the_maximum() -> None:
    short = RecoveryState(
        DB1, Mechanism.SNAPSHOT, A, "eu-west-1", True, point_count=7, size_bytes=10 * GIB,
        retention_min_days=7, retention_max_days=7,
    )  # fmt: skip
    long = RecoveryState(
        TABLE, Mechanism.AWS_BACKUP, A, "eu-west-1", True, point_count=60,
        size_bytes=60 * GIB, retention_min_days=60, retention_max_days=60,
    )  # fmt: skip
    day = StorageDay(int(NOV_START.timestamp()) - 86400, (short, long), ())
    findings = retention_findings(day, {}, RETENTION, load_price_table())
    by_kind = {f.finding: f for f in findings}
    assert (by_kind["under"].state, by_kind["under"].policy_days) == (short, 14)
    assert by_kind["over"].state == long
    # 30 of the 60 days kept are beyond the class maximum: half the cost.
    assert by_kind["over"].monthly_saving == pytest.approx(60 * DDB_WARM * 30 / 60)


def test_the_cli_refuses_a_period_that_is_not_a_month(history_path: Path) -> None:
    args = ["report", "--framework", "management", "--from", "2026-10-03", "--until",
            "2026-10-09", "--db", str(history_path)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "calendar month" in result.output
