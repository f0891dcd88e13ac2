"""The report of a finished verification: each check's result and the run's counts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from loadgen.cdc.attribution import named
from loadgen.cdc.results import CHECKS, LIMIT_CHECKS, CheckResult, VerifyReport

if TYPE_CHECKING:
    from loadgen.cdc.verifier_state import VerifierState as Verifier


def report(
    v: Verifier, source: str, live: npt.NDArray[np.bool_], snapshot_counts: dict[str, int]
) -> VerifyReport:
    """``v``'s checks and counts as a ``VerifyReport`` (``live``: the ledger's non-duplicate
    changes). Every failure example names its scenario, if any."""
    L = v.L
    elapsed_s = (time.monotonic_ns() - v._t0_ns) / 1e9
    for exs in v.examples.values():  # every failure names its scenario (if any)
        for e in exs:
            named(e)
    checks = []
    for k, d in CHECKS.items():
        is_limit = k in LIMIT_CHECKS
        ok = v.counts[k] == 0 or (is_limit and not v.fail_on_limits)
        scenarios = sorted({str(e["scenario"]) for e in v.examples[k] if e.get("scenario")})
        checks.append(CheckResult(k, ok, v.counts[k], d, v.examples[k], scenarios, is_limit))
    counts = {
        "ledger_changes": int(live.sum()),
        "ledger_transactions": len(np.unique(L.xid[live])),
        "captured_changes": v.num_captured - v.num_reads,
        "matched": int((v.match_count > 0).sum()),
        "redelivered": v.num_redelivered,
        "redelivered_truncates": v.num_redelivered_truncates,
        "excluded_before_ledger": v.num_excluded,
        "excluded_after_ledger": v.after.num_excluded,
        "captured_truncates": len(v.truncates),
        "ledger_truncates": len(L.truncates),
        "torn_ledger_lines": sum(b.is_torn for b in L.bad_lines),
        "ledger_aborted_transactions": L.fates.get("aborted", 0),
        "ledger_resolved_by_server": L.num_resolved_by_server,
        "ledger_unresolved_transactions": L.fates.get("unresolved", 0)
        + L.fates.get("in progress", 0),
        **snapshot_counts,
        **{f"limit {k}": v for k, v in sorted(v.limit_counts.items())},
    }
    return VerifyReport(
        source, counts, checks, v.notes, elapsed_s, v.delivery, ledger_end=v.after.end.to_dict()
    )
