"""admit_paciente: one transaction registers a patient, links an insurer, opens an admission.

Three rows per operation, in three tables, in foreign-key order; the link and the admission
reference the paciente inserted just before (chosen, not generated). It reuses the other
operations' statements and parameter sources, so their buffers are shared.
"""

from __future__ import annotations

from typing import Any

from loadgen.ledger.changes import RowChange
from loadgen.ops import convenios, internacoes, pacientes
from loadgen.ops.context import Context, Cursor
from loadgen.ops.operation import Operation


def _run(ctx: Context, cur: Cursor, k: int) -> list[RowChange]:
    name = "admit_paciente"
    changes = pacientes.insert_pacientes(ctx, cur, k, name)
    pids = [c.pk for c in changes]
    convenio_ids = ctx.state.links.convenio_ids
    pairs: list[tuple[Any, ...]] = [
        (pid, convenio_ids[ctx.rnd.randrange(len(convenio_ids))]) for pid in pids
    ]
    cards = ctx.gen.take(cur, convenios.CARD, len(pids))
    links = ctx.insert(cur, convenios.INSERT, name, pairs, cards)
    convenios.link_inserted(ctx, links)
    rows = ctx.gen.take(cur, internacoes.NEW_INTERNACAO, len(pids))
    admissions = ctx.insert(cur, internacoes.ADMIT, name, [(pid,) for pid in pids], rows)
    for change in admissions:
        ctx.state.abertas.add(change.pk)
    return changes + links + admissions


ADMIT_PACIENTE = Operation(
    name="admit_paciente",
    kind="insert",
    tables=("pacientes", "pacientes_convenios", "internacoes"),
    default_weight=0.0,
    description="one transaction: register a patient, link an insurer, open an admission (3 rows)",
    statements=(pacientes.INSERT, convenios.INSERT, internacoes.ADMIT),
    run=_run,
)
