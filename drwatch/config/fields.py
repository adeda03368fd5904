"""The field validators every section uses, written once.

Each takes the raw YAML value and its dotted path (``collectors.rds.interval``) and returns
the checked value or raises :class:`ConfigError` naming that path. Section modules combine
them; none of them repeats a "string, then pattern, then error" check of its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from types import MappingProxyType
from typing import Final, TypeVar

_T = TypeVar("_T")

# Field used for problems with the document as a whole (e.g. a YAML list).
ROOT_FIELD: Final = "<root>"

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_DURATION_RE: Final = re.compile(
    rf"(?:(?P<d>{_NUMBER})d)?(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?",
    re.ASCII,
)
_PLAIN_NUMBER_RE: Final = re.compile(_NUMBER, re.ASCII)
_PLAIN_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
# Tier, data class and resource class names: lower case, because resources are assigned by
# a tag value that is lower-cased.
NAME_RE: Final = re.compile(r"[a-z0-9_-]+", re.ASCII)
_UNIT_SECONDS: Final[Mapping[str, float]] = MappingProxyType(
    {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
)
_DURATION_PROBLEM: Final = 'must be a duration such as 300, "5m" or "1h"'


class ConfigError(Exception):
    """A config problem; ``str()`` is ``'<dotted.field.path>: <problem>'``.

    Example: ``collectors.rds.interval: must be >= 60``. List items appear as
    ``accounts[1].role_arn``; whole-file problems use the file path as field.
    """

    field: str
    problem: str

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        # The default reduce would call ConfigError(message) with one argument.
        return (ConfigError, (self.field, self.problem))


# --- Paths. -------------------------------------------------------------------------------


def child(path: str, key: str) -> str:
    """``path.key``; odd keys ("", "a.b", "x y") are quoted so the path stays unambiguous."""
    if not _PLAIN_KEY_RE.fullmatch(key):
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


# --- Mappings and lists. ------------------------------------------------------------------


def mapping(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, "must be a mapping")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(path, f"keys must be strings, found {key!r}")
    return value


def section(value: object, path: str, allowed: Sequence[str]) -> Mapping[str, object]:
    """A mapping whose keys are all in ``allowed``; ``None`` reads as empty."""
    fields = mapping({} if value is None else value, path)
    for key in fields:
        if key not in allowed:
            raise ConfigError(
                child(path, key), f"unknown field; expected one of {', '.join(allowed)}"
            )
    return fields


def require(value: object, path: str) -> object:
    if value is None:
        raise ConfigError(path, "required")
    return value


def optional(
    fields: Mapping[str, object],
    path: str,
    key: str,
    default: _T,
    parse: Callable[[object, str], _T],
) -> _T:
    """The parsed field, or its default when missing or null (null means default)."""
    value = fields.get(key)
    return default if value is None else parse(value, child(path, key))


def required(
    fields: Mapping[str, object], path: str, key: str, parse: Callable[[object, str], _T]
) -> _T:
    """The parsed field; ``<path>.<key>: required`` when missing or null."""
    key_path = child(path, key)
    return parse(require(fields.get(key), key_path), key_path)


def list_value(value: object, path: str) -> Sequence[object]:
    """A non-empty YAML list (``None`` is "required")."""
    if value is None:
        raise ConfigError(path, "required")
    # str is a Sequence too, but a bare string here is a mistake, not a list.
    if not isinstance(value, (list, tuple)):
        raise ConfigError(path, "must be a list")
    if not value:
        raise ConfigError(path, "must not be empty")
    return value


def list_of(value: object, path: str, parse: Callable[[object, str], _T]) -> tuple[_T, ...]:
    """A non-empty list, each item parsed with its ``path[index]``."""
    return tuple(
        parse(entry, item(path, index)) for index, entry in enumerate(list_value(value, path))
    )


def unique_list_of(value: object, path: str, parse: Callable[[object, str], _T]) -> tuple[_T, ...]:
    """Like :func:`list_of`, refusing an item equal to an earlier one as it is reached."""
    items: list[_T] = []
    for index, entry in enumerate(list_value(value, path)):
        parsed = parse(entry, item(path, index))
        if parsed in items:
            raise ConfigError(item(path, index), f"duplicate of {item(path, items.index(parsed))}")
        items.append(parsed)
    return tuple(items)


def reject_duplicates(keys: Sequence[Hashable], path: str, field: str | None = None) -> None:
    """Refuse the first list item whose key repeats an earlier one's.

    The error names ``path[i]`` (or ``path[i].field``) and the earlier item the same way.
    """
    first_index: dict[Hashable, int] = {}
    for index, key in enumerate(keys):
        if key in first_index:
            at, earlier = item(path, index), item(path, first_index[key])
            if field is not None:
                at, earlier = child(at, field), child(earlier, field)
            raise ConfigError(at, f"duplicate of {earlier}")
        first_index[key] = index


def named(
    value: object,
    path: str,
    what: str,
    parse: Callable[[object, str], _T],
    *,
    at_least_one: bool = True,
) -> Mapping[str, _T]:
    """A mapping of lower-case names (tiers, data classes) to parsed items."""
    given = mapping(value, path)
    if at_least_one and not given:
        raise ConfigError(path, f"must define at least one {what}")
    items: dict[str, _T] = {}
    for name, entry in given.items():
        item_path = child(path, name)
        if not NAME_RE.fullmatch(name):
            raise ConfigError(item_path, f"{what} names must match [a-z0-9_-]+")
        items[name] = parse(entry, item_path)
    return MappingProxyType(items)


# --- Scalars. -----------------------------------------------------------------------------


def text(value: object, path: str) -> str:
    """Any string, the empty one included."""
    if not isinstance(value, str):
        raise ConfigError(path, "must be a string")
    return value


def string(value: object, path: str) -> str:
    """A string that is not empty or blank."""
    result = text(value, path)
    if not result.strip():
        raise ConfigError(path, "must not be empty")
    return result


def pattern(
    value: object, path: str, regex: re.Pattern[str], problem: str, *, empty_ok: bool = False
) -> str:
    """A string the whole of which matches ``regex``; else ``problem`` at ``path``.

    Blank strings are refused as "must not be empty" unless ``empty_ok``, which leaves
    them to the pattern (and its message).
    """
    result = text(value, path) if empty_ok else string(value, path)
    if not regex.fullmatch(result):
        raise ConfigError(path, problem)
    return result


def one_of(value: object, path: str, allowed: Sequence[str], problem: str | None = None) -> str:
    """A string from ``allowed``; else ``problem`` (default: "must be one of ...")."""
    result = string(value, path)
    if result not in allowed:
        raise ConfigError(path, problem or f"must be one of {', '.join(allowed)}")
    return result


def known(value: object, path: str, names: Mapping[str, object], what: str) -> str:
    """A key of ``names`` (a tier, a data class); else 'unknown <what> "<value>"; ...'."""
    result = string(value, path)
    if result not in names:
        raise ConfigError(path, f'unknown {what} "{result}"; expected one of {", ".join(names)}')
    return result


def known_or_default(
    value: object, path: str, names: Mapping[str, object], what: str, default: str, where: str
) -> str:
    """:func:`known`, or ``default`` when null; that must then be one of ``names`` (``where``
    says which field defines them)."""
    if value is None:
        if default not in names:
            raise ConfigError(
                path, f'required because {where} has no "{default}"; use one of {", ".join(names)}'
            )
        return default
    return known(value, path, names, what)


def boolean(value: object, path: str) -> bool:
    # Only real YAML booleans: "true" in quotes or 1 is almost always a typo.
    if not isinstance(value, bool):
        raise ConfigError(path, "must be true or false")
    return value


def integer(value: object, path: str, minimum: int, maximum: int | None = None) -> int:
    # bool is an int subclass, but `true` is never meant as a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, "must be an integer")
    if maximum is not None and not minimum <= value <= maximum:
        raise ConfigError(path, f"must be between {minimum} and {maximum}")
    if value < minimum:
        raise ConfigError(path, f"must be >= {minimum}")
    return value


def bounded_integer(minimum: int, maximum: int | None = None) -> Callable[[object, str], int]:
    """An :func:`integer` parser with its bounds fixed, for :func:`optional`."""
    return lambda value, path: integer(value, path, minimum, maximum)


def share(value: object, path: str) -> float:
    """A share such as 0.99 (99%)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, "must be a number between 0 and 1, e.g. 0.99")
    result = float(value)
    if not 0.0 <= result <= 1.0:
        raise ConfigError(path, "must be between 0 and 1, e.g. 0.99")
    return result


