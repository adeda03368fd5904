"""The compliance PDF for a known fleet: text (pypdf), pages (pdftoppm), PDF/A-3u, companion.

The fleet and its history are the constructed ones of tests/test_controls.py, whose figures
are worked out there; here they must come out of the PDF the auditor reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdf
import pytest
from click.testing import CliRunner

from drwatch.cli.main import cli
from drwatch.config import parse_config
from drwatch.core.controls import ControlParameters
from drwatch.history.compact import compact
from drwatch.history.read import write_json
from drwatch.history.store import HistoryStore, open_reader
from drwatch.reports.catalogue import CONTROLS_BY_ID, Status, load_framework
from drwatch.reports.compliance import (
    TEMPLATE,
    build_context,
    companion,
    exception_rows,
    group_exceptions,
)
from drwatch.reports.evaluate import evaluate
from drwatch.reports.evidence import ControlResult, Finding, Period
from drwatch.reports.render import (
    TEMPLATES_DIR,
    Attachment,
    RenderError,
    format_duration,
    format_percent,
    render_html,
    render_pdf,
)
from tests.test_controls import END, HOSTILE, POLICIES, START, build_history

GENERATED = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_history(tmp_path_factory.mktemp("report") / "history.db")


@pytest.fixture(scope="module")
def context(history: Path) -> dict[str, Any]:
    return build_context(
        open_reader(history),
        Period(START, END, "2026-10-01 to 2026-10-03"),
        load_framework("soc2"),
        POLICIES,
        generated_at=GENERATED,
        version="9.9.9",
    )


@pytest.fixture(scope="module")
def pdf(context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pdf") / "soc2.pdf"
    data = json.dumps(companion(context)).encode()
    render_pdf(TEMPLATE, context, out, [Attachment("soc2.json", data, "companion")])
    return out


def pdf_text(path: Path) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(path).pages]


def flat(text: str) -> str:
    """Text with line breaks as spaces: table cells wrap wherever the column ends."""
    return " ".join(text.split())


def test_pdf_shows_statuses_and_figures_of_the_known_fleet(pdf: Path) -> None:
    text = flat(" ".join(pdf_text(pdf)))
    assert "SOC 2 (Trust Services Criteria 2017, points of focus revised 2022)" in text
    assert "2026-10-01 00:00 UTC to 2026-10-03 00:00 UTC" in text
    assert "6 resources in 1 accounts" in text
    assert "1 created and 1 deleted during the period" in text
    # DRW-02 facts as worked out in test_controls.
    assert "worst recovery point age 2 d 1 h on 2026-10-02 against 15 min target" in text
    # The polling outage is DRW-14's only: no "3 h 7 min" RPO breach for "gapped" (the
    # point moved while nothing watched; see test_controls).
    assert "3 h 7 min" not in text
    assert "successful polls covered 93.7% of the period" in text
    assert "rds 111111111111 us-east-1 2026-10-02 10:00 UTC 2026-10-02 13:00 UTC 3 h" in text
    # Control matrix counts for DRW-02: 4 pass, 2 fail (stale, tiered).
    assert "4 / 2 / 0 / 0" in text
    # The drill is listed with targets and measurements.
    assert "Q4-standard database_failure standard" in text
    assert "40 min / 1 h" in text
    # ...with its lessons (escaped markup included).
    assert "Issues found: replica promotion needed a manual <approval>." in text
    assert "Follow-ups: automate the promotion." in text
    for status in ("pass", "fail", "insufficient evidence"):
        assert status in text


def test_pdf_has_cover_facts_running_headers_and_page_numbers(
    pdf: Path, context: dict[str, Any]
) -> None:
    pages = pdf_text(pdf)
    count = len(pages)
    assert count >= 5
    cover = flat(pages[0])
    assert context["document"]["report_id"] in cover
    assert f"sha256 {context['chain_head']['row_hash']}" in cover
    assert "2026-11-02 08:30 UTC" in cover
    assert "drwatch 9.9.9" in cover
    for number, page in enumerate(pages[1:], start=2):
        assert f"Page {number} of {count}" in page
        assert "SOC 2 backup and DR compliance" in page


def test_pdf_is_pdf_a_3u_with_the_json_companion_attached(
    pdf: Path, context: dict[str, Any]
) -> None:
    reader = pypdf.PdfReader(pdf)
    xmp = reader.xmp_metadata
    assert xmp is not None
    rdf = xmp.rdf_root.toxml()
    assert 'pdfaid:part="3"' in rdf
    assert 'pdfaid:conformance="U"' in rdf
    attached = json.loads(reader.attachments["soc2.json"][0])
    assert attached["schema"] == "drwatch.compliance-report/v1"
    assert attached["report_id"] == context["document"]["report_id"]
    # Every finding of every framework control, with its facts.
    assert len(attached["findings"]) == len(context["findings"])
    stale = [
        f
        for f in attached["findings"]
        if f["control_id"] == "DRW-02" and f["subject_key"].endswith('"stale"]')
    ]
    assert stale[0]["status"] == "fail"
    assert stale[0]["first_seen"] == "2026-10-01T00:00:00+00:00"


def test_pages_render_and_are_not_blank(pdf: Path, tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm is required: make system-deps installs it (poppler-utils)"
    subprocess.run([pdftoppm, "-gray", "-r", "20", str(pdf), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.pgm"))
    assert len(images) == len(pypdf.PdfReader(pdf).pages)
    for image in images:
        width, height, pixels = read_pgm(image.read_bytes())
        dark = sum(1 for value in pixels if value < 160)
        assert dark > width * height * 0.002, f"{image.name} is blank"


def read_pgm(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and pixels of a binary PGM (P5) as pdftoppm -gray writes it."""
    fields: list[bytes] = []
    stream = io.BytesIO(data)
    while len(fields) < 4:
        line = stream.readline()
        if not line.startswith(b"#"):
            fields.extend(line.split())
    assert fields[0] == b"P5"
    width, height = int(fields[1]), int(fields[2])
    return width, height, stream.read(width * height)


