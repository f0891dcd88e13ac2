"""Internações: open an admission, discharge an open one.

A discharge happens at ``GREATEST(data_entrada, now)`` on the server's clock; the UPDATE
re-checks ``data_saida IS NULL``. ``ADMIT`` (an admission of a paciente inserted in the same
transaction) is shared with ``admit_paciente``.
"""

from __future__ import annotations

from loadgen.ledger.changes import RowChange
from loadgen.ops.context import Context, Cursor
from loadgen.ops.operation import Operation, Statement
from loadgen.ops.rowgen import new_rows
from loadgen.ops.statements import NOW_MINUTE

NEW_INTERNACAO = new_rows("internacoes")

INSERT = Statement("internacoes", "c", NEW_INTERNACAO.columns, source=NEW_INTERNACAO)
# the same INSERT for a paciente the operation chose (one it has just inserted)
ADMIT = Statement(
    "internacoes", "c", NEW_INTERNACAO.columns, source=NEW_INTERNACAO, chosen=("paciente_id",)
)
UPDATE = Statement(
    "internacoes",
    "u",
    ("id",),
    sql=(
        f"UPDATE internacoes SET data_saida = GREATEST(data_entrada, {NOW_MINUTE}) "
        "WHERE id = %s AND data_saida IS NULL RETURNING *"
    ),
    chosen=("id",),
)


def _run_insert(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    rows = ctx.gen.take(cur, NEW_INTERNACAO, k)
    changes = ctx.insert(cur, INSERT, "insert_internacao", generated=rows)
    for change in changes:
        ctx.state.abertas.add(change.pk)
    return changes


def _run_update(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    abertas = ctx.state.abertas
    ids = [(abertas.take(ctx.rnd),) for _ in range(min(k, len(abertas)))]
    return ctx.many(cur, UPDATE, "update_internacao", ids)


INSERT_INTERNACAO = Operation(
    name="insert_internacao",
    kind="insert",
    tables=("internacoes",),
    default_weight=20.0,
    description="open an admission, entered in the last 6 h, no discharge yet",
    statements=(INSERT,),
    run=_run_insert,
)
UPDATE_INTERNACAO = Operation(
    name="update_internacao",
    kind="update",
    tables=("internacoes",),
    default_weight=5.0,
    description="discharge an open admission at GREATEST(data_entrada, now)",
    statements=(UPDATE,),
    run=_run_update,
    capacity=lambda state: len(state.abertas),
)
