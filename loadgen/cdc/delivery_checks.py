"""Delivery semantics: which captured changes are redeliveries, and whether they fail.

A ledger change matched by more than one captured change was delivered more than once. A
redelivery is *exact* when it has the first delivery's position (LSN) and content: what an
at-least-once source (Debezium restarting from its last committed offset) sends after a crash.
Under ``exactly-once`` every redelivery fails ``duplicated``; under ``at-least-once`` exact
ones are counted (``redelivered``) and only the others fail. Either way the later checks
(order, grouping, snapshot) look at first deliveries only, while the final-state replay applies
every delivery in order, so a redelivery that leaves the replayed state wrong still fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from loadgen.cdc.ledger_index import ranks_in_file_order

if TYPE_CHECKING:
    from loadgen.cdc.verifier_state import VerifierState as Verifier


def check(v: Verifier, c: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.bool_]:
    """Count redeliveries into ``v`` (``duplicated`` failures, ``num_redelivered``); return
    the mask of captured changes that are first deliveries (or unmatched)."""
    li = c["li"]
    first = np.ones(len(li), bool)
    m = np.flatnonzero(li >= 0)
    if not len(m):
        return first
    rank = ranks_in_file_order([li[m].astype(np.int64)])
    again = m[rank > 0]
    if not len(again):
        return first
    first[again] = False
    first_at = np.full(v.L.num_changes, -1, np.int64)
    first_at[li[m[rank == 0]]] = m[rank == 0]
    orig = first_at[li[again]]
    exact = (c["pos"][again] == c["pos"][orig]) & (c["rowhash"][again] == c["rowhash"][orig])
    failing = again if v.delivery == "exactly-once" else again[~exact]
    v.num_redelivered = int(exact.sum())
    v.counts["duplicated"] += len(failing)
    shown: set[int] = set()
    for j in failing:
        lpos = int(li[j])
        if lpos in shown or len(v.examples["duplicated"]) >= v.max_examples:
            continue
        shown.add(lpos)
        o = int(first_at[lpos])
        if c["pos"][j] != c["pos"][o]:
            problem = "delivered again at another position"
        elif c["rowhash"][j] != c["rowhash"][o]:
            problem = "delivered again with other content"
        else:
            problem = "delivered again (same position and content)"
        v.examples["duplicated"].append(
            {
                **v.ledger_example(lpos),
                "times_captured": int(v.match_count[lpos]),
                "problem": problem,
            }
        )
    return first
