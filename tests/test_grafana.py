"""Structural lint of the Grafana dashboards and provisioning files (no Grafana server here).

The queries themselves run against a real Prometheus in tests/test_prometheus_e2e.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
EXPECTED_UIDS = {"drwatch-dr-readiness", "drwatch-backup-jobs", "drwatch-exporter"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
METRIC = re.compile(r"drwatch[_:][a-z0-9_:]+")
# Variables every dashboard offers, and the labels their filters apply to.
REQUIRED_VARIABLES = {"datasource", "account_id", "region", "service"}
FILTERED_LABELS = ("account_id", "region", "tier", "collector")
# Grafana unit ids the dashboards may use (currencyUSD: estimated storage cost).
UNITS = {"s", "bytes", "percentunit", "dateTimeFromNow", "none", "reqps", "currencyUSD"}


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def dashboards() -> list[dict[str, Any]]:
    return [load(path) for path in dashboard_files()]


def query_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that queries, nested rows included; row panels only lay out."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in query_panels(dashboard) for t in p["targets"]]


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def documented_metrics() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    rules = yaml.safe_load((ROOT / "alerts" / "drwatch.rules.yml").read_text())
    recorded = {
        rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule
    }
    return set(METRIC.findall(text)) | recorded


def metric_labels() -> dict[str, set[str]]:
    """Labels of each metric family as docs/metrics.md documents them (for the filter check)."""
    return {
        "drwatch_resource_recovery_point_timestamp_seconds": {"account_id", "region", "tier"},
        "drwatch:resource_recovery_point_age_seconds": {"account_id", "region", "tier"},
        "drwatch_resource_info": {"account_id", "region", "tier"},
        "drwatch_rpo_target_seconds": {"tier"},
        "drwatch_rto_target_seconds": {"tier"},
        "drwatch_collector_success": {"account_id", "region", "collector"},
        "drwatch_collector_duration_seconds": {"account_id", "region", "collector"},
        "drwatch_collector_data_present": {"account_id", "region", "collector"},
        "drwatch_backup_jobs": {"account_id", "region"},
        "drwatch_backup_vault_locked": {"account_id", "region"},
        "drwatch_recovery_point_bytes": {"account_id", "region"},
        "drwatch_replication_latency_seconds": {"account_id", "region"},
    }


def test_there_are_exactly_the_three_dashboards() -> None:
    assert [p.name for p in dashboard_files()] == [
        "drwatch-backup-jobs.json",
        "drwatch-dr-readiness.json",
        "drwatch-exporter.json",
    ]


def test_uids_are_stable_and_unique() -> None:
    uids = [d["uid"] for d in dashboards()]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    assert len(set(uids)) == len(uids)


def test_alert_dashboard_urls_point_at_shipped_dashboards() -> None:
    text = (ROOT / "alerts" / "drwatch.rules.yml").read_text()
    linked = set(re.findall(r"/d/([a-z0-9-]+)", text))
    assert linked <= EXPECTED_UIDS


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_header(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["id"] is None
    assert dashboard["title"].startswith("drwatch / ")
    assert dashboard["schemaVersion"] == 39
    assert "drwatch" in dashboard["tags"]


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_panels_query_through_the_datasource_variable(path: Path) -> None:
    dashboard = load(path)
    ids = [p["id"] for p in dashboard["panels"]] + [
        p["id"] for row in dashboard["panels"] for p in row.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    panels = list(query_panels(dashboard))
    assert panels
    for panel in panels:
        where = f"{path.name}: {panel['title']!r}"
        assert panel["title"], where
        assert panel["type"] in {"timeseries", "stat", "table", "bargauge"}, where
        assert panel["datasource"] == DATASOURCE, where
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, where
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, where
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["expr"].strip(), where
            assert target["datasource"] == DATASOURCE, where
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_panels_do_not_overlap(path: Path) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in load(path)["panels"]:
        pos = panel["gridPos"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & area, f"{path.name}: {panel['title']!r} overlaps"
        cells |= area


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_no_hard_coded_datasource_uid(path: Path) -> None:
    for where, node in walk(load(path)):
        if isinstance(node, dict) and "uid" in node and where != "$":
            assert node["uid"] == "${datasource}", f"{path.name} {where}: {node['uid']}"
        if where.endswith(".datasource"):
            assert node == DATASOURCE, f"{path.name} {where}: {node}"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_template_variables(path: Path) -> None:
    dashboard = load(path)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    required = REQUIRED_VARIABLES | ({"tier"} if path.stem == "drwatch-dr-readiness" else set())
    assert required <= set(variables)
    datasource = variables["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    for name, variable in variables.items():
        if name == "datasource":
            continue
        assert variable["type"] == "query", name
        assert variable["datasource"] == DATASOURCE, name
        assert (variable["includeAll"], variable["multi"], variable["allValue"]) == (
            True,
            True,
            ".*",
        ), name
        query = variable["query"]["query"]
        assert re.fullmatch(rf"label_values\(drwatch_[a-z_]+(\{{.*\}})?, {name}\)", query), query
        assert variable["definition"] == query, name


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_every_variable_is_used(path: Path) -> None:
    dashboard = load(path)
    exprs = "\n".join(panel_exprs(dashboard))
    for variable in dashboard["templating"]["list"]:
        if variable["name"] != "datasource":
            assert f"${variable['name']}" in exprs, variable["name"]


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_queries_reference_documented_metrics(path: Path) -> None:
    known = documented_metrics()
    dashboard = load(path)
    variable_queries = [
        v["definition"] for v in dashboard["templating"]["list"] if "definition" in v
    ]
    for expr in panel_exprs(dashboard) + variable_queries:
        referenced = set(METRIC.findall(expr))
        assert referenced, expr
        assert referenced <= known, f"undocumented: {referenced - known}"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_queries_filter_by_the_variables(path: Path) -> None:
    """Each selector of a metric with account, region, tier or collector labels filters on them
    (when the dashboard has that variable)."""
    dashboard = load(path)
    names = {v["name"] for v in dashboard["templating"]["list"]}
    labels = metric_labels()
    selector = re.compile(r"(drwatch[_:][a-z0-9_:]+)(\{[^}]*\})?")
    checked = 0
    for expr in panel_exprs(dashboard):
        for metric, matchers in selector.findall(expr):
            for label in FILTERED_LABELS:
                if label in labels.get(metric, set()) and label in names:
                    assert f'{label}=~"${label}"' in matchers, f"{metric} in {expr}"
                    checked += 1
    assert checked


def test_datasource_provisioning() -> None:
    data = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "drwatch.yml").read_text())
    assert data["apiVersion"] == 1
    [datasource] = data["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"].startswith("http")
    assert "uid" not in datasource  # dashboards select it through their variable


def test_dashboard_provisioning_points_at_the_dashboards_folder() -> None:
    data = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "drwatch.yml").read_text())
    assert data["apiVersion"] == 1
    [provider] = data["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].rstrip("/").endswith("dashboards/drwatch")
    readme = (GRAFANA / "README.md").read_text()
    assert provider["options"]["path"] in readme
    assert "dashboards/*.json" in readme


def test_readme_names_every_dashboard() -> None:
    readme = (GRAFANA / "README.md").read_text()
    for path in dashboard_files():
        assert f"dashboards/{path.name}" in readme
        assert f"`{load(path)['uid']}`" in readme
