"""Runs every benchmark and prints one table of their figures (`make bench`).

Each benchmark prints its figures as JSON lines (objects with a "benchmark" key:
bench/scale.py --json, bench/history.py --json, bench/report.py --json); bench/kafka_poll.py
prints one summary line, read with a pattern. Output streams through as it comes, the table
follows, and a failing benchmark fails the run.

Example: .venv/bin/python bench/table.py            # everything, about 10 minutes
         .venv/bin/python bench/table.py --quick    # smaller sizes, a smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
KAFKA_LINE = re.compile(r"poll median (?P<median>[\d.]+) s, max (?P<max>[\d.]+) s")


def commands(quick: bool) -> list[tuple[str, list[str]]]:
    python = sys.executable
    scale = ["--sizes", "100,1000"] if quick else []
    return [
        ("scale", [python, str(BENCH / "scale.py"), "--json", *scale]),
        ("history", [python, str(BENCH / "history.py"), "--json", "--quick"]),
        ("report", [python, str(BENCH / "report.py"), "--json", *(["--quick"] if quick else [])]),
        ("kafka", [python, str(BENCH / "kafka_poll.py")]),
    ]


def run(name: str, command: Sequence[str]) -> tuple[list[str], float]:
    """Streams the command's output through and returns its lines and wall time."""
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    if process.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {process.returncode}")
    return lines, time.perf_counter() - started


def json_objects(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("{"):
            data = json.loads(line)
            if isinstance(data, dict) and "benchmark" in data:
                yield data


def rows_of(name: str, lines: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """(benchmark, figure, value, target) rows."""
    if name == "kafka":
        match = next((m for m in map(KAFKA_LINE.search, lines) if m), None)
        if match is None:
            raise SystemExit("kafka: no 'poll median' line in its output")
        return [
            (
                "kafka",
                "MirrorMaker 2 poll, 600 partitions (median / max)",
                f"{match['median']} s / {match['max']} s",
                "",
            )
        ]
    rows = []
    for data in json_objects(lines):
        if "figure" in data:
            rows.append(scale_row(data))
        else:
            rows.extend(flat_rows(data))
    return rows


def scale_row(data: Mapping[str, Any]) -> tuple[str, str, str, str]:
    figure = f"{data['figure']} @ {data['size']:,}"
    value = fmt(data["value"])
    if "calls" in data:
        value = f"{data['calls']:,} / {data['bound']:,} = {data['value']:.2f}"
    elif "wall" in data:
        value = f"{data['wall']:.1f} s / {data['bound']:.1f} s = {data['value']:.2f}"
    elif "max_per_s" in data:
        value = f"{'yes' if data['value'] else 'NO'} (max {data['max_per_s']}/s)"
    target = ""
    if "target" in data or "ok" in data:
        verdict = "met" if data.get("ok") else "MISSED"
        target = f"<= {fmt(data['target'])} {verdict}" if "target" in data else verdict
    return ("scale", figure, value, target)


def flat_rows(data: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    name = str(data["benchmark"])
    return [(name, key, fmt(value), "") for key, value in data.items() if key != "benchmark"]


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(rows: Sequence[tuple[str, str, str, str]], seconds: float) -> None:
    print(
        f"\n{platform.machine()}, CPython {platform.python_version()}; all benchmarks took "
        f"{seconds / 60:.1f} min\n"
    )
    print("| benchmark | figure | value | target |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a smoke run")
    parser.add_argument("--only", help="comma-separated benchmarks to run (scale,history,...)")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    started = time.perf_counter()
    rows: list[tuple[str, str, str, str]] = []
    for name, command in commands(args.quick):
        if wanted is not None and name not in wanted:
            continue
        lines, seconds = run(name, command)
        rows.extend(rows_of(name, lines))
        rows.append((name, "benchmark wall time", f"{seconds:.0f} s", ""))
    print_table(rows, time.perf_counter() - started)


if __name__ == "__main__":
    main()
