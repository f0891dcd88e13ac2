"""Which ledger transactions committed: only their changes are expected in the stream.

A format-2 ledger writes a transaction's changes as intents before its COMMIT is sent and its
outcome after (``loadgen.ledger.records``); ``keep_committed`` drops from the index's columns
the changes of transactions that aborted, are still in progress, or cannot be resolved, and
``ledger_fate_notes`` says in the report why those changes are not expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from loadgen.ledger import LedgerScan, Resolver

E = TypeVar("E")  # what the index keeps for a row with extras (``ledger_index.LedgerExtra``)


def ledger_fate_notes(fates: Mapping[str, int]) -> list[str]:
    """Report notes for ledger transactions that are not known to have committed."""
    notes = []
    if fates.get("in progress"):
        notes.append(
            f"{fates['in progress']:,} ledger transactions are still in progress on the server"
            " (is the load still running?): their changes are not expected yet"
        )
    if fates.get("unresolved"):
        notes.append(
            f"{fates['unresolved']:,} ledger transactions have no outcome and the server cannot"
            " say whether they committed (xid too old, or another cluster): their changes are"
            " not expected; captured, they count as unexpected"
        )
    return notes


def keep_committed(
    arr: dict[str, npt.NDArray[Any]],
    v2_rows: list[tuple[int, int]],
    extras: dict[int, E],
    truncates: list[tuple[int, int, int, int]],
    v2_truncates: list[bool],
    state: LedgerScan,
    resolve: Resolver | None,
) -> tuple[dict[str, int], int, int, dict[int, E], list[tuple[int, int, int, int]]]:
    """Drop (in ``arr``, in place) the rows of format-2 transactions that did not commit.

    ``arr``: the ledger's columns by name (``xid`` among them, xid8 as int64), one row per
    change in file order; ``v2_rows``: the [start, end) row ranges read from format-2 chunks
    (older formats record no outcomes: their rows are kept); ``extras``: row → extra, renumbered
    after the drop; ``truncates``: (xid8, table code, part, offset), ``v2_truncates`` saying
    which came from format 2; ``state``: the scan that collected the outcomes.

    Returns (transactions by fate, dropped change rows, intents the server resolved, extras
    renumbered, truncates kept).
    """
    n = len(arr["xid"])
    xid = arr["xid"]
    num_v2 = sum(hi - lo for lo, hi in v2_rows)
    is_v2: npt.NDArray[np.bool_] | None = None  # None: every row is format 2
    if num_v2 < n:
        is_v2 = np.zeros(n, bool)
        for lo, hi in v2_rows:
            is_v2[lo:hi] = True
    x = xid if is_v2 is None else xid[is_v2]
    if len(x):  # a transaction's lines are consecutive: unique over the run heads only
        head = np.empty(len(x), bool)
        head[0] = True
        np.not_equal(x[1:], x[:-1], out=head[1:])
        x = x[head]
        del head
    v2_truncate_xids = [t[0] for t, v in zip(truncates, v2_truncates, strict=True) if v]
    intents = np.unique(np.concatenate((x, np.array(v2_truncate_xids, np.int64))))
    del x
    if not len(intents):
        return {}, 0, 0, extras, truncates
    fates = state.fates_of(intents, resolve)
    committed = fates.txids[fates.is_committed]
    num_dropped = 0
    if not fates.is_committed.all():  # (a clean run: every intent committed, nothing to drop)
        drop = np.isin(xid, fates.txids[~fates.is_committed])
        if is_v2 is not None:
            drop &= is_v2
        keep = ~drop
        del drop
        num_dropped = int(n - keep.sum())
        if num_dropped:
            for k in list(arr):
                arr[k] = arr[k][keep]
            new_pos = np.cumsum(keep) - 1
            extras = {int(new_pos[p]): ex for p, ex in extras.items() if keep[p]}
    if truncates:  # few: a set of the committed txids only when there are some
        ok = set(committed.tolist())
        truncates = [t for t, v in zip(truncates, v2_truncates, strict=True) if not v or t[0] in ok]
    return fates.counts, num_dropped, fates.num_by_server, extras, truncates
