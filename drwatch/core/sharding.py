"""Split accounts between N exporter replicas: hash-mod of the account id, as Prometheus does.

The hash is the one Prometheus' `hashmod` relabel action uses (the low 64 bits of the MD5 of
the value, big-endian), so `hashmod` with `modulus: N` over a label holding the account id
puts every account on the same shard as `--shard I/N` does. It is stable across processes,
machines and Python versions (unlike `hash()`), so replicas agree without talking to each
other: every account lands on exactly one shard, and a replica's share only changes when N
does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

_SHARD_RE: Final = re.compile(r"([0-9]{1,4})/([0-9]{1,4})", re.ASCII)
MAX_SHARDS: Final = 1000


class HasAccountId(Protocol):
    # A read-only property, so frozen dataclasses such as AccountConfig match.
    @property
    def id(self) -> str: ...


_T = TypeVar("_T", bound=HasAccountId)


class ShardError(ValueError):
    """A malformed shard spec; the text says what is expected."""


def hashmod(value: str, modulus: int) -> int:
    """Prometheus' hashmod: low 64 bits of MD5(value), big-endian, modulo `modulus`."""
    # MD5 is used for spreading, not security, exactly as Prometheus does.
    digest = hashlib.md5(value.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `total` (0-based, like a StatefulSet pod ordinal)."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.total <= MAX_SHARDS:
            raise ShardError(f"the number of shards must be between 1 and {MAX_SHARDS}")
        if not 0 <= self.index < self.total:
            raise ShardError(f"shard index must be between 0 and {self.total - 1}")

    @property
    def label(self) -> str:
        return f"{self.index}/{self.total}"

    def owns(self, account_id: str) -> bool:
        return hashmod(account_id, self.total) == self.index

    def select(self, accounts: Iterable[_T]) -> tuple[_T, ...]:
        """The accounts this shard watches, in the given order."""
        return tuple(account for account in accounts if self.owns(account.id))


ALL: Final = Shard()


def parse_shard(text: str) -> Shard:
    """`"I/N"` (0 <= I < N) into a Shard; ShardError names the expected form otherwise."""
    match = _SHARD_RE.fullmatch(text.strip())
    if match is None:
        raise ShardError('must be "I/N" with 0 <= I < N, e.g. "0/3"')
    return Shard(int(match[1]), int(match[2]))
