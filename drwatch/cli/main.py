"""The `drwatch` command line: the click group and the commands of every group module.

This is the composition root: each command lives in the module of its group (serve, demo,
history, drill, report, merge, deploy) and is added to the group here.
"""

from __future__ import annotations

import click

from drwatch import __version__
from drwatch.cli.demo import demo
from drwatch.cli.deploy import prometheus_rule_command
from drwatch.cli.drill import drill
from drwatch.cli.healthcheck import healthcheck
from drwatch.cli.history import history
from drwatch.cli.merge import history_merge
from drwatch.cli.report import report
from drwatch.cli.serve import check_config, iam_policy, poll, serve


@click.group()
@click.version_option(__version__, prog_name="drwatch")
def cli() -> None:
    """drwatch: backup and disaster-recovery evidence for AWS."""


cli.add_command(check_config)
cli.add_command(iam_policy)
cli.add_command(poll)
cli.add_command(serve)
cli.add_command(demo)
cli.add_command(history)
history.add_command(history_merge)
cli.add_command(drill)
cli.add_command(report)
cli.add_command(prometheus_rule_command)
cli.add_command(healthcheck)
