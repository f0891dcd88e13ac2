"""pk-update and delete-tombstone: changes to a row's identity, and deletes with children."""

from __future__ import annotations

import psycopg
from psycopg import sql

from loadgen.scenarios.base import Context, Scenario
from loadgen.scenarios.recorder import Txn

PARENT = "cdc_pacientes"
CHILD = "cdc_exames"
_NEXT_PARENT_ID = sql.SQL("nextval('cdc_pacientes_id_seq')")
_NEXT_CHILD_ID = sql.SQL("nextval('cdc_exames_id_seq')")


def _patient(t: Txn, nome: str, cpf: str, num_exams: int) -> tuple[int, list[int]]:
    row = t.insert(PARENT, {"nome": nome, "cpf": cpf})
    pk = int(row["id"])  # type: ignore[arg-type]
    exams = [
        int(
            t.insert(
                CHILD,
                {
                    "paciente_id": pk,
                    "tipo_exame": tipo,  # type: ignore[arg-type]
                    "resultado": None,
                },
            )["id"]
        )
        for tipo in ("Hemograma", "Glicemia", "Raio-X de tórax")[:num_exams]
    ]
    return pk, exams


def _record_cascade(t: Txn, new_parent_id: int) -> None:
    """Record the children an ON UPDATE CASCADE rewrote (the server writes them after the
    parent, in its own order; per-key order is what a consumer can rely on)."""
    ids = t.conn.execute(
        sql.SQL("SELECT id FROM {} WHERE paciente_id = %s ORDER BY id").format(
            sql.Identifier(CHILD)
        ),
        (new_parent_id,),
    ).fetchall()
    for (pk,) in ids:
        t.record("u", CHILD, int(pk))


def run_pk_update(ctx: Context) -> None:
    """Change a patient's primary key twice (its exames follow by cascade), and an exame's own.

    The second key change happens in a transaction that also updates the row before and
    after it, so a consumer must keep the per-key order straight across the key change.
    """
    rec = ctx.rec
    with rec.txn() as t:
        pk, exams = _patient(t, "Carlos Eduardo Nogueira", "529.982.247-25", 3)
    with rec.txn() as t:
        moved = t.update(PARENT, pk, {"id": _NEXT_PARENT_ID})
        new_pk = int(moved["id"])  # type: ignore[arg-type]
        _record_cascade(t, new_pk)
    with rec.txn() as t:
        t.update(PARENT, new_pk, {"nome": "Carlos Eduardo Nogueira Filho"})
        moved = t.update(PARENT, new_pk, {"id": _NEXT_PARENT_ID})
        final_pk = int(moved["id"])  # type: ignore[arg-type]
        _record_cascade(t, final_pk)
        t.update(PARENT, final_pk, {"cpf": "111.444.777-35"})
    with rec.txn() as t:  # a child's own key (nothing cascades)
        t.update(CHILD, exams[0], {"id": _NEXT_CHILD_ID, "resultado": "normal"})


def run_delete_tombstone(ctx: Context) -> None:
    """Delete a patient without children, one after its children, and a row born and deleted
    in one transaction; a delete the FK refuses (savepoint) leaves nothing behind."""
    rec = ctx.rec
    with rec.txn() as t:
        lonely, _ = _patient(t, "Joana D'Arc Pereira", "390.533.447-05", 0)
        parent, exams = _patient(t, "Marcos Vinícius Prado", "168.995.350-09", 2)
    with rec.txn() as t:
        t.delete(PARENT, lonely)
    with rec.txn() as t:
        try:
            with t.savepoint(rollback=False):  # children still there: the FK refuses it
                t.delete(PARENT, parent)
        except psycopg.errors.IntegrityError:  # 23503, or 23001 on PostgreSQL 18+
            pass
        for pk in exams:
            t.delete(CHILD, pk)
        t.delete(PARENT, parent)
    with rec.txn() as t:  # created and deleted in the same transaction
        ephemeral, ephemeral_exams = _patient(t, "Paciente Efêmero", "000.000.001-91", 1)
        t.delete(CHILD, ephemeral_exams[0])
        t.delete(PARENT, ephemeral)


PK_UPDATE = Scenario(
    name="pk-update",
    summary="a patient's primary key changes (its exames follow by ON UPDATE CASCADE), twice, "
    "and an exame's own key",
    expect="an update whose old key is the previous id (Debezium: a delete of the old key, its "
    "tombstone and a create of the new one), then the cascaded child updates",
    tables=(PARENT, CHILD),
    run=run_pk_update,
)
DELETE_TOMBSTONE = Scenario(
    name="delete-tombstone",
    summary="deletes of a patient without children, of one after its children, and of rows "
    "created and deleted in one transaction; a refused delete rolled back to a savepoint",
    expect="a delete event with the old key for each (Debezium: followed by a null tombstone); "
    "the refused delete appears nowhere",
    tables=(PARENT, CHILD),
    run=run_delete_tombstone,
)
