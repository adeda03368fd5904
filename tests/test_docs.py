"""Documentation keeps up with the code: every metric family and CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click

from drwatch.cli.main import cli
from drwatch.exporter import metrics

ROOT = Path(__file__).parent.parent
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def metric_family_names() -> set[str]:
    package = Path(metrics.__file__).parent
    source = "\n".join(p.read_text() for p in sorted(package.glob("*.py")))
    return set(re.findall(r'"(drwatch_[a-z0-9_]+)"', source))


def command_paths(group: click.Group, prefix: str = "drwatch") -> list[str]:
    paths = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        paths.append(path)
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, path))
    return paths


def test_every_metric_family_is_in_the_metrics_reference() -> None:
    reference = (ROOT / "docs" / "metrics.md").read_text()
    names = metric_family_names()
    assert len(names) > 20
    missing = sorted(n for n in names if n not in reference)
    assert missing == []


def test_every_cli_command_is_documented_with_an_example() -> None:
    paths = command_paths(cli)
    assert "drwatch check-config" in paths
    undocumented = [p for p in paths if p not in DOCS]
    assert undocumented == []
    without_example = [
        name
        for name, command in cli.commands.items()
        if "Example:" not in (command.help or "") and not isinstance(command, click.Group)
    ]
    assert without_example == []
