"""`python -m drwatch` runs the drwatch command line."""

from drwatch.cli.main import cli

cli()
