"""The alerts and dashboards mixin: the shipped files are its output, and its config matters.

mixin/render.py renders alerts/*.rules.yml and grafana/dashboards/*.json from mixin/alerts/,
mixin/dashboards/ and mixin/config.yml. These tests render into a temporary directory and
compare, so a hand edit of a shipped file (or a source change not rendered) fails here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
MIXIN = ROOT / "mixin"
RAW_METRIC = re.compile(r'(?<![\w:"$.])(drwatch_[a-z0-9_]+|up)(?![\w:(])(\{[^}]*\})?')


def load_mixin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mixin_render", MIXIN / "render.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_mixin()


def config_with(tmp_path: Path, **changes: Any) -> Path:
    config = yaml.safe_load((MIXIN / "config.yml").read_text(encoding="utf-8"))
    thresholds = changes.pop("thresholds", {})
    config.update(changes)
    config["thresholds"].update(thresholds)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def rendered(tmp_path: Path, config: Path | None = None) -> Path:
    out = tmp_path / "out"
    args = ["--out", str(out)] + (["--config", str(config)] if config else [])
    assert render.main(args) == 0
    return out


def rules(out: Path) -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((out / "alerts").glob("*.rules.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


def dashboard_exprs(out: Path) -> list[str]:
    exprs: list[str] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif key in {"expr", "definition"} and isinstance(node, str):
            exprs.append(node)

    for path in sorted((out / "grafana" / "dashboards").glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return exprs


def test_shipped_files_are_the_rendered_output_byte_for_byte(tmp_path: Path) -> None:
    out = rendered(tmp_path)
    made = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    shipped = sorted(
        p.relative_to(ROOT)
        for p in [*(ROOT / "alerts").glob("*.rules.yml"), *(ROOT / "grafana/dashboards").glob("*")]
    )
    assert made == shipped, "every shipped rule file and dashboard comes from mixin/"
    drifted = [str(p) for p in made if (out / p).read_bytes() != (ROOT / p).read_bytes()]
    assert not drifted, f"{drifted} differ from mixin/: run python mixin/render.py"
    assert render.main(["--check"]) == 0


def test_check_names_a_drifted_file(tmp_path: Path) -> None:
    out = rendered(tmp_path)
    target = out / "grafana" / "dashboards" / "drwatch-exporter.json"
    target.write_text(target.read_text(encoding="utf-8").replace("drwatch", "dr-watch"))
    assert render.drifted(render.load_config(), out) == ["grafana/dashboards/drwatch-exporter.json"]


def test_the_default_selector_is_on_every_raw_metric_of_every_rule_and_query(
    tmp_path: Path,
) -> None:
    out = rendered(tmp_path)
    for expr in [rule["expr"] for rule in rules(out)] + dashboard_exprs(out):
        for name, matchers in RAW_METRIC.findall(expr):
            assert matchers.startswith('{job="drwatch"'), f"{name} in {expr}"


def test_another_job_selector_changes_every_rule_and_dashboard(tmp_path: Path) -> None:
    out = rendered(tmp_path, config_with(tmp_path, selector='job="backup-exporter"'))
    every_rule = rules(out)
    assert len(every_rule) == len(rules(ROOT))
    for rule in every_rule:
        expr = rule["expr"]
        where = rule.get("alert") or rule["record"]
        assert 'job="backup-exporter"' in expr, where
        assert 'job="drwatch"' not in expr, where
        for name, matchers in RAW_METRIC.findall(expr):
            assert matchers.startswith('{job="backup-exporter"'), f"{name} in {where}"
    exprs = dashboard_exprs(out)
    assert exprs
    for expr in exprs:
        assert 'job="drwatch"' not in expr, expr
        if RAW_METRIC.search(expr):
            assert 'job="backup-exporter"' in expr, expr
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: make system-deps installs it"
    for path in (out / "alerts").glob("*.rules.yml"):
        checked = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_empty_selector_selects_by_name_alone(tmp_path: Path) -> None:
    out = rendered(tmp_path, config_with(tmp_path, selector=""))
    text = (MIXIN / "alerts" / "drwatch.rules.yml").read_text(encoding="utf-8")
    source = yaml.safe_load(render.substitute(text, render.load_config(), "source"))
    source_exprs = [r["expr"] for g in source["groups"] for r in g["rules"]]
    assert [rule["expr"] for rule in rules(out)] == source_exprs


def test_urls_tags_and_thresholds_come_from_the_config(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        runbook_base_url="https://wiki.example.org/drwatch",
        grafana_url="https://grafana.internal",
        dashboard_tags=["drwatch", "team-dr"],
        thresholds={"kafka_replication_lag_messages": 5000, "success_ratio_warning": 0.9},
    )
    out = rendered(tmp_path, config)
    for rule in rules(out):
        if "alert" in rule:
            annotations = rule["annotations"]
            anchor = rule["alert"].lower()
            assert annotations["runbook_url"] == f"https://wiki.example.org/drwatch#{anchor}"
            assert annotations["dashboard_url"].startswith("https://grafana.internal/d/")
    (lagging,) = [r for r in rules(out) if r.get("alert") == "DrwatchKafkaReplicationLagging"]
    assert lagging["expr"].rstrip().endswith("> 5000")
    text = "\n".join(p.read_text() for p in (out / "grafana" / "dashboards").glob("*.json"))
    assert '"value": 5000' in text
    assert '"value": 0.9\n' in text
    assert '"value": 0.95' not in text
    for path in (out / "grafana" / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        assert dashboard["tags"][:2] == ["drwatch", "team-dr"]
        assert all(link["tags"] == ["drwatch", "team-dr"] for link in dashboard["links"])


def test_every_config_value_is_used_and_every_placeholder_known() -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8")
        for p in [*(MIXIN / "alerts").glob("*.yml"), *(MIXIN / "dashboards").glob("*.json")]
    )
    used = set(render.PLACEHOLDER.findall(sources))
    config = render.load_config()
    assert used == set(config) - {"selector"} | ({"selector"} & used)
    assert "<<" not in "".join(render.render(config).values())


def test_an_unknown_placeholder_or_field_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown placeholder <<nope>>"):
        render.render_rules("expr: up > <<nope>>\n", render.load_config(), "x.rules.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("selector: x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="exactly the fields"):
        render.load_config(bad)


def test_the_selector_goes_inside_existing_matchers_and_before_ranges() -> None:
    sel = 'job="x"'
    assert render.with_selector('rate(drwatch_a_total{k="v"}[5m])', sel) == (
        'rate(drwatch_a_total{job="x", k="v"}[5m])'
    )
    assert render.with_selector("absent(up) or drwatch:recorded", sel) == (
        'absent(up{job="x"}) or drwatch:recorded'
    )
    assert render.with_selector('sum by (up_to) (drwatch_b{s="drwatch_c"})', sel) == (
        'sum by (up_to) (drwatch_b{job="x", s="drwatch_c"})'
    )
