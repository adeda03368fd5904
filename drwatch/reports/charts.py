"""Chart geometry for the report templates: numbers in, SVG coordinates out.

The SVG itself is markup in `templates/charts.svg.j2`; this module only computes where
each bar goes, so charts are testable without rendering and no markup lives in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 680
HEIGHT = 200
LEFT = 44  # room for the y-axis labels
BOTTOM = 24  # room for the x-axis labels
TOP = 10


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css_class: str
    title: str  # tooltip / accessible text


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: int
    height: int
    plot_left: float
    plot_top: float
    plot_bottom: float
    plot_right: float
    bars: tuple[Bar, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    threshold: float | None  # y of a target line, if any
    empty: bool


def _x_ticks(labels: Sequence[str], slot: float) -> tuple[Tick, ...]:
    every = max(1, len(labels) // 8)  # about eight labels whatever the period length
    return tuple(
        Tick(LEFT + slot * (index + 0.5), label[5:])  # "2026-10-14" shows as "10-14"
        for index, label in enumerate(labels)
        if index % every == 0
    )


def share_chart(
    title: str, days: Sequence[str], shares: Sequence[float | None], target: float
) -> Chart:
    """One bar per day: the share (0..1) of the day that met the target; None = no data."""
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - 6) / max(len(days), 1)
    bars = []
    for index, (day, share) in enumerate(zip(days, shares, strict=True)):
        if share is None:
            continue
        height = plot_height * share
        bars.append(
            Bar(
                x=LEFT + slot * index + slot * 0.1,
                y=TOP + plot_height - height,
                width=slot * 0.8,
                height=height,
                css_class="ok" if share >= target else "bad",
                title=f"{day}: {share * 100:.1f}%",
            )
        )
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_top=TOP,
        plot_bottom=TOP + plot_height,
        plot_right=WIDTH - 6,
        bars=tuple(bars),
        y_ticks=tuple(
            Tick(TOP + plot_height * (1 - value), f"{int(value * 100)}%")
            for value in (0.0, 0.25, 0.5, 0.75, 1.0)
        ),
        x_ticks=_x_ticks(days, slot),
        threshold=TOP + plot_height * (1 - target),
        empty=not bars,
    )


def stacked_chart(
    title: str, days: Sequence[str], good: Sequence[int], bad: Sequence[int]
) -> Chart:
    """Per day, good (bottom) and bad (top) counts stacked, e.g. completed and failed jobs."""
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - 6) / max(len(days), 1)
    top = max((g + b for g, b in zip(good, bad, strict=True)), default=0)
    scale = _nice_ceiling(top)
    bars = []
    for index, (day, ok, failed) in enumerate(zip(days, good, bad, strict=True)):
        x = LEFT + slot * index + slot * 0.1
        ok_height = plot_height * ok / scale
        bad_height = plot_height * failed / scale
        base = TOP + plot_height
        if ok:
            bars.append(
                Bar(x, base - ok_height, slot * 0.8, ok_height, "ok", f"{day}: {ok} completed")
            )
        if failed:
            bars.append(
                Bar(
                    x,
                    base - ok_height - bad_height,
                    slot * 0.8,
                    bad_height,
                    "bad",
                    f"{day}: {failed} failed",
                )
            )
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_top=TOP,
        plot_bottom=TOP + plot_height,
        plot_right=WIDTH - 6,
        bars=tuple(bars),
        y_ticks=tuple(
            Tick(TOP + plot_height * (1 - step / 4), f"{scale * step // 4:,}") for step in range(5)
        ),
        x_ticks=_x_ticks(days, slot),
        threshold=None,
        empty=not bars,
    )


def _nice_ceiling(value: int) -> int:
    """The smallest of 4, 8, 20, 40, 80, 200... at or above value (axis labels divide by 4)."""
    scale = 4
    while scale < value:
        for factor in (2, 2.5, 2):
            scale = int(scale * factor)
            if scale >= value:
                break
    return scale
