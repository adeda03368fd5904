"""The WeasyPrint half of rendering: HTML to PDF/A-3u, local files only, with attachments.

Imported by `reports.render.render_pdf` when a report is rendered, never at start-up.
"""

from __future__ import annotations

import contextlib
import io
import logging
import mimetypes
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import weasyprint
from weasyprint.logger import PROGRESS_LOGGER
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from drwatch.reports.render_types import Attachment, RenderError

PDF_VARIANT = "pdf/a-3u"
_PAGE = re.compile(r"Page (\d+)")


class RefusedFetchError(FatalURLFetchingError):  # type: ignore[misc]  # untyped base
    """A template or value asked for a resource outside the templates directory."""


class LocalOnlyFetcher(URLFetcher):  # type: ignore[misc]  # weasyprint is untyped
    """Serves files under `root` and `data:` URLs; refuses everything else, fatally."""

    def __init__(self, root: Path) -> None:
        # fail_on_errors: a missing stylesheet or image stops the render instead of a warning.
        super().__init__(
            allowed_protocols=("file", "data"), allow_redirects=False, fail_on_errors=True
        )
        self._root = root.resolve()

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        parsed = urlparse(url)
        if parsed.scheme == "data":
            return super().fetch(url, headers)
        if parsed.scheme != "file":
            raise RefusedFetchError(f"refused to fetch {url!r}: reports render without network")
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(self._root):
            raise RefusedFetchError(f"refused to fetch {url!r}: outside {self._root}")
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": media_type}, 200)


def write_pdf(
    html: str,
    templates_dir: Path,
    out: Path,
    attachments: Sequence[Attachment],
    progress: Callable[[str], None] | None,
) -> tuple[int, bytes]:
    """Lays out `html` and writes the PDF to `out`: its page count and bytes.

    `progress` receives WeasyPrint's steps (and every 50th page laid out) for long renders.
    """
    fetcher = LocalOnlyFetcher(templates_dir)
    with _forwarding_progress(progress):
        try:
            document = weasyprint.HTML(
                string=html, base_url=templates_dir.as_uri() + "/", url_fetcher=fetcher
            ).render(pdf_variant=PDF_VARIANT)
        except RefusedFetchError as refused:  # a BaseException in WeasyPrint: make it an error
            raise RenderError(str(refused)) from refused
        data = _write(document, fetcher, attachments, out)
    return len(document.pages), data


def _write(
    document: Any, fetcher: LocalOnlyFetcher, attachments: Sequence[Attachment], out: Path
) -> bytes:
    embedded = [
        weasyprint.Attachment(
            file_obj=io.BytesIO(item.data),
            name=item.name,
            description=item.description,
            relationship=item.relationship,
            url_fetcher=fetcher,
        )
        for item in attachments
    ]
    data: bytes = document.write_pdf(pdf_variant=PDF_VARIANT, attachments=embedded)
    try:
        out.write_bytes(data)
    except OSError as error:
        raise RenderError(f"{out}: {error}") from error
    return data


class _ProgressHandler(logging.Handler):
    def __init__(self, progress: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self._progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        page = _PAGE.search(message)
        # One line per step; layout logs every page of every pass: every 50th of the first.
        if page is None or (int(page[1]) % 50 == 0 and "up-to-date" not in message):
            self._progress(f"pdf: {message}")


@contextlib.contextmanager
def _forwarding_progress(progress: Callable[[str], None] | None) -> Iterator[None]:
    if progress is None:
        yield
        return
    handler = _ProgressHandler(progress)
    level, propagate = PROGRESS_LOGGER.level, PROGRESS_LOGGER.propagate
    PROGRESS_LOGGER.addHandler(handler)
    PROGRESS_LOGGER.setLevel(logging.INFO)
    PROGRESS_LOGGER.propagate = False  # to `progress` only, not also to the process's logs
    try:
        yield
    finally:
        PROGRESS_LOGGER.removeHandler(handler)
        PROGRESS_LOGGER.setLevel(level)
        PROGRESS_LOGGER.propagate = propagate
