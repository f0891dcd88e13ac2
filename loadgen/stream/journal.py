"""One worker's record of its transactions: the ledger's intent/outcome and the shared tally.

A worker runs every transaction through its ``Journal``: ``intent`` just before COMMIT (the
ledger's durable intent line and the tally's pending counts), then ``committed`` or ``aborted``
(the outcome line, the tally's total). ``StepLog`` is the same for the transactions of a
scenario step (``loadgen.scenarios.run_step`` calls it through the recorder), counting each
one as it commits. Runs in the worker's loop thread.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from loadgen.ledger import LedgerWriter, records
from loadgen.ledger.changes import RowChange
from loadgen.stream.stats import IntervalStats
from loadgen.stream.tally import CommitTally, Counts

logger = logging.getLogger(__name__)


class Journal:
    """A worker's ledger writer (optional) and tally (optional) behind one intent/outcome API."""

    def __init__(self, ledger: LedgerWriter | None, tally: CommitTally | None) -> None:
        self.ledger = ledger
        self.tally = tally

    def counts(
        self, names: Sequence[str], no_ops: Mapping[str, int], changes: Sequence[RowChange]
    ) -> Counts | None:
        """The tally counts of one hospital batch (``names`` drawn, ``no_ops`` among them)."""
        if self.tally is None:
            return None
        ops = Counter(names)
        ops.subtract(no_ops)
        return self.tally.layout.counts(+ops, no_ops, changes, num_txns=1)

    def intent(self, txid: int, changes: Sequence[RowChange], counts: Counts | None) -> None:
        """Before COMMIT. Raises LedgerWriteError: the caller must roll back, not commit."""
        if self.ledger is not None and changes:
            self.ledger.intent(txid, changes)
        if self.tally is not None and counts is not None:
            self.tally.begin(txid, counts)

    def committed(self, txid: int, *, by: str = "commit") -> None:
        """After COMMIT returned (or the server said committed). The tally first: the counts
        are in even if the outcome line then fails (LedgerWriteError; the intent is resolved
        from the server)."""
        if self.tally is not None:
            self.tally.commit()
        if self.ledger is not None:
            self.ledger.outcome(txid, records.COMMITTED, by=by)

    def aborted(self, txid: int, *, by: str = "commit") -> None:
        """The transaction did not commit (rolled back, or the server said aborted)."""
        if self.tally is not None:
            self.tally.abort()
        if self.ledger is not None:
            try:
                self.ledger.outcome(txid, records.ABORTED, by=by)
            except OSError as exc:  # harmless: an intent without outcome resolves as aborted
                logger.warning("%s", exc)

    def unknown(self) -> None:
        """The outcome stays unknown (the server could not say in time): the tally forgets
        the transaction (counted in_doubt); its ledger intent is resolved later."""
        if self.tally is not None:
            self.tally.abort()

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()


class StepLog:
    """``loadgen.scenarios.recorder.TxnLog`` for a stream worker's scenario steps: the ledger
    lines, and each committed transaction counted in the stats and the tally as it commits.

    ``pending`` is the last transaction whose intent is recorded but whose outcome is not (a
    COMMIT that failed): the worker resolves it after reconnecting (``resolve_pending``).
    """

    def __init__(self, journal: Journal, stats: Callable[[], IntervalStats]) -> None:
        self.journal = journal
        self._stats = stats
        self.pending: tuple[int, int] | None = None  # (txid, number of changes)

    def intent(self, txid: int, changes: Sequence[RowChange]) -> None:
        tally = self.journal.tally
        counts = (
            None
            if tally is None
            else tally.layout.counts(num_txns=1, num_scenario_changes=len(changes))
        )
        self.journal.intent(txid, changes, counts)
        self.pending = (txid, len(changes))

    def outcome(
        self,
        txid: int,
        status: object,
        *,
        by: str = "commit",
        commit_time: str | None = None,
    ) -> None:
        pending, self.pending = self.pending, None
        if status == records.COMMITTED:
            self.journal.committed(txid, by=by)
            self._stats().record_scenario_txn(pending[1] if pending else 0)
        else:
            self.journal.aborted(txid, by=by)

    def resolve_pending(self, status: str | None) -> None:
        """What the server says became of ``pending`` (after a COMMIT failed)."""
        if self.pending is None:
            return
        txid = self.pending[0]
        if status in (records.COMMITTED, records.ABORTED):
            self.outcome(txid, status, by="txid_status")
        else:
            self.pending = None
            self.journal.unknown()
