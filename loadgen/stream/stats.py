"""Mergeable run statistics: a log-linear latency histogram and per-interval counters.

``LatencyHistogram`` is HDR-style: values (ns) below 128 get one bucket each; above, every
power of two is split into 64 linear sub-buckets, so any recorded value is reported within
1/128 (< 0.8 %) of itself. Counts live in a fixed ``int64`` numpy array, so merging is one
vector add and two histograms from different processes always line up. Pickling ships only
the non-zero buckets (a typical delta is a few hundred bytes).

``IntervalStats`` is what a worker accumulates between two reports and what the coordinator
sums: workers swap theirs out and send it as a delta (locust's ``get_stripped_report``,
psycopg's ``pop_stats``). Pure: no clocks, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loadgen.ledger.changes import RowChange

_SUB_BITS = 7
_SUB_COUNT = 1 << _SUB_BITS  # 128 exact buckets for 0..127
_HALF = _SUB_COUNT >> 1  # 64 linear sub-buckets per power of two above that
_MAX_BITS = 46  # 2**46 ns ~ 19.5 h: larger values land in the last bucket (max stays exact)
NUM_BUCKETS = _SUB_COUNT + (_MAX_BITS - _SUB_BITS) * _HALF
# what a histogram's JSON must carry to be merged with this version's (bucket layout)
HISTOGRAM_LAYOUT: dict[str, Any] = {
    "layout": "log-linear",
    "sub_bits": _SUB_BITS,
    "max_bits": _MAX_BITS,
}


def bucket_index(value: int) -> int:
    """Return the bucket of one int value (negative values count as 0)."""
    if value < _SUB_COUNT:
        return max(value, 0)
    num_bits = value.bit_length()
    if num_bits > _MAX_BITS:
        return NUM_BUCKETS - 1
    shift = num_bits - _SUB_BITS
    return _SUB_COUNT + (shift - 1) * _HALF + ((value >> shift) - _HALF)


def _bucket_indices(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    v = np.clip(values, 0, (1 << _MAX_BITS) - 1)
    # frexp is exact for integers below 2**53: v = m * 2**exp with exp == bit_length(v)
    _, exp = np.frexp(v.astype(np.float64))
    shift = np.maximum(exp.astype(np.int64) - _SUB_BITS, 1)
    big = _SUB_COUNT + (shift - 1) * _HALF + ((v >> shift) - _HALF)
    return np.where(v < _SUB_COUNT, v, big)


def _bucket_bounds(index: int) -> tuple[int, int]:
    """Lowest and highest value (inclusive) that fall into bucket ``index``."""
    if index < _SUB_COUNT:
        return index, index
    j = index - _SUB_COUNT
    shift = j // _HALF + 1
    mantissa = j % _HALF + _HALF
    return mantissa << shift, ((mantissa + 1) << shift) - 1


class LatencyHistogram:
    """Counts of int values (ns by convention) in fixed log-linear buckets; mergeable, picklable.

    Not thread-safe; a worker records from its one loop thread.
    """

    __slots__ = ("counts", "count", "sum", "min", "max")

    def __init__(self) -> None:
        self.counts: npt.NDArray[np.int64] = np.zeros(NUM_BUCKETS, dtype=np.int64)
        self.count = 0  # number of recorded values
        self.sum = 0  # exact sum of recorded values (Python int, no overflow)
        self.min = 0  # smallest recorded value; 0 while empty
        self.max = 0  # largest recorded value; 0 while empty

    def record(self, value: int) -> None:
        """Record one value (ns; negatives are clamped to 0)."""
        value = max(int(value), 0)
        self.counts[bucket_index(value)] += 1
        self.min = value if self.count == 0 else min(self.min, value)
        self.max = max(self.max, value)
        self.count += 1
        self.sum += value

    def record_many(self, values: npt.ArrayLike) -> None:
        """Record an array of values (ns), vectorised; shape ``(n,)``, any int dtype."""
        arr = np.maximum(np.asarray(values, dtype=np.int64).ravel(), 0)
        if arr.size == 0:
            return
        np.add.at(self.counts, _bucket_indices(arr), 1)
        lo, hi = int(arr.min()), int(arr.max())
        self.min = lo if self.count == 0 else min(self.min, lo)
        self.max = max(self.max, hi)
        self.count += int(arr.size)
        self.sum += int(arr.sum())

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts into this histogram (in place)."""
        if other.count == 0:
            return
        self.counts += other.counts
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.sum += other.sum

    def percentile(self, q: float) -> int:
        """Return the value at percentile ``q`` (0..100), within the bucket's resolution.

        Returns 0 for an empty histogram; ``q >= 100`` returns the exact maximum.
        """
        if self.count == 0:
            return 0
        if q >= 100:
            return self.max
        rank = max(1, int(np.ceil(q / 100.0 * self.count)))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        lo, hi = _bucket_bounds(index)
        return min(max((lo + hi) // 2, self.min), self.max)

    def mean(self) -> float:
        """Return the mean of the recorded values (0.0 when empty)."""
        return self.sum / self.count if self.count else 0.0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return np.array_equal(self.counts, other.counts) and (
            self.count,
            self.sum,
            self.min,
            self.max,
        ) == (other.count, other.sum, other.min, other.max)

    def to_json(self) -> dict[str, Any]:
        """The exact histogram as JSON (``HISTOGRAM_LAYOUT`` plus the non-zero buckets as
        ``[[index, count], ...]``, and count, sum, min, max in ns): ``from_json`` gives it back
        equal, so summaries of several processes or hosts merge exactly."""
        nonzero = np.flatnonzero(self.counts)
        return {
            **HISTOGRAM_LAYOUT,
            "count": self.count,
            "sum_ns": self.sum,
            "min_ns": self.min,
            "max_ns": self.max,
            "buckets": [[int(i), int(self.counts[i])] for i in nonzero],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """The histogram ``to_json`` wrote. Raises ValueError: another layout, or malformed."""
        layout = {k: data.get(k) for k in HISTOGRAM_LAYOUT}
        if layout != HISTOGRAM_LAYOUT:
            raise ValueError(f"histogram layout {layout} is not this version's {HISTOGRAM_LAYOUT}")
        hist = cls()
        try:
            for index, count in data["buckets"]:
                if not (0 <= int(index) < NUM_BUCKETS) or int(count) < 0:
                    raise ValueError(f"bucket [{index}, {count}] out of range")
                hist.counts[int(index)] += int(count)
            hist.count, hist.sum = int(data["count"]), int(data["sum_ns"])
            hist.min, hist.max = int(data["min_ns"]), int(data["max_ns"])
        except KeyError as exc:
            raise ValueError(f"malformed histogram: no {exc.args[0]!r}") from None
        except TypeError:
            raise ValueError("malformed histogram: a field has the wrong type") from None
        if int(hist.counts.sum()) != hist.count:
            raise ValueError(f"histogram buckets add up to {hist.counts.sum()}, not {hist.count}")
        return hist

    def __getstate__(self) -> dict[str, Any]:
        nonzero = np.flatnonzero(self.counts)
        return {
            "index": nonzero.astype(np.int32),
            "value": self.counts[nonzero],
            "scalars": (self.count, self.sum, self.min, self.max),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.counts = np.zeros(NUM_BUCKETS, dtype=np.int64)
        self.counts[state["index"]] = state["value"]
        self.count, self.sum, self.min, self.max = state["scalars"]


@dataclass
class IntervalStats:
    """Counters and histograms for one reporting interval of one worker, or a sum of them.

    A worker fills one, swaps it for an empty one at each report and sends the full one as a
    ``StatsDelta``; the coordinator merges deltas into an interval total and a run total.
    """

    ops_by_name: Counter[str] = field(default_factory=Counter)  # committed ops that changed rows
    no_ops_by_name: Counter[str] = field(default_factory=Counter)  # committed, 0 rows changed
    rows_by_table: Counter[tuple[str, str]] = field(default_factory=Counter)  # (table, c/u/d)
    errors_by_class: Counter[str] = field(default_factory=Counter)  # SQLSTATE class -> count
    num_txns: int = 0  # committed transactions
    num_failed_ops: int = 0  # operations in transactions that did not commit
    num_retried: int = 0  # transactions retried after serialization failure or deadlock
    num_reconnects: int = 0  # successful reconnections after a lost connection
    num_in_doubt: int = 0  # ops of commits whose outcome could not be resolved
    num_resolved: int = 0  # ops of in-doubt commits resolved (either way) via txid_status
    num_dropped: int = 0  # token-bucket slots dropped because the bucket overflowed
    num_skipped: int = 0  # slots with no operation possible (every candidate row used up)
    latency_ns: LatencyHistogram = field(default_factory=LatencyHistogram)  # commit end - slot
    lag_ns: LatencyHistogram = field(default_factory=LatencyHistogram)  # txn start - slot
    # scenario steps (--profile cdc-edge): kept apart so a step's several transactions do not
    # skew the hospital operations' latency; their lag is in ``lag_ns`` like any slot's
    scenario_latency_ns: LatencyHistogram = field(default_factory=LatencyHistogram)  # end - slot
    num_scenario_changes: int = 0  # row changes (and truncates) committed by scenario steps

    @property
    def num_ops(self) -> int:
        """Committed operations that changed rows (no-ops apart: ``num_no_ops``)."""
        return sum(self.ops_by_name.values())

    @property
    def num_no_ops(self) -> int:
        """Committed operations whose statement changed no row (counted apart, never a change)."""
        return sum(self.no_ops_by_name.values())

    @property
    def num_errors(self) -> int:
        """Errors of every SQLSTATE class."""
        return sum(self.errors_by_class.values())

    def record_commit(
        self,
        op_names: Sequence[str],
        changes: Iterable[RowChange],
        slots_ns: Sequence[int] | npt.NDArray[np.int64],
        start_ns: int,
        end_ns: int,
        no_ops: Mapping[str, int] | None = None,
    ) -> None:
        """Count one committed transaction.

        Args:
            op_names: the operations in it, one per slot (no-ops included).
            changes: the row changes it made (counted per table and kind).
            no_ops: per operation name, how many of ``op_names`` changed no row (counted in
                ``no_ops_by_name`` instead of ``ops_by_name``).
            slots_ns: each operation's scheduled time, monotonic ns, shape ``(len(op_names),)``.
            start_ns: when the transaction (its first attempt) started, monotonic ns.
            end_ns: when COMMIT returned, monotonic ns.
        """
        self.ops_by_name.update(op_names)
        if no_ops:
            self.ops_by_name.subtract(no_ops)
            self.no_ops_by_name.update(no_ops)
            self.ops_by_name = +self.ops_by_name
        self.rows_by_table.update((c.table, c.op) for c in changes)
        self.num_txns += 1
        slots = np.asarray(slots_ns, dtype=np.int64)
        if slots.size == 1:
            self.latency_ns.record(end_ns - int(slots[0]))
            self.lag_ns.record(start_ns - int(slots[0]))
        else:
            self.latency_ns.record_many(end_ns - slots)
            self.lag_ns.record_many(start_ns - slots)

    def record_scenario_step(
        self,
        op_name: str,
        num_txns: int,
        num_changes: int,
        slot_ns: int,
        start_ns: int,
        end_ns: int,
    ) -> None:
        """Count one completed scenario step (one operation, ``num_txns`` transactions).

        Args:
            op_name: ``scenario:<name>``.
            num_txns: transactions it committed; num_changes: row changes they made (the
                engine passes 0, 0: it counts each as it commits, ``record_scenario_txn``).
            slot_ns, start_ns, end_ns: its scheduled slot, start and end, monotonic ns.
        """
        self.ops_by_name[op_name] += 1
        self.num_txns += num_txns
        self.num_scenario_changes += num_changes
        self.lag_ns.record(start_ns - slot_ns)
        self.scenario_latency_ns.record(end_ns - slot_ns)

    def record_scenario_txn(self, num_changes: int) -> None:
        """Count one committed transaction of a scenario step (as it commits)."""
        self.num_txns += 1
        self.num_scenario_changes += num_changes

    def record_error(self, sqlstate_class: str, num_ops: int = 0) -> None:
        """Count one error of ``sqlstate_class`` (two chars, e.g. ``"23"``) losing ``num_ops``."""
        self.errors_by_class[sqlstate_class] += 1
        self.num_failed_ops += num_ops

    def merge(self, other: IntervalStats) -> None:
        """Add ``other`` into this object (in place)."""
        self.ops_by_name.update(other.ops_by_name)
        self.no_ops_by_name.update(other.no_ops_by_name)
        self.rows_by_table.update(other.rows_by_table)
        self.errors_by_class.update(other.errors_by_class)
        self.num_txns += other.num_txns
        self.num_failed_ops += other.num_failed_ops
        self.num_retried += other.num_retried
        self.num_reconnects += other.num_reconnects
        self.num_in_doubt += other.num_in_doubt
        self.num_resolved += other.num_resolved
        self.num_dropped += other.num_dropped
        self.num_skipped += other.num_skipped
        self.latency_ns.merge(other.latency_ns)
        self.lag_ns.merge(other.lag_ns)
        self.scenario_latency_ns.merge(other.scenario_latency_ns)
        self.num_scenario_changes += other.num_scenario_changes

    def is_empty(self) -> bool:
        """True when nothing at all was recorded."""
        return (
            self.num_txns == 0
            and not self.errors_by_class
            and not self.no_ops_by_name
            and self.num_retried == self.num_reconnects == self.num_in_doubt == 0
            and self.num_resolved == self.num_dropped == self.num_failed_ops == 0
            and self.num_skipped == 0
            and self.lag_ns.count == 0
            and self.scenario_latency_ns.count == 0
        )


def merged(parts: Iterable[IntervalStats]) -> IntervalStats:
    """Return a new ``IntervalStats`` holding the sum of ``parts``."""
    total = IntervalStats()
    for part in parts:
        total.merge(part)
    return total
