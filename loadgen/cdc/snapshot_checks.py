"""Snapshot verification: a source that first reads the tables (Debezium ``op r``), then
streams from the snapshot point.

With load running during the snapshot, every ledger transaction committed either before the
snapshot point (its effect is in the snapshot, and it is never streamed) or after it (it must
be streamed, whole). A writer's ledger file is in commit order, so in each part the
transactions before the snapshot are the ones ahead of its first streamed transaction that were
not streamed themselves (one more guard: not recorded later than a second after the first
streamed transaction); any other unstreamed change is ``missing``.

Checks (``snapshot``), on first deliveries:

- each row whose last ledger change before the snapshot point is a create or update is read,
  with that change's after-image; a row it deleted is not read;
- replay consistency in the snapshotted tables: a streamed update or delete finds its row
  (read, or created by the stream), a streamed create does not;
- and the final-state check compares the snapshotted tables whole: every row must come from
  the snapshot or the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import psycopg

from loadgen.cdc.change import OP_CREATE, OP_DELETE, OP_READ, OP_UPDATE
from loadgen.cdc.ledger_index import by_key_stable, dict_hash
from loadgen.cdc.order_checks import ORDER_TOLERANCE_MS

if TYPE_CHECKING:
    from loadgen.cdc.verifier_state import VerifierState as Verifier

FLAG_MOVED_HERE = 2  # c_flags bit: an update that moved the row to this id (a key change)


@dataclass
class SnapshotResult:
    covered: npt.NDArray[np.bool_]  # per ledger change: committed before the snapshot point
    tables: frozenset[int] = frozenset()  # table codes the final state compares whole
    covered_truncates: frozenset[int] = frozenset()  # ledger truncate indices before it
    counts: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def empty(num_changes: int = 0) -> SnapshotResult:
        return SnapshotResult(np.zeros(num_changes, bool))


def _before_snapshot(v: Verifier) -> tuple[npt.NDArray[np.bool_], frozenset[int]]:
    """Per ledger change: its transaction committed before the snapshot point (module doc)."""
    L = v.L
    live = ~L.is_dup
    streamed_x = set(np.unique(L.xid[v.match_count > 0]).tolist())
    waiting = {i for idxs in v._ledger_truncates.values() for i in idxs}
    streamed_x |= {x for i, (x, _, _, _) in enumerate(L.truncates) if i not in waiting}
    is_streamed = np.isin(L.xid, np.array(sorted(streamed_x), np.int64))
    covered = live & ~is_streamed
    if not len(L.xid):
        return covered, frozenset()
    first_mono = int(L.mono_ms[is_streamed].min()) if is_streamed.any() else None
    boundary: dict[int, int] = {}  # part → offset of its first streamed change
    for p in np.unique(L.part).tolist():
        sel = is_streamed & (L.part == p)
        boundary[p] = int(L.offset[sel].min()) if sel.any() else 2**62
    bound = np.array([boundary[int(p)] for p in L.part], np.int64) if len(L.part) else None
    if bound is not None:
        covered &= L.offset < bound
    if first_mono is not None:
        covered &= L.mono_ms.astype(np.int64) <= first_mono + ORDER_TOLERANCE_MS
    covered_truncates = frozenset(
        i
        for i, (x, _, part, offset) in enumerate(L.truncates)
        if i in waiting and offset < boundary.get(part, 2**62)
    )
    return covered, covered_truncates


def check(
    v: Verifier,
    c: dict[str, npt.NDArray[Any]],
    first: npt.NDArray[np.bool_],
    conn: psycopg.Connection | None,
) -> SnapshotResult:
    """Run the snapshot checks into ``v`` (``snapshot``); return what the other checks need."""
    L = v.L
    covered, covered_truncates = _before_snapshot(v)
    for i in covered_truncates:  # a truncate before the snapshot is not missing
        for idxs in v._ledger_truncates.values():
            if i in idxs:
                idxs.remove(i)
    is_read = c["op"] == OP_READ
    points = np.unique(c["pos"][is_read])
    reads_at = np.flatnonzero(is_read)
    last_read = is_read & (c["pos"] == c["pos"][reads_at[-1]])  # the last snapshot's point
    if len(points) > 1:  # the connector restarted its snapshot: the last one is verified
        v.notes.append(
            f"the snapshot was taken {len(points)} times (a restart during it); the last one"
            " is verified"
        )
    tables = frozenset(np.unique(c["table"][is_read]).tolist()) | frozenset(
        np.unique(L.table[~L.is_dup]).tolist()
    )
    _check_reads(v, c, last_read & first, covered)
    _check_consistency(v, c, first, tables)
    reads = np.flatnonzero(is_read)
    counts = {
        "snapshot_reads": len(reads),
        "snapshot_tables": len(np.unique(c["table"][reads])),
        "ledger_changes_before_snapshot": int(covered.sum()),
        "redelivered_snapshot_reads": int((is_read & ~first).sum()),
    }
    return SnapshotResult(covered, tables, covered_truncates, counts)


def _key(table: npt.NDArray[Any], pk: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return (table.astype(np.int64) << 55) | pk


def _check_reads(
    v: Verifier,
    c: dict[str, npt.NDArray[Any]],
    reads: npt.NDArray[np.bool_],
    covered: npt.NDArray[np.bool_],
) -> None:
    """Each row's last ledger change before the snapshot must be what the snapshot read."""
    L = v.L
    lc = np.flatnonzero(covered)
    if not len(lc):
        return
    order = lc[np.lexsort((L.offset[lc], L.mono_ms[lc], L.pk[lc], L.table[lc]))]
    k = _key(L.table[order], L.pk[order])
    last = order[np.r_[k[1:] != k[:-1], True]]  # the last change of each key before it
    r = np.flatnonzero(reads)
    rk = _key(c["table"][r], c["pk"][r])
    ro = np.argsort(rk, kind="stable")
    rk, r = rk[ro], r[ro]
    want = _key(L.table[last], L.pk[last])
    at = np.minimum(np.searchsorted(rk, want), max(len(rk) - 1, 0))
    found = (rk[at] == want) if len(rk) else np.zeros(len(want), bool)
    deleted = L.op[last] == OP_DELETE
    for j in np.flatnonzero(deleted & found):
        _fail(v, int(last[j]), "the snapshot has a row deleted before the snapshot point")
    for j in np.flatnonzero(~deleted & ~found):
        _fail(v, int(last[j]), "row missing from the snapshot")
    both = np.flatnonzero(~deleted & found)
    differs = both[c["rowhash"][r[at[both]]] != L.vhash[last[both]]]
    for j in differs:
        li = int(last[j])
        led = v.ledger_example(li)
        after = led.get("after") or {}
        if dict_hash(after) == int(c["rowhash"][r[at[j]]]):
            continue  # equal: the ledger line's JSON was not orjson's compact form
        if v.limits is not None and _as_delivered_hash(v, int(L.table[li]), after) == int(
            c["rowhash"][r[at[j]]]
        ):
            v.limit_counts["snapshot read"] = v.limit_counts.get("snapshot read", 0) + 1
            v._fail("known_limits", {**_base(led), "problem": "snapshot read hit a known limit"})
            continue
        _fail(v, li, "snapshot row differs from the last change before the snapshot point")


