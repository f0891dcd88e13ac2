"""Whole-stream checks of the verifier: per-key order (and a split primary-key update's two
halves) and transaction grouping. Vectorized over the captured columns; they fill the
verifier's counts and examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from loadgen.cdc.ledger_index import by_key_stable

if TYPE_CHECKING:
    from loadgen.cdc.verify import Verifier

# Two ledger changes of one key written by different writers are ordered by their monotonic
# stamps only when these differ by more than this (a writer stamps just after its COMMIT
# returns, so close stamps can invert). Within one writer, file order is commit order.
ORDER_TOLERANCE_MS = 1_000


def check_order(v: Verifier, c: dict[str, npt.NDArray[np.int64]]) -> None:
    L = v.L
    m = np.flatnonzero(c["li"] >= 0)
    if len(m) < 2:
        return
    idx = m[by_key_stable(c["table"][m], c["pk"][m])]  # by key, then delivery order
    del m
    ts, ps = c["table"][idx], c["pk"][idx]
    pairs = np.flatnonzero((ts[1:] == ts[:-1]) & (ps[1:] == ps[:-1]))  # consecutive, same key
    del ts, ps
    li = c["li"][idx]
    del idx
    la, lb = li[pairs], li[pairs + 1]  # delivered first, delivered second
    del li, pairs
    same_part = L.part[la] == L.part[lb]
    inverted = np.where(
        same_part, lb < la, L.mono_ms[lb].astype(np.int64) + ORDER_TOLERANCE_MS < L.mono_ms[la]
    )
    bad = np.flatnonzero(inverted)
    v.counts["order"] = len(bad)
    for j in bad[: v.max_examples]:
        first, second = v._ledger_example(int(la[j])), v._ledger_example(int(lb[j]))

        def show(x: dict[str, Any]) -> str:
            return f"{x['op']} txid {x['txid']} seq {x['seq']}"

        v.examples["order"].append(
            {
                "table": first["table"],
                "pk": first["pk"],
                "op_name": first["op_name"],
                "delivered": [show(first), show(second)],
                "ledger_order": [show(second), show(first)],
            }
        )
    check_split_order(v, c)


def check_split_order(v: Verifier, c: dict[str, npt.NDArray[np.int64]]) -> None:
    """A primary-key update split into a delete of the old key and a create of the new one
    (Debezium; ``ledger_index.load(split_pk_updates=True)``, odd ``seq``, the delete just
    before it) must arrive delete first: a sink keyed on another unique column breaks
    otherwise."""
    L = v.L
    second = np.flatnonzero(L.seq & 1)
    if not len(second):
        return
    m = np.flatnonzero(c["li"] >= 0)
    pos = np.full(L.num_changes, -1, np.int64)
    pos[c["li"][m]] = m
    p_del, p_new = pos[second - 1], pos[second]
    bad = second[(p_del >= 0) & (p_new >= 0) & (p_new < p_del)]
    v.counts["order"] += len(bad)
    for lpos in bad[: max(0, v.max_examples - len(v.examples["order"]))]:
        new = v._ledger_example(int(lpos))
        v.examples["order"].append(
            {
                "table": new["table"],
                "pk": new["pk"],
                "op_name": new["op_name"],
                "problem": "primary-key update: the create of the new key arrived before the"
                f" delete of the old key {new.get('old_pk')}",
            }
        )


def check_grouping(
    v: Verifier, c: dict[str, npt.NDArray[np.int64]], live: npt.NDArray[np.bool_]
) -> None:
    L = v.L
    m = np.flatnonzero(c["li"] >= 0)
    if not len(m):
        return
    lxid = L.xid[c["li"][m]]
    order = np.lexsort((c["txn"][m], lxid))
    lx, tx = lxid[order], c["txn"][m][order]
    starts = np.flatnonzero(np.r_[True, lx[1:] != lx[:-1]])
    tmin, tmax = np.minimum.reduceat(tx, starts), np.maximum.reduceat(tx, starts)
    split = set(lx[starts][tmin != tmax].tolist())
    all_x, all_n = np.unique(L.xid[live], return_counts=True)
    got_x, got_n = np.unique(lxid, return_counts=True)
    want = all_n[np.searchsorted(all_x, got_x)]
    partial = set(got_x[got_n < want].tolist())
    bad = sorted(split | partial)
    v.counts["grouping"] = len(bad)
    for x in bad[: v.max_examples]:
        n_all = int(all_n[np.searchsorted(all_x, x)])
        n_got = int(got_n[np.searchsorted(got_x, x)])
        first = v._ledger_example(int(np.flatnonzero(L.xid == x)[0]))
        v.examples["grouping"].append(
            {
                "txid": int(x),
                "table": first["table"],
                "op_name": first["op_name"],
                "ledger_changes": n_all,
                "captured": n_got,
                "split_over_transactions": x in split,
            }
        )