def test_hostile_names_are_escaped(context: dict[str, Any], pdf: Path) -> None:
    html = render_html(TEMPLATE, context)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;amp;" in html
    # The reader sees the name as text, exactly as AWS holds it.
    assert HOSTILE in flat(" ".join(pdf_text(pdf)))


def test_no_drills_in_the_period_is_said_plainly(history: Path, tmp_path: Path) -> None:
    day_two = START + timedelta(days=1)
    context = build_context(
        open_reader(history),
        Period(day_two, END, "2026-10-02"),
        load_framework("gdpr"),
        POLICIES,
        generated_at=GENERATED,
        version="9.9.9",
    )
    html = " ".join(render_html(TEMPLATE, context).split())
    assert "No DR drills are recorded in this period." in html
    assert context["drills"] == []
    # The clause without evidence drwatch collects is not applicable, with its reason.
    pci = build_context(
        open_reader(history),
        Period(day_two, END, "2026-10-02"),
        load_framework("pci-dss"),
        POLICIES,
        generated_at=GENERATED,
        version="9.9.9",
    )
    audit_logs = next(c for c in pci["clauses"] if c["id"] == "10.5.1")
    assert audit_logs["status"] == "not_applicable"
    assert "does not collect audit-log retention" in audit_logs["reasons"][0]


def test_looser_threshold_fails_the_clause_with_its_reason(history: Path) -> None:
    loose = POLICIES.__class__(
        rpo=POLICIES.rpo,
        rto_seconds=POLICIES.rto_seconds,
        retention=POLICIES.retention,
        parameters=ControlParameters(drill_cadence_days=400),
    )
    context = build_context(
        open_reader(history),
        Period(START, END, "two days"),
        load_framework("gdpr"),
        loose,
        generated_at=GENERATED,
        version="9.9.9",
    )
    testing = next(c for c in context["clauses"] if c["id"] == "Art. 32(1)(d)")
    assert testing["status"] == "fail"
    assert testing["reasons"] == [
        "drill_cadence_days is configured as 400, above the framework maximum 366: testing "
        "at least once a year is the least that reads as regular"
    ]


def test_a_config_without_controls_applies_the_control_defaults() -> None:
    config = parse_config({"accounts": [{"id": "111111111111"}], "regions": ["eu-west-1"]})
    assert config.controls == ControlParameters()
    tuned = parse_config(
        {
            "accounts": [{"id": "111111111111"}],
            "regions": ["eu-west-1"],
            "controls": {"drill_cadence": "30d", "restore_cadence": {"database": "1d"}},
        }
    )
    assert tuned.controls.drill_cadence_days == 30.0
    assert tuned.controls.restore_cadence_days == {"database": 1.0}


def test_rendering_refuses_network_and_files_outside_templates(tmp_path: Path) -> None:
    for name in ("base.html.j2", "report.css"):
        shutil.copy(TEMPLATES_DIR / name, tmp_path / name)
    secret = tmp_path.parent / "outside.txt"
    secret.write_text("not for reports")
    document = {
        "title": "t",
        "report_id": "r",
        "generated_at": GENERATED,
        "version": "1",
    }
    for source in ("http://127.0.0.1:9/logo.png", secret.as_uri()):
        (tmp_path / "t.html.j2").write_text(
            '{% extends "base.html.j2" %}{% block content %}'
            f'<img src="{source}">{{% endblock %}}'
        )
        with pytest.raises(RenderError, match="refused to fetch"):
            render_pdf(
                "t.html.j2", {"document": document}, tmp_path / "t.pdf", templates_dir=tmp_path
            )