def price(value: object, path: str) -> float:
    """US dollars: a finite number >= 0 (0 is a valid price, e.g. a free allowance)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, "must be a number of US dollars, e.g. 0.05")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(path, "must be a finite number >= 0")
    return float(value)


# --- Durations. ---------------------------------------------------------------------------


def duration(value: object, path: str) -> float:
    """Seconds from a number or from text such as "90s", "5m", "1h30m", "2d"."""
    if isinstance(value, bool):
        raise ConfigError(path, _DURATION_PROBLEM)
    if isinstance(value, (int, float)):
        seconds = _number_to_float(value, path)
    elif isinstance(value, str):
        seconds = _duration_text_to_seconds(value.strip(), path)
    else:
        raise ConfigError(path, _DURATION_PROBLEM)
    if not math.isfinite(seconds):
        raise ConfigError(path, _DURATION_PROBLEM)
    if seconds < 0:
        raise ConfigError(path, "must not be negative")
    return seconds


def _number_to_float(value: float, path: str) -> float:
    try:
        return float(value)
    except OverflowError as exc:  # an int with hundreds of digits
        raise ConfigError(path, _DURATION_PROBLEM) from exc


def _duration_text_to_seconds(text: str, path: str) -> float:
    if _PLAIN_NUMBER_RE.fullmatch(text):
        return float(text)
    match = _DURATION_RE.fullmatch(text)
    # An empty string matches with every unit absent.
    if match is None or not any(match.groupdict().values()):
        raise ConfigError(path, _DURATION_PROBLEM)
    return sum(
        float(amount) * _UNIT_SECONDS[unit]
        for unit, amount in match.groupdict().items()
        if amount is not None
    )


def positive_duration(value: object, path: str) -> float:
    seconds = duration(value, path)
    if seconds == 0:
        raise ConfigError(path, "must be > 0")
    return seconds


def whole_days(value: object, path: str) -> int:
    """A duration of at least one day, in whole days ("90d", "2160h")."""
    seconds = duration(value, path)
    if seconds < 86400 or seconds % 86400:
        raise ConfigError(path, 'must be a whole number of days, at least one, e.g. "90d"')
    return int(seconds // 86400)


def format_seconds(seconds: float) -> str:
    """Seconds as a valid duration literal, e.g. 900.0 -> "900s"."""
    return f"{seconds:g}s" if seconds != int(seconds) else f"{int(seconds)}s"
