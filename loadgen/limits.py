"""The documented range of every numeric value: one table read by config, seed and --help.

``RANGES`` maps ``(section, key)`` of a setting (``config/settings.toml``, its environment
names and the flags that override it) to its ``Range``. A few values that are command-line
arguments only (``scenario run --repeat``) have their own constant. The worker limits depend on
the machine: ``max_workers()`` is ``WORKERS_PER_CORE`` per usable CPU core.

Pure (it reads only ``loadgen.tables``); any process may call it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from loadgen import tables

WORKERS_PER_CORE = 4  # each worker is a Python process (~70 MB), CPU-bound at high rates
MAX_SEED_SCALE = 10_000.0  # scale 10,000 is 134 million rows with the default counts
# The seeder keeps every paciente and medico id of the run in memory (8 bytes each) and ships
# them with each piece it hands a worker; this bounds that, and any table's rows, per seed.
MAX_SEED_ROWS = 50_000_000
MAX_SEED = 2**63 - 1  # RNG seeds are non-negative 63-bit integers
MAX_RATE_PER_S = 1_000_000.0  # a million operations a second, all workers together
MIN_RATE_PER_S = 1.0 / 86_400  # one operation a day
MAX_DURATION_S = 365 * 86_400.0  # one year
MAX_BATCH_SIZE = 10_000  # operations in one transaction
MAX_REPEAT = 1_000  # scenario run --repeat
MIN_BIG_TXN_CHANGES = 10  # scenario big-transaction --big-txn-changes
MAX_BIG_TXN_CHANGES = 100_000_000
MAX_PHASES = 1_000  # --phases / [[stream.phase]]
MAX_SHARDS = 1_000  # --shard I/N: N processes or pods sharing one run


def max_workers() -> int:
    """The most worker processes a seed or stream may start here (``WORKERS_PER_CORE`` per
    CPU core this process may run on)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return WORKERS_PER_CORE * max(cores, 1)


@dataclass(frozen=True)
class Range:
    """Allowed values ``low <= v <= high`` (``low < v`` when ``low_open``), in ``unit``."""

    low: float
    high: float
    low_open: bool = False  # the low end is excluded (e.g. a scale must be > 0)
    unit: str = ""  # shown after the numbers: "s", "ms", "rows"

    def text(self) -> str:
        """For people: ``"1..65535"``, ``"> 0 and <= 10000"``, ``"0.1..3600 s"``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.low_open:
            return f"> {_number(self.low)} and <= {_number(self.high)}{unit}"
        return f"{_number(self.low)}..{_number(self.high)}{unit}"

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range (``"must be 1..65535"``), or None when it is in."""
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or value > self.high or not math.isfinite(value):
            return f"must be {self.text()}"
        return None


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}" if abs(value) >= 100_000 else str(int(value))
    return f"{value:g}"


def _workers() -> Range:
    return Range(1, max_workers())


RANGES: dict[tuple[str, str], Range] = {
    ("db", "port"): Range(1, 65_535),
    ("db", "connect_retry_s"): Range(0, 3_600, unit="s"),
    ("seed", "scale"): Range(0, MAX_SEED_SCALE, low_open=True),
    ("seed", "workers"): _workers(),
    ("seed", "block_rows"): Range(1, 1_000_000, unit="rows"),
    ("seed", "seed"): Range(0, MAX_SEED),
    ("stream", "workers"): _workers(),
    ("stream", "burst"): Range(1, 1_000_000, unit="operations"),
    ("stream", "max_ops"): Range(1, 10**12),
    ("stream", "batch_size"): Range(1, MAX_BATCH_SIZE, unit="operations"),
    ("stream", "seed"): Range(0, MAX_SEED),
    ("stream", "report_interval_s"): Range(0.1, 3_600, unit="s"),
    ("stream", "interval_s"): Range(0, 86_400, unit="s"),
    ("stream", "max_jitter_ms"): Range(0, 3_600_000, unit="ms"),
    ("stream", "scenario_weight"): Range(0, 1, low_open=True),
    ("stream", "metrics_port"): Range(1, 65_535),
    ("stream", "markers_s"): Range(0.1, 3_600, unit="s"),  # --markers: s between markers
    ("logging", "backup_count"): Range(0, 1_000),
    ("shard", "count"): Range(1, MAX_SHARDS),  # LOADGEN_SHARDS, the N of --shard I/N
    ("shard", "index"): Range(0, MAX_SHARDS - 1),  # JOB_COMPLETION_INDEX, the I (0-based)
}
SEED_ROWS_RANGE = Range(0, MAX_SEED_ROWS, unit="rows")  # seed.<table>: rows at scale 1
PHASE_DURATION_RANGE = Range(0.1, MAX_DURATION_S, unit="s")  # one phase of --phases
# a phase's rate: 0 (idle) or one a day .. MAX_RATE_PER_S (parse_rate's range)


def range_of(section: str, key: str) -> Range | None:
    """The range of setting ``section.key`` (seed table counts included), or None."""
    found = RANGES.get((section, key))
    if found is None and section == "seed" and key in _SEED_TABLE_KEYS:
        return SEED_ROWS_RANGE
    return found


_SEED_TABLE_KEYS = frozenset(t.name for t in tables.TABLES if not t.is_lookup)


def help_range(section: str, key: str) -> str:
    """``"range 1..10000"`` for a flag's --help (empty when the value has no range)."""
    found = range_of(section, key)
    return f"range {found.text()}" if found else ""
