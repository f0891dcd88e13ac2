"""Consultas: book an appointment, close one whose time has come, delete a cancelled one.

A consulta is closed due-first (its time has passed, less ``DUE_MARGIN_S``); when none is due,
the next upcoming one is closed, and if it becomes realizada or faltou its ``data`` moves to
now (the appointment happened now); a cancellation keeps its date. The SQL applies the rule
with the server's clock and re-checks ``status = 'agendada'``, so a row changed behind the
worker's back makes the statement change nothing (a no-op) instead of breaking a check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from loadgen import datagen
from loadgen.ledger.changes import RowChange
from loadgen.ops.context import Context, Cursor
from loadgen.ops.operation import Block, Operation, ParamSource, Statement
from loadgen.ops.rowgen import new_rows
from loadgen.ops.statements import NOW_MINUTE

NEW_CONSULTA = new_rows("consultas")


def _outcomes(block: Block) -> Mapping[str, np.ndarray]:
    return {"status": datagen.consulta_outcomes(block.rng, block.n)}


OUTCOME = ParamSource("consulta_outcome", ("status",), _outcomes)

INSERT = Statement("consultas", "c", NEW_CONSULTA.columns, source=NEW_CONSULTA)
UPDATE = Statement(
    "consultas",
    "u",
    ("status", "id"),
    sql=(
        "UPDATE consultas SET status = %(status)s::varchar, data = CASE WHEN %(status)s::varchar "
        f"<> 'cancelada' AND data > {NOW_MINUTE} THEN {NOW_MINUTE} ELSE data END "
        "WHERE id = %(id)s AND status = 'agendada' RETURNING *"
    ),
    source=OUTCOME,
    chosen=("id",),
)
DELETE = Statement(
    "consultas",
    "d",
    ("id",),
    sql="DELETE FROM consultas WHERE id = %s AND status = 'cancelada' RETURNING id",
    chosen=("id",),
)
_DATA = INSERT.position("data")


def _run_insert(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    rows = ctx.gen.take(cur, NEW_CONSULTA, k)
    changes = ctx.insert(cur, INSERT, "insert_consulta", generated=rows)
    for change, row in zip(changes, rows, strict=True):
        ctx.state.agendadas.add(row[_DATA], change.pk)
    return changes


def _run_update(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    agendadas = ctx.state.agendadas
    outcomes = ctx.gen.take(cur, OUTCOME, min(k, len(agendadas)))
    ids: list[tuple[Any, ...]] = [(agendadas.take_due_first(ctx.rnd),) for _ in outcomes]
    changes = ctx.many(cur, UPDATE, "update_consulta", ids, outcomes)
    for change in changes:
        if change.after is not None and change.after["status"] == "cancelada":
            ctx.state.canceladas.add(change.pk)
    return changes


def _run_delete(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    canceladas = ctx.state.canceladas
    ids = [(canceladas.take(ctx.rnd),) for _ in range(min(k, len(canceladas)))]
    return ctx.many(cur, DELETE, "delete_consulta", ids)


INSERT_CONSULTA = Operation(
    name="insert_consulta",
    kind="insert",
    tables=("consultas",),
    default_weight=30.0,
    description="book an agendada appointment, tomorrow to +90 days",
    statements=(INSERT,),
    run=_run_insert,
)
UPDATE_CONSULTA = Operation(
    name="update_consulta",
    kind="update",
    tables=("consultas",),
    default_weight=10.0,
    description="close an agendada appointment, due first: realizada 75 %, cancelada 15 %, "
    "faltou 10 % (dated now unless cancelled)",
    statements=(UPDATE,),
    run=_run_update,
    capacity=lambda state: len(state.agendadas),
)
DELETE_CONSULTA = Operation(
    name="delete_consulta",
    kind="delete",
    tables=("consultas",),
    default_weight=0.0,
    description="delete a cancelada appointment",
    statements=(DELETE,),
    run=_run_delete,
    capacity=lambda state: len(state.canceladas),
)
