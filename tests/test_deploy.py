"""Deployment artifacts, checked statically: Kubernetes manifests, Dockerfile, systemd unit.

No Docker engine or Kubernetes cluster runs here: the image is not built and the manifests
are not applied. What can be checked without them is: YAML structure and cross-references,
that the PrometheusRule carries exactly the shipped rules (and promtool accepts them), that
the embedded config and the container arguments are accepted by drwatch itself, and the
systemd unit with `systemd-analyze verify` and its offline security score.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from drwatch.cli.main import cli
from drwatch.config import DEFAULT_PORT, parse_config
from drwatch.core.sharding import parse_shard
from tests.test_kubernetes import render as render_overlay

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
RULES = ROOT / "alerts" / "drwatch.rules.yml"
CANONICAL_URL = "https://github.com/drwatch/drwatch"
LAYOUTS = ("single", "sharded")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomized(layout: str) -> list[dict[str, Any]]:
    """The resources of a layout as kustomize renders them (tests/test_kubernetes.py)."""
    return render_overlay(layout)


def by_kind(
    resources: list[dict[str, Any]], kind: str, name: str = "drwatch"
) -> dict[str, Any]:
    (found,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def workload(layout: str) -> dict[str, Any]:
    kind = "Deployment" if layout == "single" else "StatefulSet"
    return by_kind(kustomized(layout), kind)


def container(resource: dict[str, Any], name: str = "drwatch") -> dict[str, Any]:
    (found,) = [c for c in resource["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def test_every_manifest_parses_and_is_used_by_a_layout() -> None:
    files = sorted(KUBERNETES.rglob("*.yaml"))
    used: set[Path] = set()
    for directory in {f.parent for f in files}:
        (kustomization,) = documents(directory / "kustomization.yaml")
        entries = [*kustomization.get("resources", [])]
        for generator in kustomization.get("configMapGenerator", []):
            entries.extend(generator["files"])
        for entry in entries:
            target = (directory / entry).resolve()
            assert target.exists(), f"{directory.name}/kustomization.yaml: {entry} is missing"
            used.add(target)
    for path in files:
        if path.name == "kustomization.yaml":
            continue
        assert path.resolve() in used, f"{path} is in no kustomization"
        for doc in documents(path):
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path
            assert doc["metadata"]["name"], path
    for path in (KUBERNETES / "base" / "dashboards").glob("*.json"):
        assert path.resolve() in used, f"{path} is in no configMapGenerator"


def test_prometheus_rule_command_adds_selector_labels() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(
        cli, ["prometheus-rule", str(RULES), "--label", "release=kube-prometheus-stack"]
    )
    assert result.exit_code == 0, result.output
    (rule,) = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    bad = CliRunner().invoke(cli, ["prometheus-rule", str(RULES), "--label", "release"])
    assert bad.exit_code == 2


def embedded_config(layout: str) -> Any:
    config_map = by_kind(kustomized(layout), "ConfigMap", "drwatch-config")
    return parse_config(yaml.safe_load(config_map["data"]["drwatch.yml"]))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_workload_runs_drwatch_as_configured(layout: str) -> None:
    resources = kustomized(layout)
    resource = workload(layout)
    pod = resource["spec"]["template"]["spec"]
    main = container(resource)
    config = embedded_config(layout)
    # The arguments are drwatch's own: click parses them (POD_INDEX as Kubernetes expands it).
    command, *args = [arg.replace("$(POD_INDEX)", "1") for arg in main["args"]]
    assert command == "serve"
    context = cli.commands[command].make_context(command, args)
    config_mount = next(m for m in main["volumeMounts"] if m["name"] == "config")
    assert str(context.params["config_path"]).startswith(config_mount["mountPath"] + "/")
    assert context.params["enable_lifecycle"]
    history_mount = next(m for m in main["volumeMounts"] if m["name"] == "history")
    assert config.history_path.startswith(history_mount["mountPath"] + "/")
    assert main["ports"][0]["containerPort"] == config.listen_port == DEFAULT_PORT
    assert main["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    # Non-root, read-only, no privilege escalation; only the history and /tmp are writable.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid() != 0
    for each in pod["containers"]:
        assert each["securityContext"]["allowPrivilegeEscalation"] is False
        assert each["securityContext"]["readOnlyRootFilesystem"] is True
        assert each["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # The reload sidecar calls the lifecycle endpoint of the drwatch container.
    reloader = container(resource, "config-reload")
    assert f"--webhook-url=http://127.0.0.1:{config.listen_port}/-/reload" in reloader["args"]
    # The service account with the IRSA role, and a Service/ServiceMonitor that select the pods.
    account = by_kind(resources, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::[0-9]{12}:role/[\w+=,.@-]+", role)
    labels = resource["spec"]["template"]["metadata"]["labels"]
    service = by_kind(resources, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    monitor = by_kind(resources, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_single_exporter_keeps_one_writer_on_its_history() -> None:
    deployment = workload("single")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    claim = by_kind(kustomized("single"), "PersistentVolumeClaim", "drwatch-history")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "history",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    } in volumes


def test_sharded_replicas_match_the_shard_count() -> None:
    statefulset = workload("sharded")
    main = container(statefulset)
    (shard_arg,) = [a for a in main["args"] if a.startswith("--shard=")]
    replicas = statefulset["spec"]["replicas"]
    for index in range(replicas):
        shard = parse_shard(shard_arg.removeprefix("--shard=").replace("$(POD_INDEX)", str(index)))
        assert (shard.index, shard.total) == (index, replicas)
    (env,) = [e for e in main["env"] if e["name"] == "POD_INDEX"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    (template,) = statefulset["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "history"


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    logical = re.sub(r"\\\n\s*", " ", text)
    stages: list[list[tuple[str, str]]] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), rest.strip()))
    return stages


def dockerfile_uid() -> int:
    final = dockerfile_stages()[-1]
    (user,) = [rest for instruction, rest in final if instruction == "USER"]
    return int(user.split(":")[0])


def test_dockerfile_is_slim_multi_stage_and_non_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) == 2
    final = stages[-1]
    base = final[0][1]
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base), base
    assert dockerfile_uid() != 0
    # The user switch comes after every RUN: nothing runs as root at container start.
    order = [instruction for instruction, _ in final]
    assert max(i for i, name in enumerate(order) if name == "RUN") < order.index("USER")
    runs = " ".join(rest for instruction, rest in final if instruction == "RUN")
    for tool in ("gcc", "build-essential", "make ", "pip install", "-dev "):
        assert tool not in runs, f"build tool {tool!r} in the final image"
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert ("COPY", "--from=build /opt/drwatch /opt/drwatch") in final
    assert ("EXPOSE", str(DEFAULT_PORT)) in final
    assert ("ENTRYPOINT", '["drwatch"]') in final
    (cmd,) = [json.loads(rest) for instruction, rest in final if instruction == "CMD"]
    assert cli.commands[cmd[0]].make_context(cmd[0], cmd[1:]).params["config_path"]
    # Every source the build copies exists (the build context is the repository root).
    for instruction, rest in stages[0]:
        if instruction == "COPY":
            for source in shlex.split(rest)[:-1]:
                assert (ROOT / source).exists(), source


SYSTEMD_UNIT = DEPLOY / "systemd" / "drwatch.service"
HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/lib/drwatch",
    "PrivateTmp=yes",
    "DynamicUser=yes",
    "ProtectHome=yes",
    "CapabilityBoundingSet=",
    "ExecReload=/bin/kill -HUP $MAINPID",
)


@pytest.fixture
def unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's drwatch (verify checks it exists)."""
    drwatch = ROOT / ".venv" / "bin" / "drwatch"
    assert drwatch.exists()
    text = SYSTEMD_UNIT.read_text(encoding="utf-8").replace(
        "/opt/drwatch/bin/drwatch", str(drwatch)
    )
    unit = tmp_path / "drwatch.service"
    unit.write_text(text)
    return unit


