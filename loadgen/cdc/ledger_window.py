"""Which captured changes are the ledger's business: none written after its runs had ended.

A slot or an event dump may go on past the ledger's run: a later ``stream`` (another ledger)
captured by the same slot. Its changes are not the old ledger's. The rule (the ledger's end:
``loadgen.ledger.run_end``): a captured change that matches no ledger change, of a transaction
newer than every ledger transaction (its xid greater: a later run's transactions get their
xids after the run ended), whose own WAL position (pgoutput: the change message's LSN;
Debezium: ``source.lsn``) is at or after the ledger's end, was written after every one of the
ledger's runs had ended: it is counted as ``excluded_after_ledger``, not as ``unexpected``.
Inside the window (before the end) such a change stays ``unexpected`` (also when its
transaction was still open at the end and committed later), as does a change of a transaction
older than the ledger's newest one, a change of a ledger transaction (``missing_from_ledger``,
whatever its position) and every change when the end is unknown (a run killed before it wrote
its end, or a ledger older than run ends): the report says which rule applied.

The end is cross-checked: every ledger change lies before it, so a matched change captured at
or after it means the end is wrong (another cluster's LSNs, a copied ledger). From then on
nothing is excluded, what was excluded before counts as ``unexpected`` (with the first
examples), and a note says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from loadgen.ledger.run_end import LedgerEnd
from loadgen.lsn import format_lsn

KEEP_EXAMPLES = 5  # excluded changes kept, to report them if the end turns out wrong


class AfterLedger:
    """The ``excluded_after_ledger`` rule for one verification (see the module doc)."""

    def __init__(self, end: LedgerEnd) -> None:
        self.end = end
        self.lsn = end.lsn
        self.num_excluded = 0
        self.examples: list[dict[str, Any]] = []
        self.num_contradicting = 0  # ledger changes captured at or after the end
        self.first_contradicting: int | None = None  # the position of the first
        self.contradicted_end = 0  # the end it contradicted

    def split(
        self,
        position: npt.NDArray[np.int64],
        unknown: npt.NDArray[np.bool_],
        matched: npt.NDArray[np.bool_],
        example: Callable[[int], dict[str, Any]],
    ) -> npt.NDArray[np.bool_]:
        """Of a batch's changes, those to exclude: ``unknown`` (not the ledger's, in scope)
        and at or after the end. ``matched``: ledger changes (cross-check). ``example(i)``:
        the i-th as the report shows it (for the few kept)."""
        if self.lsn is None:
            return np.zeros(len(position), bool)
        after = position >= self.lsn
        wrong = np.flatnonzero(matched & after)
        if len(wrong):
            self._contradicted(int(position[wrong[0]]), len(wrong))
            return np.zeros(len(position), bool)
        late = unknown & after
        self._count(np.flatnonzero(late).tolist(), example)
        return late  # type: ignore[no-any-return]

    def update(self, end: LedgerEnd) -> None:
        """The ledger's end as it is now (``cdc watch``: known once every run has ended,
        unknown again when a new run starts in the ledger). Once contradicted, none."""
        self.end = end
        self.lsn = None if self.num_contradicting else end.lsn

    def matched_at(self, position: int) -> None:
        """A ledger change was captured at ``position`` (the cross-check, one at a time)."""
        if self.lsn is not None and position >= self.lsn:
            self._contradicted(position, 1)

    def _contradicted(self, position: int, n: int) -> None:
        if self.first_contradicting is None:
            self.first_contradicting = position
            self.contradicted_end = self.lsn or 0
        self.num_contradicting += n
        self.lsn = None  # from now on nothing is excluded; ``finish`` moves what was

    def take_one(self, position: int, example: Callable[[int], dict[str, Any]]) -> bool:
        """Whether one change of an unknown transaction (a TRUNCATE) is excluded."""
        if self.lsn is None or position < self.lsn:
            return False
        self._count([0], example)
        return True

    def _count(self, indexes: list[int], example: Callable[[int], dict[str, Any]]) -> None:
        self.num_excluded += len(indexes)
        room = KEEP_EXAMPLES - len(self.examples)
        self.examples.extend(example(i) for i in indexes[: max(room, 0)])

    def finish(self, counts: dict[str, int], examples: dict[str, list[dict[str, Any]]],
               max_examples: int) -> list[str]:  # fmt: skip
        """Settle the rule at the end of the stream: the report's notes; when the end was
        contradicted, the excluded changes are moved into ``counts``/``examples``
        ``unexpected``. Returns the notes."""
        end = self.end
        runs = ", ".join(end.runs)
        if self.num_contradicting:
            moved = self.num_excluded
            counts["unexpected"] += moved
            room = max(max_examples - len(examples["unexpected"]), 0)
            examples["unexpected"].extend(self.examples[:room])
            self.num_excluded = 0
            return [
                f"ledger end LSN {format_lsn(self.contradicted_end)} (runs {runs}) contradicted:"
                f" {self.num_contradicting:,} ledger changes were captured at or after it (first at"
                f" {format_lsn(self.first_contradicting or 0)}); nothing is excluded as later:"
                f" {moved:,} changes after it count as unexpected"
            ]
        if end.lsn is None:
            return [
                f"ledger end unknown: {end.why_unknown}; captured changes of transactions the"
                " ledger does not know count as unexpected, later runs' too"
                " (excluded_after_ledger needs every run's end)"
            ]
        return [
            f"ledger end LSN {end.lsn_text} (runs {runs}): {self.num_excluded:,} captured"
            " changes of other transactions written at or after it (later runs) are"
            " excluded_after_ledger"
        ]
