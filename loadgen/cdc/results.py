"""What a verification reports: the checks (name → meaning), their results, the whole report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DELIVERY_MODES = ("exactly-once", "at-least-once")

# name → what a failure means (shown in the report), in report order
CHECKS: dict[str, str] = {
    "ledger_lines": "ledger lines that cannot be parsed (other than a torn last line)",
    "ledger_duplicates": "ledger lines recorded twice (same txid and seq)",
    "source_lines": "lines of the event file that are not change events (other than a torn"
    " last line)",
    "missing": "ledger changes not captured",
    "duplicated": "captured more than once (at least once: only redeliveries that differ from"
    " the first delivery, in position or content)",
    "unexpected": "captured changes from transactions the ledger does not know",
    "missing_from_ledger": "captured changes of ledger transactions that the ledger does not"
    " list (a lost ledger line, or a trigger/cascade change the generator did not record)",
    "order": "per-key order differs from the ledger's commit order",
    "grouping": "ledger transactions captured partially",
    "values": "captured after-image differs from the ledger's",
    "old_keys": "a captured update's old key differs from the ledger's (a primary-key change lost,"
    " invented or attributed to the wrong row)",
    "before_images": "captured old tuple differs from the before-image the replica identity"
    " requires (missing, extra, or other values)",
    "snapshot": "snapshot reads differ from the tables as of the snapshot point (a row missing,"
    " extra, or with other values)",
    "final_state": "replayed captured stream differs from the tables' current contents",
    "known_limits": "values the source's encoding cannot carry (documented limits; they fail"
    " only with --fail-on-limits)",
}
LIMIT_CHECKS = frozenset({"known_limits"})  # reported, failing only when asked to


@dataclass
class CheckResult:
    name: str
    is_ok: bool
    count: int
    description: str
    examples: list[dict[str, Any]] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)  # scenarios its failures belong to
    is_limit: bool = False  # a documented source limit: counted, failing only when asked


@dataclass
class VerifyReport:
    source: str  # "slot NAME" or "debezium FILE"
    counts: dict[str, int]
    checks: list[CheckResult]
    notes: list[str]
    elapsed_s: float
    delivery: str = "exactly-once"  # one of DELIVERY_MODES
    # the ledger's end (``run_end.LedgerEnd.to_dict``: {"lsn", "runs"} or {"lsn": None,
    # "runs", "unknown_because"}): changes after it are excluded_after_ledger
    ledger_end: dict[str, Any] | None = None

    @property
    def is_ok(self) -> bool:
        return all(c.is_ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.is_ok,
            "source": self.source,
            "delivery": self.delivery,
            "counts": self.counts,
            "ledger_end": self.ledger_end,
            "elapsed_s": round(self.elapsed_s, 3),
            "notes": self.notes,
            "checks": [
                {
                    "name": c.name,
                    "ok": c.is_ok,
                    "count": c.count,
                    "description": c.description,
                    "is_limit": c.is_limit,
                    "scenarios": c.scenarios,
                    "examples": c.examples,
                }
                for c in self.checks
            ],
        }
