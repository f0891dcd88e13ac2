"""The verifier's checks of the ledger itself, and of ledger truncates nothing captured.

``check_lines`` (run first by ``Verifier.finish``): lines recorded twice (same txid and seq:
``ledger_duplicates``, examples are the ledger lines), lines that cannot be parsed
(``ledger_lines``, examples give part, line number and a preview), and notes for a torn last
line (the writer died mid-write) and for transactions not known to have committed
(``ledger_fates``). ``missing_truncates`` (after the row checks): every ledger TRUNCATE no
captured truncate matched fails ``missing``, its example the ledger line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from loadgen.cdc.ledger_fates import ledger_fate_notes
from loadgen.ledger import read_line

if TYPE_CHECKING:
    from loadgen.cdc.verifier_state import VerifierState as Verifier


def check_lines(v: Verifier) -> None:
    """Count the ledger's duplicated and unparseable lines into ``v``; note torn last lines
    and transactions without a known commit."""
    L = v.L
    v.counts["ledger_duplicates"] = int(L.is_dup.sum())
    for i in np.flatnonzero(L.is_dup)[: v.max_examples]:
        v.examples["ledger_duplicates"].append(v.ledger_example(int(i)))
    bad = [b for b in L.bad_lines if not b.is_torn]
    v.counts["ledger_lines"] = len(bad)
    v.examples["ledger_lines"] = [
        {"part": b.part, "line": b.line_no, "text": b.preview} for b in bad[: v.max_examples]
    ]
    for b in L.bad_lines:
        if b.is_torn:
            v.notes.append(
                f"torn last line in {b.part} (line {b.line_no}): the writer died"
                " mid-write (an intent whose COMMIT was never sent, or an outcome: then"
                " the transaction was resolved from the server)"
            )
    v.notes.extend(ledger_fate_notes(L.fates))


def missing_truncates(v: Verifier) -> None:
    """Fail ``missing`` for each ledger TRUNCATE that no captured truncate matched (reads
    each one's ledger line for the example)."""
    L = v.L
    for idxs in v._ledger_truncates.values():
        for i in idxs:
            _, _, part, offset = L.truncates[i]
            line = read_line(L.parts[part], offset)
            keys = ("txid", "table", "op", "op_name")
            v._fail(
                "missing",
                {"ledger_line": f"{L.parts[part]}@{offset}", **{k: line.get(k) for k in keys}},
            )
