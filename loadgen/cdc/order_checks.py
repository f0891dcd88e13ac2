"""Whole-stream checks of the verifier: per-key order and transaction grouping. Vectorized
over the captured columns; they fill the verifier's counts and examples."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from loadgen.cdc.ledger_index import LedgerIndex, by_key_stable


class Verifier(Protocol):
    """What these checks read and fill of ``loadgen.cdc.verify.Verifier`` (a protocol, so
    this module does not import the verifier that imports it)."""

    L: LedgerIndex
    counts: dict[str, int]
    examples: dict[str, list[dict[str, Any]]]
    max_examples: int

    def ledger_example(self, i: int) -> dict[str, Any]: ...


# Two ledger changes of one key written by different writers are ordered by their monotonic
# stamps only when these differ by more than this (a writer stamps just after its COMMIT
# returns, so close stamps can invert). Within one writer, file order is commit order.
ORDER_TOLERANCE_MS = 1_000


def check_order(v: Verifier, c: dict[str, npt.NDArray[Any]], first: npt.NDArray[np.bool_]) -> None:
    """Consecutive deliveries of one key (first deliveries only) must follow the ledger's
    order: file order within one writer, monotonic stamps across writers."""
    L = v.L
    m = np.flatnonzero((c["li"] >= 0) & first)
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
    v.counts["order"] += len(bad)
    for j in bad[: max(0, v.max_examples - len(v.examples["order"]))]:
        first_ex, second = v.ledger_example(int(la[j])), v.ledger_example(int(lb[j]))

        def show(x: dict[str, Any]) -> str:
            return f"{x['op']} txid {x['txid']} seq {x['seq']}"

        v.examples["order"].append(
            {
                "table": first_ex["table"],
                "pk": first_ex["pk"],
                "op_name": first_ex["op_name"],
                "delivered": [show(first_ex), show(second)],
                "ledger_order": [show(second), show(first_ex)],
            }
        )


def check_grouping(
    v: Verifier,
    c: dict[str, npt.NDArray[Any]],
    first: npt.NDArray[np.bool_],
    expected: npt.NDArray[np.bool_],
) -> None:
    """Every ledger transaction that was captured at all must be captured whole: the number
    of its changes matched (first deliveries) equals its ``expected`` ledger changes."""
    L = v.L
    m = np.flatnonzero((c["li"] >= 0) & first)
    if not len(m):
        return
    lxid = L.xid[c["li"][m]]
    all_x, all_n = np.unique(L.xid[expected], return_counts=True)
    got_x, got_n = np.unique(lxid, return_counts=True)
    want = all_n[np.searchsorted(all_x, got_x)]  # matched xids are expected ones
    bad = got_x[got_n < want]
    v.counts["grouping"] = len(bad)
    for x in bad[: v.max_examples]:
        first_ex = v.ledger_example(int(np.flatnonzero(L.xid == x)[0]))
        v.examples["grouping"].append(
            {
                "txid": int(x),
                "table": first_ex["table"],
                "op_name": first_ex["op_name"],
                "ledger_changes": int(all_n[np.searchsorted(all_x, x)]),
                "captured": int(got_n[np.searchsorted(got_x, x)]),
            }
        )
