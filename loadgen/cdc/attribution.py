"""Attribution for the verifier: which scenario a failure belongs to, and whether a captured
old key / old tuple is what the ledger says the replica identity requires. Pure functions."""

from __future__ import annotations

from typing import Any

from loadgen import op_names
from loadgen.cdc.ledger_index import LedgerExtra


def scenario_of(example: dict[str, Any]) -> str | None:
    """The scenario a failure belongs to: from the ledger's op_name (``scenario:<name>``), else
    from the table (the scenarios that write it); None for the hospital tables."""
    op_name = example.get("op_name")
    if isinstance(op_name, str) and op_names.is_scenario_op(op_name):
        return op_names.scenario_of(op_name)
    table = example.get("table")
    if isinstance(table, str) and table.startswith("cdc_"):
        from loadgen.scenarios.runner import scenarios_of_table  # lazy: imports psycopg code

        names = scenarios_of_table(table)
        return ", ".join(names) if names else None
    return None


def named(example: dict[str, Any]) -> dict[str, Any]:
    if "scenario" not in example:
        name = scenario_of(example)
        if name is not None:
            example["scenario"] = name
    return example


def old_tuple_problems(
    ex: LedgerExtra | None, captured: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """(check, example) for each way a captured change's old key or old tuple differs from its
    ledger line's ``ex`` (None: the line states neither: no key change, nothing to compare).

    ``captured`` may carry ``old_pk`` (the key the change moved the row from, None when it
    kept it) and, from a pgoutput source, ``old_kind`` (K, O or None) and ``old`` (the old
    tuple, column → text, None when not sent).
    """
    out: list[tuple[str, dict[str, Any]]] = []
    want_old_pk = ex.old_pk if ex else None
    got_old_pk = captured.get("old_pk")
    base = {
        "table": captured.get("table"),
        "pk": captured.get("pk"),
        "op": captured.get("op"),
        "at": captured.get("at"),
        "op_name": ex.op_name if ex else None,
    }
    if got_old_pk != want_old_pk:
        out.append(
            ("old_keys", {**base, "ledger_old_pk": want_old_pk, "captured_old_pk": got_old_pk})
        )
    if ex is None or "old_kind" not in captured:
        return out
    old, kind, before = captured.get("old"), captured.get("old_kind"), ex.before
    problem = None
    if before is None:
        if ex.is_tracked and old is not None:
            problem = "an old tuple was sent though the replica identity requires none"
    elif old is None:
        problem = "before-image missing"
    elif kind == "K":
        if {k: old.get(k, "<absent>") for k in before} != before or any(
            v is not None for k, v in old.items() if k not in before
        ):
            problem = "key columns differ from the before-image"
    elif old != before:
        problem = "old row differs from the before-image"
    if problem:
        out.append(
            (
                "before_images",
                {
                    **base,
                    "problem": problem,
                    "old_kind": kind,
                    "ledger_before": before,
                    "captured_old": old,
                },
            )
        )
    return out
