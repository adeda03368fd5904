"""A local Prometheus and Alertmanager (the Debian packages) wired to an exporter.

Used by `drwatch demo` so that a user sees the shipped alerts fire, and by the end-to-end
tests. Both servers run as child processes on loopback with their data in a work directory.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for the alertmanager binary


def repository_file(*parts: str) -> Path:
    """A file shipped in the source tree next to the `exporter` package (alerts/, grafana/)."""
    return Path(__file__).resolve().parents[2].joinpath(*parts)


def stack_available() -> bool:
    return bool(shutil.which(PROMETHEUS) and shutil.which(ALERTMANAGER))


@dataclass(frozen=True, slots=True)
class StackSettings:
    scrape_target: str  # host:port of the exporter
    rules_file: Path
    alertmanager_config: Path
    workdir: Path
    prometheus_port: int
    alertmanager_port: int
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"


@dataclass(frozen=True, slots=True)
class LocalStack:
    prometheus_url: str
    alertmanager_url: str
    processes: tuple[subprocess.Popen[bytes], ...]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


def prometheus_config(settings: StackSettings) -> dict[str, object]:
    return {
        "global": {
            "scrape_interval": settings.scrape_interval,
            "evaluation_interval": settings.evaluation_interval,
        },
        "rule_files": [str(settings.rules_file)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{settings.alertmanager_port}"]}]}
            ]
        },
        "scrape_configs": [
            {"job_name": "drwatch", "static_configs": [{"targets": [settings.scrape_target]}]}
        ],
    }


def start_stack(settings: StackSettings) -> LocalStack:
    """Starts Alertmanager, then Prometheus; raises FileNotFoundError if either is missing."""
    for binary in (PROMETHEUS, ALERTMANAGER):
        if shutil.which(binary) is None:
            raise FileNotFoundError(f"{binary} is not installed (apt-get install {binary})")
    settings.workdir.mkdir(parents=True, exist_ok=True)
    config = settings.workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(settings)))
    # Fixed binaries and arguments we build ourselves; no shell.
    alertmanager = subprocess.Popen(  # noqa: S603
        [
            ALERTMANAGER,
            f"--config.file={settings.alertmanager_config}",
            f"--storage.path={settings.workdir / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{settings.alertmanager_port}",
            "--cluster.listen-address=",  # a single local instance: no gossip port
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prometheus = subprocess.Popen(  # noqa: S603
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={settings.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return LocalStack(
        prometheus_url=f"http://127.0.0.1:{settings.prometheus_port}",
        alertmanager_url=f"http://127.0.0.1:{settings.alertmanager_port}",
        processes=(alertmanager, prometheus),
    )
