"""What ``cdc watch``'s matcher holds per change: a committed ledger change, a transaction's
intents, a captured change waiting for its ledger line, and the run's counts.

Shapes only (the matching itself is ``watch_match.Matcher``); times are ``time.monotonic()``
seconds, ``mono_ns`` the writer's monotonic stamp in ns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadgen.cdc.change import CapturedChange

ORDER_SLACK_NS = 1_000_000_000  # across writers, monotonic stamps decide beyond 1 s (verify's)
Key = tuple[int, int, int, int, int]  # xid32, table, pk, op, occurrence


@dataclass(slots=True)
class LedgerEntry:
    """A committed (or intended) ledger change, waiting for its capture."""

    part: int
    offset: int
    writer: int
    mono_ns: int
    txid: int  # xid8
    after: dict[str, str | None] | None
    op_name: str
    known_at: float  # when the watch learned it committed (monotonic s)


@dataclass(slots=True)
class Intent:
    """A transaction's change lines read before its outcome (its changes, occurrence ranks)."""

    changes: list[tuple[Key, LedgerEntry]] = field(default_factory=list)
    ranks: dict[tuple[int, int, int], int] = field(default_factory=dict)
    seqs: set[int] = field(default_factory=set)
    seen_at: float = 0.0


@dataclass(slots=True)
class CaptureEntry:
    """A captured change waiting for its ledger line (capture order, its transaction, when)."""

    ch: CapturedChange
    seq: int  # capture order
    txn: list[int]  # [commit end LSN, changes of it still undecided] (shared per transaction)
    at: float


@dataclass
class Tally:
    """Counts so far (the progress line, the summary and the final report)."""

    ledger_changes: int = 0  # committed ledger changes seen
    ledger_transactions: int = 0
    captured_changes: int = 0
    captured_transactions: int = 0
    matched: int = 0
    late: int = 0  # matched after having been reported missing
    missing_reported: int = 0  # reported missing live (pending > grace), ever
    redelivered: int = 0
    duplicated: int = 0
    unexpected: int = 0
    missing_from_ledger: int = 0
    excluded_before_ledger: int = 0
    values: int = 0
    order: int = 0
    ledger_duplicates: int = 0
    ledger_aborted_transactions: int = 0
    ledger_resolved_by_server: int = 0


def committed_before(lc: LedgerEntry, part0: int, off0: int, mono0: int) -> bool:
    """Whether ledger change ``lc`` committed before the one at (part0, off0, mono0)."""
    if lc.part == part0:
        return lc.offset < off0
    return lc.mono_ns + ORDER_SLACK_NS < mono0
