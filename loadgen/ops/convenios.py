"""Pacientes_convenios: link a patient to an insurer, remove a link.

Links are owned by their paciente, so the owning worker knows every link of its pacientes and
picks a (paciente, convenio) pair known to be free (``LinkState``). The INSERT still says
``ON CONFLICT (paciente_id, convenio_id) DO NOTHING``: after an in-doubt commit the engine
rolls the worker's state back although the link may exist, and the retry is then a no-op
instead of an error. ``INSERT`` is shared with ``admit_paciente``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from loadgen import datagen
from loadgen.ledger.changes import RowChange
from loadgen.ops.context import Context, Cursor
from loadgen.ops.operation import Block, Operation, ParamSource, Statement


def _card(block: Block) -> Mapping[str, np.ndarray]:
    # only numero_carteira/validade are used (the operation picks the pair); n placeholder
    # pacientes give datagen's link slots room
    known = datagen.ParentIds(pacientes=block.ids, convenios=block.parents()["convenios"])
    return datagen.generate_rows(
        "pacientes_convenios", block.ids, block.rng, parents=known, now=block.now, fresh=True
    )


CARD = ParamSource("convenio_card", ("numero_carteira", "validade"), _card)

INSERT = Statement(
    "pacientes_convenios",
    "c",
    ("paciente_id", "convenio_id", "numero_carteira", "validade"),
    source=CARD,
    chosen=("paciente_id", "convenio_id"),
    on_conflict=("paciente_id", "convenio_id"),
)
DELETE = Statement(
    "pacientes_convenios",
    "d",
    ("id",),
    sql="DELETE FROM pacientes_convenios WHERE id = %s RETURNING id",
    chosen=("id",),
)


def link_inserted(ctx: Context, changes: list[RowChange]) -> None:
    """Record inserted links in the worker's state (they join it on commit)."""
    for change in changes:
        after = change.after or {}
        paciente_id, convenio_id = int(after["paciente_id"] or 0), int(after["convenio_id"] or 0)
        ctx.state.links.link_inserted(change.pk, paciente_id, convenio_id)


def _run_insert(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    links = ctx.state.links
    pairs = [links.pick_new_pair(ctx.rnd) for _ in range(min(k, links.num_free))]
    cards = ctx.gen.take(cur, CARD, len(pairs))
    changes = ctx.insert(cur, INSERT, "insert_paciente_convenio", pairs, cards)
    link_inserted(ctx, changes)
    return changes


def _run_delete(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    links = ctx.state.links.links
    ids = [(links.take(ctx.rnd),) for _ in range(min(k, len(links)))]
    return ctx.many(cur, DELETE, "delete_paciente_convenio", ids)


INSERT_PACIENTE_CONVENIO = Operation(
    name="insert_paciente_convenio",
    kind="insert",
    tables=("pacientes_convenios",),
    default_weight=0.0,
    description="link an owned patient to an insurer they are not linked to yet",
    statements=(INSERT,),
    run=_run_insert,
    capacity=lambda state: state.links.num_free,
)
DELETE_PACIENTE_CONVENIO = Operation(
    name="delete_paciente_convenio",
    kind="delete",
    tables=("pacientes_convenios",),
    default_weight=0.0,
    description="remove a patient-insurer link (its pair becomes free after commit)",
    statements=(DELETE,),
    run=_run_delete,
    capacity=lambda state: len(state.links.links),
)