def test_long_tables_repeat_their_header_on_every_page(tmp_path: Path) -> None:
    for name in ("base.html.j2", "report.css"):
        shutil.copy(TEMPLATES_DIR / name, tmp_path / name)
    (tmp_path / "long.html.j2").write_text(
        '{% extends "base.html.j2" %}{% block content %}<h1>Rows</h1><table>'
        "<thead><tr><th>HEADERCELL</th></tr></thead><tbody>"
        "{% for i in range(150) %}<tr><td>row {{ i }}</td></tr>{% endfor %}"
        "</tbody></table>{% endblock %}"
    )
    document = {"title": "t", "report_id": "r", "generated_at": GENERATED, "version": "1"}
    result = render_pdf(
        "long.html.j2", {"document": document}, tmp_path / "long.pdf", templates_dir=tmp_path
    )
    pages = pdf_text(result.path)[1:]  # after the (empty) cover page
    assert result.pages == len(pages) + 1 >= 3
    assert all("HEADERCELL" in page for page in pages)
    assert "row 149" in pages[-1]


def test_figures_read_as_people_write_them() -> None:
    assert format_duration(11532) == "3 h 12 min"
    assert format_duration(176400) == "2 d 1 h"
    assert format_duration(45) == "45 s"
    assert format_percent(0.973) == "97.3%"
    assert format_percent(0.99996) == "99.9%"  # never rounds up to a pass
    assert format_percent(0.29) == "29.0%"


def test_cli_writes_pdf_and_json_with_progress_on_stderr(history: Path, tmp_path: Path) -> None:
    out, companion_path = tmp_path / "r.pdf", tmp_path / "r.json"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "--framework",
            "gdpr",
            "--from",
            "2026-10-01",
            "--until",
            "2026-10-03",
            "--db",
            str(history),
            "--out",
            str(out),
            "--json",
            str(companion_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(out), str(companion_path)]
    assert "evaluating" in result.stderr
    assert "rendering" in result.stderr
    assert "pdf: Step 6 - Creating PDF" in result.stderr  # WeasyPrint's steps, forwarded
    assert out.read_bytes().startswith(b"%PDF-")
    assert json.loads(companion_path.read_text())["framework"]["key"] == "gdpr"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--period", "2026-13"], "is not a month like 2026-10"),
        (["--period", "2020-01"], "no history before the end of 2020-01"),
        (["--period", "2026-10", "--from", "2026-10-01"], "not both"),
        (["--from", "2026-10-03", "--until", "2026-10-01"], "must be after --from"),
    ],
)
def test_cli_errors_are_clear_and_exit_2(
    history: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "--framework",
            "soc2",
            "--db",
            str(history),
            "--out",
            str(tmp_path / "x.pdf"),
            *arguments,
        ],
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.pdf").exists()


def test_cli_on_an_empty_history_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    HistoryStore(empty).close()
    result = CliRunner().invoke(
        cli, ["report", "--framework", "soc2", "--period", "2026-10", "--db", str(empty)]
    )
    assert result.exit_code == 2
    assert "no history before the end of 2026-10" in result.output


def test_evidence_set_digests_can_be_recomputed_from_a_history_export(
    history: Path, context: dict[str, Any]
) -> None:
    exported = io.StringIO()
    write_json(open_reader(history), START, END, exported)
    by_table: dict[str, list[str]] = {}
    for row in json.loads(exported.getvalue())["rows"]:
        by_table.setdefault(row["table"], []).append(row["row_hash"])
    expected = {
        table: hashlib.sha256("\n".join(hashes).encode()).hexdigest()
        for table, hashes in by_table.items()
    }
    assert {e["name"]: e["sha256"] for e in context["evidence_sets"]} == expected
    assert {"unit_runs", "states", "job_events", "drills"} <= set(expected)


