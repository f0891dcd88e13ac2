"""Pacientes: register a patient, change a patient's contact details.

New paciente ids come from the table's sequence a block at a time and the CPF is a bijection
of the id, so an insert never collides. Pacientes are never deleted: every one stays a parent
that foreign keys may reference. ``insert_pacientes`` is shared with ``admit_paciente``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from loadgen import datagen, tables
from loadgen.ledger.changes import RowChange
from loadgen.ops.context import Context, Cursor
from loadgen.ops.operation import UNLIMITED, Block, Operation, ParamSource, Statement
from loadgen.ops.rowgen import new_rows
from loadgen.ops.state import Candidates

NEW_PACIENTE = new_rows("pacientes", sequence=True)


def _contacts(block: Block) -> Mapping[str, np.ndarray]:
    return {
        "telefone": datagen.new_phones(block.rng, block.n),
        "endereco": datagen.new_addresses(block.rng, block.n),
    }


CONTACT = ParamSource("paciente_contact", ("telefone", "endereco"), _contacts)

INSERT = Statement(
    "pacientes", "c", tables.PACIENTES.columns, source=NEW_PACIENTE
)  # id included: the CPF is derived from it
UPDATE = Statement(
    "pacientes",
    "u",
    ("telefone", "endereco", "id"),
    sql="UPDATE pacientes SET telefone = %s, endereco = %s WHERE id = %s RETURNING *",
    source=CONTACT,
    chosen=("id",),
)


def insert_pacientes(ctx: Context, cur: Cursor, k: int, op_name: str) -> list[RowChange]:
    """Insert ``k`` new pacientes; they become owned candidates and parents after commit."""
    state = ctx.state
    changes = ctx.insert(cur, INSERT, op_name, generated=ctx.gen.take(cur, NEW_PACIENTE, k))
    for change in changes:
        state.new_pacientes.append(change.pk)
        state.pacientes.add(change.pk)
        state.links.add_paciente(change.pk)
    return changes


def _run_insert(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    return insert_pacientes(ctx, cur, k, "insert_paciente")


def _run_update(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    pacientes = ctx.state.pacientes
    if not len(pacientes):
        return []
    values = ctx.gen.take(cur, CONTACT, k)
    ids: list[tuple[Any, ...]] = [(pacientes.sample(ctx.rnd),) for _ in values]
    return ctx.many(cur, UPDATE, "update_paciente", ids, values)


def _can_update(state: Candidates) -> float:
    return UNLIMITED if len(state.pacientes) else 0  # the same paciente may change again


INSERT_PACIENTE = Operation(
    name="insert_paciente",
    kind="insert",
    tables=("pacientes",),
    default_weight=5.0,
    description="register a new patient (id from the sequence, CPF derived from it)",
    statements=(INSERT,),
    run=_run_insert,
)
UPDATE_PACIENTE = Operation(
    name="update_paciente",
    kind="update",
    tables=("pacientes",),
    default_weight=8.0,
    description="change an owned patient's phone and address (the same one may change again)",
    statements=(UPDATE,),
    run=_run_update,
    capacity=_can_update,
)