def test_systemd_unit_verifies_and_is_hardened(unit_for_this_machine: Path) -> None:
    lines = SYSTEMD_UNIT.read_text(encoding="utf-8").splitlines()
    for directive in HARDENING:
        assert directive in lines, directive
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is required: make system-deps installs systemd"
    verified = subprocess.run(
        [analyze, "verify", str(unit_for_this_machine)], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == ""
    security = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit_for_this_machine)],
        capture_output=True,
        text=True,
        check=False,
    )
    score = re.search(
        r"Overall exposure level for drwatch\.service: ([0-9.]+) (\w+)", security.stdout
    )
    assert score, security.stdout + security.stderr
    # systemd rates 0-10; below 2 is its best band ("OK"), where this unit must stay.
    assert float(score[1]) < 2.0, security.stdout


def dockerfile_labels() -> dict[str, str]:
    labels: dict[str, str] = {}
    for instruction, rest in dockerfile_stages()[-1]:
        if instruction == "LABEL":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                labels[key] = value
    return labels


def test_dockerfile_has_oci_labels_agreeing_with_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    labels = dockerfile_labels()
    prefix = "org.opencontainers.image."
    assert labels[prefix + "title"] == project["name"]
    assert labels[prefix + "description"] == project["description"]
    assert labels[prefix + "version"] == project["version"]
    assert labels[prefix + "licenses"] == project["license"]
    assert labels[prefix + "source"] == project["urls"]["Source"] == CANONICAL_URL


def test_dockerfile_healthcheck_runs_drwatch_healthcheck_with_the_serve_config() -> None:
    final = dockerfile_stages()[-1]
    (healthcheck,) = [rest for instruction, rest in final if instruction == "HEALTHCHECK"]
    options, _, command = healthcheck.partition("CMD ")
    assert "--start-period=" in options
    argv = json.loads(command)
    assert argv[:2] == ["drwatch", "healthcheck"]
    # The same config file as the default command, parsed by the command itself; the
    # password comes from a file, never from argv.
    context = cli.commands["healthcheck"].make_context("healthcheck", argv[2:])
    (cmd,) = [json.loads(rest) for instruction, rest in final if instruction == "CMD"]
    served = cli.commands[cmd[0]].make_context(cmd[0], cmd[1:])
    assert context.params["config_path"] == served.params["config_path"]
    assert context.params["password_file"] is not None
    assert context.params["probe_path"] == "/-/ready"


def text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def test_one_canonical_project_url_and_no_unpublished_install() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert all(url.startswith(CANONICAL_URL) for url in project["urls"].values())
    for path in text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for owner in re.findall(r"github\.com/([\w.-]+)/drwatch\b", text):
            assert owner == "drwatch", f"{path.relative_to(ROOT)}: github.com/{owner}/drwatch"
        if path.suffix in {".md", ".service"} or path.name == "Dockerfile":
            # drwatch is not on PyPI yet: `pip install drwatch` would install nothing.
            assert not re.search(r"pip install drwatch\b", text), path.relative_to(ROOT)
