"""Each worker's committed counts in shared memory, exact even when the worker is SIGKILLed.

The stats a worker sends every report interval (``StatsDelta``) are lost when it dies; its
*tally* is not: a small int64 array in shared memory (``multiprocessing.RawArray``, created by
the coordinator) that the worker updates around every COMMIT with the same intent/outcome
protocol as the ledger:

- ``begin(txid, counts)`` before COMMIT: the transaction's counts, marked pending;
- ``commit()`` after COMMIT returned: the counts join the committed total;
- ``abort()`` when it did not commit.

The committed total is double-buffered: ``commit`` writes the inactive copy, stamps it with the
txid it applied, then flips one word; so a worker killed at any instruction leaves either the
old total with the transaction still pending or the new one with it applied, never half. After
the worker died, the coordinator reads the total and, for a pending transaction, asks the server
(``pg_xact_status``) whether it committed. Single writer (the worker's loop thread); the
coordinator reads only once the process has exited.

What is counted (``TallyLayout``): committed operations and no-ops per operation name, row
changes per (table, op), transactions, and scenario row changes — the counters of
``IntervalStats`` that must equal the ledger and the database. Latencies are not in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loadgen import tables
from loadgen.ledger.changes import RowChange
from loadgen.stream.stats import IntervalStats

_OPS = ("c", "u", "d")
_HEAD = 5  # active copy, pending flag, pending txid, txid applied by copy 0, by copy 1
_ACTIVE, _PENDING, _PENDING_TXID, _APPLIED0 = 0, 1, 2, 3
_NUM_TXNS, _NUM_SCENARIO_CHANGES = 0, 1  # the scalars, first in a counts vector

Counts = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TallyLayout:
    """Which counter sits where in a counts vector; built by the coordinator, sent to workers."""

    op_names: tuple[str, ...]  # every operation name the run can commit (scenario steps too)
    tables: tuple[str, ...] = tables.TABLE_NAMES
    _op: dict[str, int] = field(init=False, repr=False, compare=False)
    _row: dict[tuple[str, str], int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = 2
        object.__setattr__(self, "_op", {n: base + i for i, n in enumerate(self.op_names)})
        base += 2 * len(self.op_names)  # committed ops, then no-ops
        rows = {(t, op): base + i for i, (t, op) in enumerate(_row_keys(self.tables))}
        object.__setattr__(self, "_row", rows)

    def __getstate__(self) -> dict[str, Any]:
        return {"op_names": self.op_names, "tables": self.tables}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "op_names", state["op_names"])
        object.__setattr__(self, "tables", state["tables"])
        self.__post_init__()

    @property
    def size(self) -> int:
        return 2 + 2 * len(self.op_names) + 3 * len(self.tables)

    def counts(
        self,
        ops: Mapping[str, int] | None = None,
        no_ops: Mapping[str, int] | None = None,
        changes: Iterable[RowChange] = (),
        *,
        num_txns: int = 0,
        num_scenario_changes: int = 0,
    ) -> Counts:
        """A counts vector: committed operations that changed rows (``ops``) and no-ops per
        name, ``changes`` per (table, op) (other tables and truncates are not counted), and
        the scalars. Shape ``(size,)``, int64."""
        vec = np.zeros(self.size, np.int64)
        vec[_NUM_TXNS] = num_txns
        vec[_NUM_SCENARIO_CHANGES] = num_scenario_changes
        op, row, n = self._op, self._row, len(self.op_names)
        for name, count in (ops or {}).items():
            vec[op[name]] += count
        for name, count in (no_ops or {}).items():
            vec[op[name] + n] += count
        for ch in changes:
            i = row.get((ch.table, ch.op))
            if i is not None:
                vec[i] += 1
        return vec

    def of_stats(self, stats: IntervalStats) -> Counts:
        """The counts vector of ``stats``' counters."""
        vec = self.counts(
            stats.ops_by_name,
            stats.no_ops_by_name,
            num_txns=stats.num_txns,
            num_scenario_changes=stats.num_scenario_changes,
        )
        for key, count in stats.rows_by_table.items():
            if key in self._row:
                vec[self._row[key]] += count
        return vec

    def add_to(self, stats: IntervalStats, vec: Counts) -> None:
        """Add a counts vector into ``stats``' counters (in place)."""
        n = len(self.op_names)
        stats.num_txns += int(vec[_NUM_TXNS])
        stats.num_scenario_changes += int(vec[_NUM_SCENARIO_CHANGES])
        for name, i in self._op.items():
            if vec[i]:
                stats.ops_by_name[name] += int(vec[i])
            if vec[i + n]:
                stats.no_ops_by_name[name] += int(vec[i + n])
        for key, i in self._row.items():
            if vec[i]:
                stats.rows_by_table[key] += int(vec[i])


def _row_keys(table_names: Sequence[str]) -> list[tuple[str, str]]:
    return [(t, op) for t in table_names for op in _OPS]


def shared_size(layout: TallyLayout) -> int:
    """int64 slots of one worker's shared array (header, two totals, the pending counts)."""
    return _HEAD + 3 * layout.size


class CommitTally:
    """One worker's tally over its shared array (``multiprocessing.RawArray('q', n)``).

    The worker calls ``begin``/``commit``/``abort``/``add`` from its loop thread; the
    coordinator calls ``read`` after the process exited.
    """

    def __init__(self, layout: TallyLayout, shared: Any) -> None:
        self.layout = layout
        buf = np.frombuffer(shared, dtype=np.int64)
        k = layout.size
        self._head = buf[:_HEAD]
        self._copies = (buf[_HEAD : _HEAD + k], buf[_HEAD + k : _HEAD + 2 * k])
        self._pending = buf[_HEAD + 2 * k : _HEAD + 3 * k]

    def begin(self, txid: int, counts: Counts) -> None:
        """Before COMMIT: ``counts`` are what the transaction commits if it commits."""
        head = self._head
        head[_PENDING] = 0
        self._pending[:] = counts
        head[_PENDING_TXID] = txid
        head[_PENDING] = 1  # last: the pending record is whole

    def commit(self) -> None:
        """After COMMIT returned: the pending counts join the committed total."""
        head = self._head
        a = int(head[_ACTIVE])
        b = 1 - a
        np.add(self._copies[a], self._pending, out=self._copies[b])
        head[_APPLIED0 + b] = head[_PENDING_TXID]
        head[_ACTIVE] = b  # one word: the new total is in force
        head[_PENDING] = 0

    def abort(self) -> None:
        """The pending transaction did not commit."""
        self._head[_PENDING] = 0

    def add(self, counts: Counts) -> None:
        """Add counts that belong to no transaction (a finished scenario step)."""
        head = self._head
        a = int(head[_ACTIVE])
        b = 1 - a
        np.add(self._copies[a], counts, out=self._copies[b])
        head[_APPLIED0 + b] = head[_APPLIED0 + a]
        head[_ACTIVE] = b

    def read(self) -> tuple[Counts, tuple[int, Counts] | None]:
        """(committed total, (txid, counts) of a transaction still pending, or None)."""
        head = self._head
        a = int(head[_ACTIVE])
        total = self._copies[a].copy()
        if head[_PENDING] == 1 and head[_PENDING_TXID] != head[_APPLIED0 + a]:
            return total, (int(head[_PENDING_TXID]), self._pending.copy())
        return total, None
