"""The Kubernetes package as kustomize renders it: every overlay, parsed and cross-checked.

Each overlay under deploy/kubernetes/ is rendered with `kubectl kustomize` (kubectl ships
with this kind of machine; Debian's kubernetes-client embeds a kustomize too old for these
files). Where no kubectl is on PATH, `python_render` builds the same resources from the
kustomization inputs (resources, labels, configMapGenerator: all these files use), and the
same checks run on that. No cluster runs here: nothing is applied.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drwatch.exporter.webconfig import parse_web_config

ROOT = Path(__file__).parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("single", "sharded")
KINDS = {
    "single": {"Deployment", "PersistentVolumeClaim"},
    "sharded": {"StatefulSet", "PodDisruptionBudget"},
}
COMMON_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceMonitor",
    "PrometheusRule",
    "NetworkPolicy",
}
WORKLOADS = ("Deployment", "StatefulSet")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def python_render(directory: Path) -> list[dict[str, Any]]:
    """The subset of kustomize these files use, for a machine without kubectl."""
    (kustomization,) = documents(directory / "kustomization.yaml")
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = directory / entry
        resources.extend(python_render(target) if target.is_dir() else documents(target))
    options = kustomization.get("generatorOptions", {})
    for generator in kustomization.get("configMapGenerator", []):
        assert options.get("disableNameSuffixHash"), "the fallback renders no hash suffixes"
        data = {
            Path(f).name: (directory / f).read_text(encoding="utf-8") for f in generator["files"]
        }
        metadata: dict[str, Any] = {"name": generator["name"], "labels": dict(options["labels"])}
        if "annotations" in options:
            metadata["annotations"] = dict(options["annotations"])
        resources.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        )
    for resource in resources:
        if "namespace" in kustomization and resource["kind"] != "Namespace":
            resource["metadata"]["namespace"] = kustomization["namespace"]
        for labels in kustomization.get("labels", []):
            assert not labels.get("includeSelectors"), "the fallback adds metadata labels only"
            resource["metadata"].setdefault("labels", {}).update(labels["pairs"])
    return resources


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return python_render(KUBERNETES / overlay)
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def of_kind(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind]


def named(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in of_kind(resources, kind) if r["metadata"]["name"] == name]
    return found


def the_workload(resources: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [r for r in resources if r["kind"] in WORKLOADS]
    return found


def main_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    (found,) = [c for c in containers if c["name"] == "drwatch"]
    return found


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def container_ports(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for each in workload["spec"]["template"]["spec"]["containers"]:
        yield from each.get("ports", [])


def test_python_fallback_renders_what_kustomize_renders() -> None:
    """The fallback is only trusted while it agrees with kustomize where kubectl exists."""
    if shutil.which("kubectl") is None:
        pytest.skip("no kubectl to compare with: the checks below ran on the fallback")
    for overlay in OVERLAYS:

        def key(resource: dict[str, Any]) -> str:
            return json.dumps(resource, sort_keys=True)

        assert sorted(map(key, python_render(KUBERNETES / overlay))) == sorted(
            map(key, render(overlay))
        ), overlay


def test_kinds_namespaces_and_uniqueness(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, resources = rendered
    assert {r["kind"] for r in resources} == COMMON_KINDS | KINDS[overlay]
    names = [(r["kind"], r["metadata"]["name"]) for r in resources]
    assert len(names) == len(set(names))
    for resource in resources:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "drwatch", resource["metadata"]


def test_selectors_and_ports_match_the_pods(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    workload = the_workload(resources)
    pod_labels = workload["spec"]["template"]["metadata"]["labels"]
    assert selects(workload["spec"]["selector"]["matchLabels"], pod_labels)
    ports = {p["name"]: p["containerPort"] for p in container_ports(workload)}
    for service in of_kind(resources, "Service"):
        assert selects(service["spec"]["selector"], pod_labels), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert target in ports or target in ports.values(), port
    for budget in of_kind(resources, "PodDisruptionBudget"):
        assert selects(budget["spec"]["selector"]["matchLabels"], pod_labels)
    (policy,) = of_kind(resources, "NetworkPolicy")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    # Every volume the pods use exists in the package (PVCs of a StatefulSet come from its
    # templates).
    claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
    for volume in workload["spec"]["template"]["spec"]["volumes"]:
        if "configMap" in volume:
            named(resources, "ConfigMap", volume["configMap"]["name"])
        elif "secret" in volume:
            named(resources, "Secret", volume["secret"]["secretName"])
        elif "persistentVolumeClaim" in volume:
            claim = named(
                resources, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]
            )
            assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        else:
            assert "emptyDir" in volume or volume["name"] in claims, volume
    account = named(
        resources, "ServiceAccount", workload["spec"]["template"]["spec"]["serviceAccountName"]
    )
    assert account["automountServiceAccountToken"] is False


def web_config(resources: list[dict[str, Any]], workload: dict[str, Any]) -> Any:
    """The web config the pods run with: the Secret mounted where --web.config.file points."""
    container = main_container(workload)
    (arg,) = [a for a in container["args"] if a.startswith("--web.config.file=")]
    path = Path(arg.partition("=")[2])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    (volume,) = [
        v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    ]
    secret = named(resources, "Secret", volume["secret"]["secretName"])
    text = secret.get("stringData", {}).get(path.name)
    assert text is not None, f"{secret['metadata']['name']} has no {path.name}"
    return parse_web_config(yaml.safe_load(text), path.parent)


def test_probes_and_scrape_speak_the_web_config(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    workload = the_workload(resources)
    container = main_container(workload)
    web = web_config(resources, workload)
    scheme = "HTTPS" if web.tls is not None else "HTTP"
    probes = {"readinessProbe": "/-/ready", "livenessProbe": "/-/healthy"}
    for probe, path in probes.items():
        spec = container[probe]
        if web.basic_auth_users:
            # Every path is behind basic auth: an httpGet probe would get 401.
            command = spec["exec"]["command"]
            assert command[:2] == ["drwatch", "healthcheck"], command
            assert "--auth.password-file" in command
        else:
            assert spec["httpGet"]["path"] == path
            assert spec["httpGet"]["scheme"] == scheme
            assert spec["httpGet"]["port"] in {p["name"] for p in container["ports"]}
    (monitor,) = of_kind(resources, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (scraped,) = [
        s
        for s in of_kind(resources, "Service")
        if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert scraped["spec"].get("clusterIP") != "None"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in scraped["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["scheme"] == scheme.lower()
    assert ("basicAuth" in endpoint) == bool(web.basic_auth_users)
    reloader = [c for c in workload["spec"]["template"]["spec"]["containers"] if c is not container]
    for sidecar in reloader:
        for arg in sidecar.get("args", []):
            if arg.startswith("--webhook-url="):
                assert arg.startswith(f"--webhook-url={scheme.lower()}://"), arg


def test_statefulset_names_a_headless_service() -> None:
    resources = render("sharded")
    (statefulset,) = of_kind(resources, "StatefulSet")
    service = named(resources, "Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], pod_labels)


def test_network_policy_admits_prometheus_only_and_lets_out_dns_and_https(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, resources = rendered
    (policy,) = of_kind(resources, "NetworkPolicy")
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    (source,) = ingress["from"]
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert source["podSelector"]["matchLabels"]
    ports = sorted(
        (p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule["ports"]
    )
    assert ports == [(53, "TCP"), (53, "UDP"), (443, "TCP")]
    assert all("to" not in rule for rule in policy["spec"]["egress"])


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "render_kubernetes", ROOT / "scripts" / "render_kubernetes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_current() -> None:
    """Fails after a change to alerts/*.rules.yml or grafana/dashboards/ until regenerated."""
    stale = [str(p.relative_to(ROOT)) for p in load_generator().stale()]
    assert not stale, f"stale {stale}: run python scripts/render_kubernetes.py"


def test_prometheus_rule_carries_exactly_the_rules_files(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, resources = rendered
    (rule,) = of_kind(resources, "PrometheusRule")
    groups = [
        group
        for path in sorted((ROOT / "alerts").glob("*.rules.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    ]
    assert rule["spec"]["groups"] == groups
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: make system-deps installs it"
    extracted = tmp_path / "rules.yml"
    extracted.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(extracted)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboards_are_configmaps_for_the_grafana_sidecar(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, resources = rendered
    shipped = {
        p.name: p.read_text(encoding="utf-8")
        for p in (ROOT / "grafana" / "dashboards").glob("*.json")
    }
    found: dict[str, str] = {}
    for config_map in of_kind(resources, "ConfigMap"):
        if config_map["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            found.update(config_map["data"])
    assert found == shipped
    for text in found.values():
        assert json.loads(text)["uid"]
