"""What ``cdc watch`` reports: the interval record, the progress line, the final report.

The final report is a ``results.VerifyReport`` (the shape, text rendering and exit code of
``cdc verify``) built from the matcher's counts; the checks a live watch cannot make over a
stream it no longer holds (grouping, final state, snapshot, before-images, old keys) are left
out and named in a note. ``watch`` adds its own counts (``late_matches``, ``reconnects``, ...)
and the lag figures (``lag_ms``: p50/p95/p99/max overall and per table).
"""

from __future__ import annotations

import resource
from typing import Any

from loadgen.cdc.results import CHECKS, CheckResult, VerifyReport
from loadgen.cdc.watch_markers import progress_part
from loadgen.cdc.watch_match import Matcher

WATCH_CHECKS = (
    "ledger_lines",
    "ledger_duplicates",
    "missing",
    "duplicated",
    "unexpected",
    "missing_from_ledger",
    "order",
    "values",
)
NOT_CHECKED = tuple(k for k in CHECKS if k not in WATCH_CHECKS and k != "source_lines")


def rss_mib() -> float:
    """This process's current resident set size in MiB (Linux /proc; peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * resource.getpagesize() / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def interval_record(
    m: Matcher, elapsed_s: float, matched_before: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """One interval's figures (``--json`` prints it as a line; the progress line shows it)."""
    t = m.tally
    return {
        "type": "interval",
        "elapsed_s": round(elapsed_s, 3),
        "matched": t.matched,
        "matched_in_interval": t.matched - matched_before,
        "pending": m.num_pending,
        "captured_unmatched": len(m.captured_pending),
        "open_intents": len(m.intents),
        "missing_now": len(m.overdue),
        "missing_reported": t.missing_reported,
        "late": t.late,
        "duplicated": t.duplicated,
        "redelivered": t.redelivered,
        "unexpected": t.unexpected,
        "excluded_after_ledger": m.after.num_excluded,
        "missing_from_ledger": t.missing_from_ledger,
        "order": t.order,
        "values": t.values,
        "keys_alive": m.num_keys,
        "recent_keys": m.num_recent[0],
        "recent_txns": m.num_recent[1],
        "rss_mib": rss_mib(),
        "lag_ms": m.lag.take_interval(),
        **extra,
    }


def _lag_part(lag: dict[str, Any]) -> str:
    a = lag.get("all", {})
    if not a.get("count"):
        return "lag -"
    return f"lag p50 {a['p50']:.1f} p95 {a['p95']:.1f} p99 {a['p99']:.1f} max {a['max']:.1f} ms"


def progress_text(rec: dict[str, Any]) -> str:
    """The interval as one line for people."""
    bad = [
        f"{k} {rec[k]:,}"
        for k in ("duplicated", "unexpected", "missing_from_ledger", "order", "values")
        if rec[k]
    ]
    return (
        f"watch {rec['elapsed_s']:7.1f}s matched {rec['matched']:,}"
        f" (+{rec['matched_in_interval']:,}) pending {rec['pending']:,}"
        f" missing {rec['missing_now']:,}"
        + (f" late {rec['late']:,}" if rec["late"] else "")
        + (f" redelivered {rec['redelivered']:,}" if rec["redelivered"] else "")
        + (" " + " ".join(bad) if bad else "")
        + f" | {_lag_part(rec['lag_ms'])}"
        + progress_part(rec.get("markers"))
    )


def missing_text(ex: dict[str, Any]) -> str:
    return (
        f"missing: {ex['table']} {ex['op']} id {ex['pk']} of transaction {ex['txid']}"
        f" ({ex['op_name']}, {ex['ledger_line']}) not captured after {ex['pending_s']:.1f} s"
    )


def final_report(
    m: Matcher,
    *,
    source: str,
    elapsed_s: float,
    ledger_bad_lines: int,
    ledger_bad_examples: list[dict[str, Any]],
    missing_examples: list[dict[str, Any]],
    counts: dict[str, int],
    notes: list[str],
) -> VerifyReport:
    """The verdict, as ``cdc verify`` gives it, after the final ``sweep``: every ledger
    change still pending is missing, every captured change still unmatched decided."""
    t = m.tally
    found = {
        "ledger_lines": ledger_bad_lines,
        "ledger_duplicates": t.ledger_duplicates,
        "missing": len(m.overdue),
        "duplicated": t.duplicated,
        "unexpected": t.unexpected,
        "missing_from_ledger": t.missing_from_ledger,
        "order": t.order,
        "values": t.values,
    }
    examples = {k: list(m.examples.get(k, [])) for k in WATCH_CHECKS}
    examples["ledger_lines"] = ledger_bad_examples
    examples["missing"] = missing_examples
    end_notes = m.after.finish(found, examples, m.max_examples)  # (may move some to unexpected)
    checks = []
    for k in WATCH_CHECKS:
        n = found[k]
        scenarios = sorted({str(e["scenario"]) for e in examples[k] if e.get("scenario")})
        checks.append(CheckResult(k, n == 0, n, CHECKS[k], examples[k], scenarios))
    all_counts = {
        "ledger_changes": t.ledger_changes,
        "ledger_transactions": t.ledger_transactions,
        "captured_changes": t.captured_changes,
        "matched": t.matched,
        "redelivered": t.redelivered,
        "excluded_before_ledger": t.excluded_before_ledger,
        "excluded_after_ledger": m.after.num_excluded,
        "ledger_aborted_transactions": t.ledger_aborted_transactions,
        "ledger_resolved_by_server": t.ledger_resolved_by_server,
        "late_matches": t.late,
        "missing_reported_live": t.missing_reported,
        **counts,
    }
    notes = [
        *notes,
        *end_notes,
        "not checked live (run `cdc verify` on a slot copy for them): " + ", ".join(NOT_CHECKED),
    ]
    return VerifyReport(
        source, all_counts, checks, notes, elapsed_s, m.delivery, m.after.end.to_dict()
    )


def lag_text(totals: dict[str, Any], markers: dict[str, Any] | None = None) -> str:
    """The run's lag figures per table (and of ``stream --markers``' markers), as lines."""
    lines = ["lag (capture - commit), ms:       count      p50      p95      p99      max"]
    rows = [("all", totals.get("all", {})), *totals.get("tables", {}).items()]
    for name, f in rows:
        if not f.get("count"):
            continue
        lines.append(
            f"  {name:<28} {f['count']:>9,} {f['p50']:>8.1f} {f['p95']:>8.1f}"
            f" {f['p99']:>8.1f} {f['max']:>8.1f}"
        )
    if markers and markers.get("count"):
        f = markers["lag_ms"]
        lines.append(
            f"  {'markers (capture - write)':<28} {f['count']:>9,} {f['p50']:>8.1f}"
            f" {f['p95']:>8.1f} {f['p99']:>8.1f} {f['max']:>8.1f}"
            f"  gaps {markers['gaps']:,} duplicated {markers['duplicated']:,}"
        )
    return "\n".join(lines)
