"""AWS names several sections share: account ids, role ARNs, regions, tag keys, host names.

re.ASCII throughout: \\w and \\d would otherwise accept any Unicode letter or digit, which
AWS rejects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from drwatch.config.fields import (
    ConfigError,
    list_of,
    one_of,
    pattern,
    require,
    string,
    unique_list_of,
)

ACCOUNT_ID_RE: Final = re.compile(r"[0-9]{12}")
ROLE_ARN_RE: Final = re.compile(
    r"arn:aws(?:-cn|-us-gov)?:iam::(?P<account>[0-9]{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}",
    re.ASCII,
)
_EXTERNAL_ID_RE: Final = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
_SESSION_NAME_RE: Final = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
REGION_RE: Final = re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-[0-9]+", re.ASCII)
REGION_OR_ANY_RE: Final = re.compile(rf"\*|{REGION_RE.pattern}", re.ASCII)
HOSTNAME_RE: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", re.ASCII)
_TAG_KEY_MAX_LENGTH: Final = 128  # the AWS limit for tag keys

DEFAULT_SESSION_NAME: Final = "drwatch"
ROLE_ARN_EXAMPLE: Final = "arn:aws:iam::111111111111:role/drwatch-read"


def account_id(value: object, path: str) -> str:
    require(value, path)
    # An unquoted id is a YAML int: leading zeros vanish (or it turns octal).
    if isinstance(value, int) and not isinstance(value, bool):
        raise ConfigError(
            path, 'must be a quoted string such as "012345678901" (YAML numbers lose leading zeros)'
        )
    return pattern(value, path, ACCOUNT_ID_RE, "must be exactly 12 digits")


def account_ids(value: object, path: str) -> tuple[str, ...]:
    return list_of(value, path, account_id)


def role_arn(value: object, path: str, example: str = ROLE_ARN_EXAMPLE) -> str:
    """An IAM role ARN, in any account."""
    return pattern(value, path, ROLE_ARN_RE, f"must be an IAM role ARN such as {example}")


def role_arn_account(arn: str) -> str:
    """The account of a role ARN :func:`role_arn` accepted (``arn:aws:iam::<account>:role/...``)."""
    return arn.split(":")[4]


def external_id(value: object, path: str) -> str:
    # Messages here never include the value: external ids are shared secrets.
    return pattern(
        value,
        path,
        _EXTERNAL_ID_RE,
        "must be 2-1224 characters from letters, digits and _+=,.@:/-",
        empty_ok=True,
    )


def session_name(value: object, path: str) -> str:
    return pattern(
        value, path, _SESSION_NAME_RE, "must be 2-64 characters from letters, digits and _+=,.@-"
    )


def region(value: object, path: str) -> str:
    return pattern(value, path, REGION_RE, "must be an AWS region such as eu-west-1")


def regions(value: object, path: str) -> tuple[str, ...]:
    """The top-level ``regions`` list: region names, each once."""
    return unique_list_of(
        value,
        path,
        lambda item, item_path: pattern(
            item, item_path, REGION_RE, "must be an AWS region name such as eu-west-1"
        ),
    )


def tag_key(value: object, path: str) -> str:
    key = string(value, path)
    if len(key) > _TAG_KEY_MAX_LENGTH:
        raise ConfigError(path, f"must be at most {_TAG_KEY_MAX_LENGTH} characters")
    return key


def configured_region(value: object, path: str, configured: Sequence[str]) -> str:
    """One of the top-level ``regions`` (a target or flow is watched from that region)."""
    return one_of(
        require(value, path), path, configured, f"must be one of regions ({', '.join(configured)})"
    )