def _as_delivered_hash(v: Verifier, table: int, after: dict[str, Any]) -> int:
    assert v.limits is not None
    out = dict(after)
    for col in v.limits.columns(table):
        if col in out:
            lv = v.limits.deliver(table, col, out[col])
            if lv is not None:
                out[col] = lv.delivered
    return dict_hash(out)


def _base(led: dict[str, Any]) -> dict[str, Any]:
    return {k: led.get(k) for k in ("table", "pk", "txid", "op_name", "after")}


def _fail(v: Verifier, li: int, problem: str) -> None:
    v._fail("snapshot", {**_base(v.ledger_example(li)), "problem": problem})


def _check_consistency(
    v: Verifier,
    c: dict[str, npt.NDArray[Any]],
    first: npt.NDArray[np.bool_],
    tables: frozenset[int],
) -> None:
    """In the snapshotted tables, replay must find a streamed update's or delete's row, and
    must not find a streamed create's (it would be in the snapshot and the stream both)."""
    m = np.flatnonzero(first & np.isin(c["table"], np.array(sorted(tables), np.int64)))
    if not len(m):
        return
    idx = m[by_key_stable(c["table"][m], c["pk"][m])]
    k = _key(c["table"][idx], c["pk"][idx])
    has_prev = np.r_[False, k[1:] == k[:-1]]
    prev = np.r_[-1, idx[:-1]]
    op = c["op"][idx]
    prev_op = np.where(has_prev, c["op"][np.maximum(prev, 0)], -1)
    # a TRUNCATE of the table between the previous change and this one empties it
    trunc_before = np.full(len(idx), -1, np.int64)
    for t in np.unique(c["table"][idx]).tolist():
        at = np.array(sorted(i for i, tt in v.truncates if tt == t), np.int64)
        if len(at):
            sel = c["table"][idx] == t
            pos = np.searchsorted(at, idx[sel], side="right") - 1
            trunc_before[sel] = np.where(pos >= 0, at[np.maximum(pos, 0)], -1)
    present = has_prev & (prev_op != OP_DELETE) & (prev > trunc_before)
    moved_here = (c["flags"][idx] & FLAG_MOVED_HERE) != 0
    bad_missing = ((op == OP_UPDATE) & ~moved_here | (op == OP_DELETE)) & ~present
    bad_twice = ((op == OP_CREATE) | moved_here) & present
    for j, problem in [(j, "the stream changed a row the snapshot did not have")
                       for j in np.flatnonzero(bad_missing)] + [
        (j, "the stream created a row the snapshot already had (snapshot and stream overlap)")
        for j in np.flatnonzero(bad_twice)
    ]:  # fmt: skip
        i = int(idx[j])
        v._fail(
            "snapshot",
            v.with_op_name(
                {
                    "table": v.L.codes.names[int(c["table"][i])],
                    "pk": int(c["pk"][i]),
                    "op": "cudr"[int(c["op"][i])],
                    "problem": problem,
                }
            ),
        )
