"""Operation names, as the ledger (``op_name``) and the stream's statistics record them: a
hospital operation's registry name (``insert_consulta``), or ``scenario:<name>`` for the changes
of a CDC scenario. The one place that knows the ``scenario:`` prefix."""

from __future__ import annotations

SCENARIO_OP_PREFIX = "scenario:"


def scenario_op_name(scenario: str) -> str:
    """``scenario:<name>``: the operation name a scenario's changes are recorded under."""
    return SCENARIO_OP_PREFIX + scenario


def is_scenario_op(op_name: str) -> bool:
    return op_name.startswith(SCENARIO_OP_PREFIX)


def scenario_of(op_name: str) -> str | None:
    """The scenario an operation name belongs to (None: a hospital operation)."""
    return op_name.removeprefix(SCENARIO_OP_PREFIX) if is_scenario_op(op_name) else None
