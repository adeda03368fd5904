"""`python -m exporter` runs the drwatch command line."""

from exporter.cli import cli

cli()
