"""Rendering reports: Jinja2 templates to HTML, WeasyPrint to PDF/A-3u, nothing from the network.

Stable API shared by every report (compliance, management review):

- `render_html(template_name, context)`: the HTML text (autoescape, StrictUndefined);
- `render_pdf(template_name, context, out, attachments=())`: a PDF/A-3u file with the
  attachments embedded (the JSON companion), returning a `RenderResult` with page count,
  size, render time and SHA-256.

Templates live in the repository's `templates/` directory; each report template extends
`base.html.j2` (running header, page numbers, cover, table styles in `report.css`). Every
value from AWS (names, tags, ids) is untrusted: autoescape makes it text, never markup.
Rendering fetches nothing: the URL fetcher refuses any URL outside the templates directory
(and `data:` URLs), so a hostile value can never make the renderer reach the network.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from drwatch.reports.render_types import Attachment, RenderError

__all__ = [
    "TEMPLATES_DIR",
    "Attachment",
    "RenderError",
    "RenderResult",
    "environment",
    "format_bytes",
    "format_day",
    "format_duration",
    "format_percent",
    "format_thousands",
    "format_utc",
    "render_html",
    "render_pdf",
]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True, slots=True)
class RenderResult:
    path: Path
    pages: int
    size_bytes: int
    seconds: float
    sha256: str


def environment(templates_dir: Path = TEMPLATES_DIR) -> jinja2.Environment:
    """Autoescaping (HTML, SVG, XML) and strict: a missing context value is an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "svg", "xml", "j2"), default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        duration=format_duration,
        percent=format_percent,
        utc=format_utc,
        day=format_day,
        bytes=format_bytes,
        thousands=format_thousands,
    )
    return env


def render_html(
    template_name: str, context: Mapping[str, Any], templates_dir: Path = TEMPLATES_DIR
) -> str:
    try:
        return environment(templates_dir).get_template(template_name).render(context)
    except jinja2.TemplateError as error:
        raise RenderError(f"{template_name}: {error}") from error


def render_pdf(
    template_name: str,
    context: Mapping[str, Any],
    out: Path,
    attachments: Sequence[Attachment] = (),
    templates_dir: Path = TEMPLATES_DIR,
    progress: Callable[[str], None] | None = None,
) -> RenderResult:
    """Renders `template_name` with `context` to a PDF/A-3u file at `out`.

    `progress` receives WeasyPrint's steps (and every 50th page laid out) for long renders.
    """
    # WeasyPrint (with Pillow) is imported only here: `drwatch serve` never renders, and the
    # import alone costs it about 40 MB. `pdf` does not import this module (no cycle).
    from drwatch.reports.pdf import write_pdf

    started = time.perf_counter()
    html = render_html(template_name, context, templates_dir)
    pages, data = write_pdf(html, templates_dir, out, attachments, progress)
    return RenderResult(
        path=out,
        pages=pages,
        size_bytes=len(data),
        seconds=time.perf_counter() - started,
        sha256=hashlib.sha256(data).hexdigest(),
    )


# --- filters: how figures read in every report ---------------------------------------------


def format_duration(seconds: float | None) -> str:
    """3 h 12 min, 2 d 4 h, 45 s: the two largest units, rounded down."""
    if seconds is None:
        return "n/a"
    total = int(seconds)
    if total < 60:
        return f"{total} s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def format_percent(share: float | None, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage; never rounds up to 100% (99.96% shows 99.9%)."""
    if share is None:
        return "n/a"
    scale = 10**digits
    # Round away float noise first (0.29 * 1000 is 289.99...), then floor.
    floored = math.floor(round(share * 100 * scale, 6)) / scale
    return f"{floored:.{digits}f}%"


def format_utc(moment: datetime | int | None) -> str:
    if moment is None:
        return "n/a"
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_day(moment: datetime | int | None) -> str:
    if moment is None:
        return "n/a"
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def format_bytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def format_thousands(value: int) -> str:
    return f"{value:,}"