def test_cli_applies_the_configs_thresholds_and_classes(history: Path, tmp_path: Path) -> None:
    config = tmp_path / "drwatch.yml"
    config.write_text(
        'accounts: [{id: "111111111111"}]\n'
        "regions: [eu-west-1]\n"
        "controls: {drill_cadence: 400d}\n"
        "retention:\n"
        "  classes: {default: {min_days: 1, max_days: 20}}\n"
    )
    companion_path = tmp_path / "gdpr.json"
    result = CliRunner().invoke(
        cli,
        [
            "report", "--framework", "gdpr", "--from", "2026-10-01", "--until", "2026-10-03",
            "--config", str(config), "--db", str(history), "--out", str(tmp_path / "gdpr.pdf"),
            "--json", str(companion_path),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(companion_path.read_text())
    clauses = {c["id"]: c for c in data["clauses"]}
    assert clauses["Art. 32(1)(d)"]["status"] == "fail"
    assert "drill_cadence_days is configured as 400" in clauses["Art. 32(1)(d)"]["reasons"][0]
    # Every resource is in the default class now (20-day maximum): only "steady" keeps
    # points longer (35 days); the others keep 7 or 3.
    over = {f["subject_key"] for f in data["findings"]
            if f["control_id"] == "DRW-04" and f["status"] == "fail"}  # fmt: skip
    assert over == {'["111111111111","eu-west-1","rds","db_instance","steady"]'}


def test_pdf_lists_exceptions_by_subject_and_common_ones_once(
    context: dict[str, Any], pdf: Path
) -> None:
    groups = context["exception_groups"]
    # Nothing dropped: every exception is in a common row or in its subject's rows.
    shown = sum(g["count"] for g in groups["common"]) + sum(
        len(s["exceptions"]) for s in groups["subjects"]
    )
    # 30: "gapped" no longer fails DRW-02 for its polling outage (DRW-14's alone).
    assert shown == len(context["exceptions"]) == 30
    text = flat(" ".join(pdf_text(pdf)))
    # The stale resource's exceptions sit together under its name, each with its facts.
    stale = next(s for s in groups["subjects"] if HOSTILE in s["subject"])
    assert [e["control_id"] for e in stale["exceptions"]] == ["DRW-02", "DRW-05", "DRW-09"]
    assert "unencrypted points: pitr" in text
    # A fleet-wide gap is one row; the only resource it spares is named instead of the five.
    restore = next(g for g in groups["common"] if g["control_id"] == "DRW-11")
    assert (restore["count"], restore["population"], restore["inverted"]) == (5, 6, True)
    assert restore["places"] == [
        {"place": "111111111111 eu-west-1 rds/db_instance", "subjects": ["steady"]}
    ]
    assert "Every subject of the control except this one: 111111111111 eu-west-1" in text
    # Passing subjects get no exception row: "steady" passes all but the common gaps.
    assert all("steady" not in s["subject"] for s in groups["subjects"])
    # The per-resource status matrix (a row per resource) is gone; the counts remain.
    assert "Resource status" not in text


def test_exception_groups_name_the_smaller_side_exactly() -> None:
    control = CONTROLS_BY_ID["DRW-08"]
    findings = tuple(
        Finding("DRW-08", f"s{i}", f"subject {i}", status, facts)
        for i, (status, facts) in enumerate(
            [(Status.FAIL, "no copy")] * 4
            + [(Status.FAIL, "copy too old")] * 2
            + [(Status.PASS, "copies in 2")] * 4
        )
    )
    results = [ControlResult(control, findings)]
    groups = group_exceptions(exception_rows(results), (), results)
    # 4 alike of 10: the four are named; the 2 with other facts stay per subject.
    assert groups["common"] == [
        {
            "control_id": "DRW-08",
            "status": "fail",
            "facts": "no copy",
            "count": 4,
            "population": 10,
            "states": {"resolved": 4},
            "first_seen": None,
            "inverted": False,
            "places": [{"place": "", "subjects": [f"subject {i}" for i in range(4)]}],
        }
    ]
    assert [(s["subject"], len(s["exceptions"])) for s in groups["subjects"]] == [
        ("subject 4", 1),
        ("subject 5", 1),
    ]
    # 8 alike of 10: the two spared subjects are named instead.
    alike = tuple(replace(f, facts="no copy", status=Status.FAIL) for f in findings[:8])
    results = [ControlResult(control, alike + findings[8:])]
    common = group_exceptions(exception_rows(results), (), results)["common"][0]
    assert (common["count"], common["inverted"]) == (8, True)
    assert common["places"] == [{"place": "", "subjects": ["subject 8", "subject 9"]}]


@pytest.mark.parametrize("compacted", [False, True])
def test_evaluating_resources_in_batches_changes_nothing(
    history: Path, tmp_path: Path, compacted: bool
) -> None:
    path = history
    if compacted:  # rollups for the whole period: the batches then come from rollups only
        path = tmp_path / "compacted.db"
        path.write_bytes(history.read_bytes())
        with HistoryStore(path) as store:
            compact(
                store.db,
                now=datetime(2026, 11, 8, tzinfo=UTC),
                raw_days=35,
                retention_days=2557,
                policy=POLICIES.rpo,
            )
    period = Period(START, END, "two days")
    whole = evaluate(open_reader(path), period, POLICIES)
    one_by_one = evaluate(open_reader(path), period, POLICIES, resource_batch=1)
    assert len(whole.resources) == 6
    assert one_by_one.results == whole.results
    assert one_by_one.resources == whole.resources
    assert one_by_one.daily_resources == whole.daily_resources
    assert one_by_one.daily_jobs == whole.daily_jobs
    # The evidence kept after evaluation holds figures, not a month of raw intervals.
    assert all(not r.recovery and not r.replication for r in whole.resources)
