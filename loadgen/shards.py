"""Shards of one run: ``--shard I/N`` splits a seed or a stream over N processes or hosts.

Shard ``I`` of ``N`` (0-based, ``0 <= I < N <= limits.MAX_SHARDS``) takes its share of every
total (rate, ``--max-ops``, burst, seed rows: the shares add up exactly) and owns the rows with
``id % N == I`` among those present when it starts and those it inserts, so shards never update
or delete one another's rows. Ids come from the tables' sequences (inserts and ``seed``'s
reserved ranges alike), so shards' ids — and the natural keys derived from them (CPF, CRM,
CNPJ) — never collide. A run's ``--seed`` gives every shard its own seed (``seed_for``), so the
whole N-shard run is reproducible from one number.

Where a shard comes from (``loadgen.config``): ``--shard I/N``, or ``JOB_COMPLETION_INDEX``
(a Kubernetes Indexed Job's pod index) with ``LOADGEN_SHARDS`` (N), or ``[shard] index/count``.

Pure; any process may import it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from loadgen import limits
from loadgen.errors import ConfigError

_SHARD_RE = re.compile(r"^\s*(?P<index>[0-9]+)\s*/\s*(?P<count>[0-9]+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based); ``Shard()`` is the whole run (0/1)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        problem = shard_problem(self.index, self.count)
        if problem:
            raise ConfigError(f"shard {self.index}/{self.count}: {problem}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def is_whole(self) -> bool:
        """One shard: the run is not split (nothing changes)."""
        return self.count == 1

    def share(self, total: int) -> int:
        """This shard's part of an integer total; the ``count`` parts add up to ``total``."""
        return total // self.count + (1 if self.index < total % self.count else 0)

    def rate_share(self, rate_per_s: float | None) -> float | None:
        """This shard's part of a total rate (ops/s); None (unlimited) stays None."""
        return None if rate_per_s is None else rate_per_s / self.count

    def seed_for(self, seed: int) -> int:
        """This shard's RNG seed, derived from the run's ``seed`` (0..MAX_SEED).

        The whole run (``count`` 1) keeps ``seed``; otherwise a hash of (seed, index, count),
        so shards draw independent streams and the same ``--seed`` reproduces every shard.
        """
        if self.is_whole:
            return seed
        digest = hashlib.blake2b(f"{seed}:{self.index}:{self.count}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big") & limits.MAX_SEED

    def owns(self, row_id: int) -> bool:
        """Whether rows with this id are this shard's to update or delete."""
        return row_id % self.count == self.index


def shard_problem(index: int, count: int) -> str | None:
    """Why (index, count) is not a shard (``"must be 0..N-1"``), or None when it is."""
    bad = limits.RANGES[("shard", "count")].problem(count)
    if bad:
        return f"the shard count {bad}"
    if not 0 <= index < count:
        return f"the shard index must be 0..{count - 1} (0-based, below the count {count})"
    return None


def parse_shard(text: str, *, flag: str = "--shard") -> Shard:
    """Parse ``"I/N"`` (e.g. ``"0/3"``) into a ``Shard``.

    Raises:
        ConfigError: not two integers separated by ``/``, or out of range (exit 2).
    """
    match = _SHARD_RE.match(str(text))
    if match is None:
        raise ConfigError(f"{flag}: invalid shard {text!r}; expected I/N, e.g. 0/3 (0-based)")
    index, count = int(match["index"]), int(match["count"])
    problem = shard_problem(index, count)
    if problem:
        raise ConfigError(f"{flag} {text.strip()}: {problem}")
    return Shard(index, count)


WHOLE = Shard()  # the run not split: shard 0 of 1
