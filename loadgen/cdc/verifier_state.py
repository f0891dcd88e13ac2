"""What the verifier's check modules read and fill of ``loadgen.cdc.verify.Verifier``.

A protocol in a module of its own, so that ``delivery_checks``, ``ledger_checks``,
``snapshot_checks``, ``summary`` and ``value_checks`` (which the verifier imports) never import
the verifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from loadgen.cdc.change import Captured, CapturedChange, EncodingLimits
from loadgen.cdc.ledger_index import LedgerIndex
from loadgen.cdc.ledger_window import AfterLedger


class VerifierState(Protocol):
    """The verifier's state as its checks see it (see ``Verifier`` for each field)."""

    L: LedgerIndex
    delivery: str
    limits: EncodingLimits | None
    fail_on_limits: bool
    uncarried: dict[int, frozenset[str]]
    max_examples: int
    match_count: npt.NDArray[np.int32]
    _ledger_truncates: dict[tuple[int, int], list[int]]
    truncates: list[tuple[int, int]]
    examples: dict[str, list[dict[str, Any]]]
    counts: dict[str, int]
    limit_counts: dict[str, int]
    num_captured: int
    num_excluded: int
    after: AfterLedger
    num_reads: int
    num_redelivered: int
    num_redelivered_truncates: int
    notes: list[str]
    _t0_ns: int
    where: Callable[[Captured], str]

    def _fail(self, check: str, example: dict[str, Any], n: int = 1) -> None: ...

    def describe(self, ch: CapturedChange) -> dict[str, Any]: ...

    def ledger_example(self, i: int) -> dict[str, Any]: ...

    def with_op_name(self, example: dict[str, Any]) -> dict[str, Any]: ...
