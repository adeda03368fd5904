"""The collector catalogue (drwatch.config.catalogue) and the exporter's collector classes agree:
every collector has exactly one name, one default interval and one default state."""

from __future__ import annotations

import pytest

from drwatch.config import DEFAULT_ENABLED_COLLECTORS, DEFAULT_INTERVALS, KNOWN_COLLECTORS
from drwatch.config.catalogue import CATALOGUE, MIN_INTERVAL_SECONDS
from drwatch.exporter import collectors
from drwatch.exporter.collectors import COLLECTORS


def test_collector_classes_are_the_catalogued_collectors() -> None:
    names = [c.name for c in COLLECTORS]
    assert len(names) == len(set(names))
    assert set(names) == set(KNOWN_COLLECTORS)


def test_catalogue_gives_every_collector_its_defaults() -> None:
    assert len(KNOWN_COLLECTORS) == len(set(KNOWN_COLLECTORS)) == len(CATALOGUE)
    assert tuple(DEFAULT_INTERVALS) == KNOWN_COLLECTORS
    assert all(seconds >= MIN_INTERVAL_SECONDS for seconds in DEFAULT_INTERVALS.values())
    assert DEFAULT_ENABLED_COLLECTORS.issubset(KNOWN_COLLECTORS)


def test_a_collector_missing_from_the_catalogue_is_refused() -> None:
    with pytest.raises(RuntimeError, match="collector catalogue"):
        collectors._check_against_catalogue(COLLECTORS[:-1])
