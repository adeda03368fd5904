"""Check every sandbox response against botocore's output model.

botocore parses whatever the server sends without validating it, so a fake that omits a
required member or returns a string where AWS returns a list would pass silently and let a
collector depend on a shape real AWS never produces. Registering `validate_response` on each
client turns such a drift into an immediate `InvalidSandboxResponse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.model import OperationModel
from botocore.validate import ParamValidator

AFTER_CALL_EVENT = "after-call.*.*"


class InvalidSandboxResponse(Exception):  # noqa: N818 - the name other modules import
    """A sandbox response that real AWS could not have sent (per botocore's model)."""

    def __init__(self, operation: str, report: str) -> None:
        super().__init__(f"{operation}: response does not match botocore's model:\n{report}")
        self.operation = operation
        self.report = report


def validate_response(parsed: Mapping[str, Any], model: OperationModel, **kwargs: Any) -> None:
    """botocore `after-call` handler: raise `InvalidSandboxResponse` for a malformed response.

    Error responses are skipped: their shape comes from the error, not the output model.
    """
    if "Error" in parsed or model.output_shape is None:
        return
    if int(parsed.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)) >= 300:
        return  # an error page botocore could not read as an AWS error (HTML 404)
    # ResponseMetadata is added by botocore's parser and is not part of any output shape.
    body = {key: value for key, value in parsed.items() if key != "ResponseMetadata"}
    report = ParamValidator().validate(body, model.output_shape)
    if report.has_errors():
        raise InvalidSandboxResponse(model.name, report.generate_report())


def register_validation(client: Any) -> Any:
    """Register `validate_response` on a botocore/boto3 client and return the client."""
    client.meta.events.register(AFTER_CALL_EVENT, validate_response)
    return client
