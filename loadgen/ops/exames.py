"""Exames: request an exam, record the result of a pending one.

A result goes to a due exam first (its date has passed, less ``DUE_MARGIN_S``), else to the
next scheduled one, whose ``data`` becomes now (performed now): ``LEAST(data, now)`` on the
server's clock. The UPDATE re-checks ``resultado IS NULL``.
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

NEW_EXAME = new_rows("exames")


def _results(block: Block) -> Mapping[str, np.ndarray]:
    return {"resultado": datagen.exam_results(block.rng, block.n)}


RESULT = ParamSource("exame_result", ("resultado",), _results)

INSERT = Statement("exames", "c", NEW_EXAME.columns, source=NEW_EXAME)
UPDATE = Statement(
    "exames",
    "u",
    ("resultado", "id"),
    sql=(
        f"UPDATE exames SET resultado = %(resultado)s, data = LEAST(data, {NOW_MINUTE}) "
        "WHERE id = %(id)s AND resultado IS NULL RETURNING *"
    ),
    source=RESULT,
    chosen=("id",),
)
_DATA = INSERT.position("data")


def _run_insert(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    rows = ctx.gen.take(cur, NEW_EXAME, k)
    changes = ctx.insert(cur, INSERT, "insert_exame", generated=rows)
    for change, row in zip(changes, rows, strict=True):
        ctx.state.pendentes.add(row[_DATA], change.pk)
    return changes


def _run_update(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    pendentes = ctx.state.pendentes
    results = ctx.gen.take(cur, RESULT, min(k, len(pendentes)))
    ids: list[tuple[Any, ...]] = [(pendentes.take_due_first(ctx.rnd),) for _ in results]
    return ctx.many(cur, UPDATE, "update_exame", ids, results)


INSERT_EXAME = Operation(
    name="insert_exame",
    kind="insert",
    tables=("exames",),
    default_weight=15.0,
    description="request an exam, scheduled 1 to 60 days ahead, no result yet",
    statements=(INSERT,),
    run=_run_insert,
)
UPDATE_EXAME = Operation(
    name="update_exame",
    kind="update",
    tables=("exames",),
    default_weight=7.0,
    description="record the result of a pending exam, due first (else dated now)",
    statements=(UPDATE,),
    run=_run_update,
    capacity=lambda state: len(state.pendentes),
)
