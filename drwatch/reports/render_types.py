"""What both halves of rendering share: the files a PDF embeds, and the render error.

`render` (templates to HTML, and `render_pdf`) and `pdf` (WeasyPrint, loaded only when a
report is rendered) both import this module; neither imports the other at module level.
"""

from __future__ import annotations

from dataclasses import dataclass


class RenderError(Exception):
    """A report could not be rendered (template error, refused resource, write failure)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file embedded in the PDF (PDF/A-3 associated file), e.g. the JSON companion."""

    name: str
    data: bytes
    description: str
    # PDF/A-3 relationship of the file to the document: "Data" = the data it presents.
    relationship: str = "Data"
