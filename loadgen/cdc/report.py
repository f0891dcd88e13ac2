"""Human-readable rendering of verification reports and CDC status (the CLI prints these)."""

from __future__ import annotations

from typing import Any

import orjson

from loadgen.cdc.results import VerifyReport
from loadgen.cdc.slot import CdcStatus, SetupResult

_MIB = 1024 * 1024


def _bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / _MIB:.1f} MiB" if n >= _MIB else f"{n:,} B"


def _example(ex: dict[str, Any]) -> str:
    return orjson.dumps(ex, default=str).decode()


def verify_text(report: VerifyReport) -> str:
    """The report as lines: counts, one line per check, the first examples of each failure."""
    c = report.counts
    lines = [
        f"verify {report.source}: {c.get('captured_changes', 0):,} captured changes vs "
        f"{c.get('ledger_changes', 0):,} ledger changes in {c.get('ledger_transactions', 0):,}"
        f" transactions ({report.elapsed_s:.1f} s)"
    ]
    lines.append(
        "counts: " + ", ".join(f"{k}={v:,}" for k, v in c.items() if not k.startswith("limit "))
    )
    lines.append(f"delivery: {report.delivery}")
    for check in report.checks:
        mark = "FAIL" if not check.is_ok else ("warn" if check.count else "ok  ")
        lines.append(f"{mark} {check.name:<20} {check.count:>8,}  {check.description}")
        if check.is_limit and check.count:
            by_limit = [f"{k[6:]} x{v:,}" for k, v in c.items() if k.startswith("limit ")]
            lines.append(f"       limits: {', '.join(by_limit)}")
        if check.scenarios:
            lines.append(f"       scenarios: {', '.join(check.scenarios)}")
        for ex in check.examples:
            lines.append(f"       e.g. {_example(ex)}")
    lines.extend(f"note: {n}" for n in report.notes)
    failed = [ch.name for ch in report.checks if not ch.is_ok]
    lines.append(
        "result: all checks hold"
        if not failed
        else f"result: {len(failed)} check(s) failed: {', '.join(failed)}"
    )
    return "\n".join(lines)


def setup_text(r: SetupResult) -> str:
    lines = [
        f"publication {r.publication}: {'created' if r.is_publication_created else 'exists'}"
        f" ({len(r.tables)} tables, replica identity {r.replica_identity})",
        f"slot {r.slot}: {'created' if r.is_slot_created else 'exists (kept)'},"
        f" start LSN {r.start_lsn}",
    ]
    lines.extend(f"note: {n}" for n in r.notes)
    return "\n".join(lines)


def status_text(s: CdcStatus) -> str:
    lines = [f"wal_level {s.wal_level}, current WAL {s.current_lsn}"]
    for p in s.problems:
        lines.append(f"problem: {p.setting}={p.value} (need {p.need}); fix: {p.fix}")
    if not s.slots:
        lines.append("slots: none in this database")
    for sl in s.slots:
        start = s.recorded.get(sl.slot_name)
        lines.append(
            f"slot {sl.slot_name} ({sl.plugin}{', active' if sl.is_active else ', inactive'}"
            f"{', temporary' if sl.is_temporary else ''}): confirmed {sl.confirmed_flush_lsn},"
            f" lag {_bytes(sl.lag_bytes)}, retains {_bytes(sl.retained_wal_bytes)} of WAL"
            + (f", created by setup at {start}" if start else "")
        )
    pub = ", ".join(s.publication_tables) if s.publication_tables else "(missing)"
    lines.append(f"publication {s.publication}: {pub}")
    lines.append(
        "replica identity: "
        + ", ".join(f"{t.split('.', 1)[-1]}={ri}" for t, ri in s.replica_identity.items())
    )
    return "\n".join(lines)


def status_dict(s: CdcStatus) -> dict[str, Any]:
    return {
        "wal_level": s.wal_level,
        "current_lsn": s.current_lsn,
        "slots": [vars(sl) for sl in s.slots],
        "publication": s.publication,
        "publication_tables": s.publication_tables,
        "replica_identity": s.replica_identity,
        "recorded_start_lsn": s.recorded,
        "problems": [vars(p) for p in s.problems],
    }
