"""Answers that differ from the happy path: records with a field removed, non-AWS error pages.

Used by the fault middleware (faults.py) for rules of kind "remove_field" and "html":

- "remove_field": the request goes to moto; in its answer, `field` is removed from every
  record (a JSON object or an XML element) of the operation, or only from the record that
  has a direct member equal to `record` (its id, name or ARN). The rest of the answer is
  untouched, so botocore still accepts it when the field is optional in the model.
- "html": an HTML page with the rule's `http_status` instead of an AWS error, as a proxy or
  an endpoint that lacks the operation answers.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from drwatch.sandbox.awsprotocol import HttpReply

HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>{status} Not Found</title></head>"
    "<body><h1>Not Found</h1><p>The requested URL was not found on this server.<br>"
    + "<!-- padding -->" * 40
    + "</body></html>\n"
)


def html_reply(status: int) -> HttpReply:
    body = HTML_PAGE.format(status=status).encode()
    return HttpReply(status, (("Content-Type", "text/html; charset=utf-8"),), body)


def remove_fields(
    body: bytes, content_type: str, removals: Iterable[tuple[str, str | None]]
) -> bytes:
    """`body` with each (field, record) removal applied; bodies it cannot parse unchanged."""
    removals = list(removals)
    if not removals or not body:
        return body
    if "json" in content_type or body.lstrip()[:1] in (b"{", b"["):
        try:
            data = json.loads(body)
        except ValueError:
            return body
        for field, record in removals:
            _remove_json(data, field, record)
        return json.dumps(data).encode()
    try:
        root = ET.fromstring(body)  # noqa: S314 - moto's answer
    except ET.ParseError:
        return body
    for field, record in removals:
        _remove_xml(root, field, record)
    rewritten: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return rewritten


def _remove_json(value: Any, field: str, record: str | None) -> None:
    if isinstance(value, dict):
        if field in value and _is_record(value.values(), record):
            del value[field]
        for child in value.values():
            _remove_json(child, field, record)
    elif isinstance(value, list):
        for child in value:
            _remove_json(child, field, record)


def _is_record(members: Iterable[Any], record: str | None) -> bool:
    return record is None or any(isinstance(m, str) and m == record for m in members)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _remove_xml(element: ET.Element, field: str, record: str | None) -> None:
    children = list(element)
    doomed = [c for c in children if _local(c.tag) == field]
    if doomed and _is_record(((c.text or "").strip() for c in children), record):
        for child in doomed:
            element.remove(child)
    for child in element:
        _remove_xml(child, field, record)
