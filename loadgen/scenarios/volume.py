"""truncate, big-transaction and rollback: whole-table events, size, and work that never was."""

from __future__ import annotations

import threading

import psycopg
from psycopg import sql

from loadgen import db
from loadgen.ledger import LedgerWriter
from loadgen.op_names import scenario_of
from loadgen.scenarios.base import Context, Scenario
from loadgen.scenarios.recorder import Recorder, Txn

QUEUE, BATCH, ITEM = "cdc_fila", "cdc_lotes", "cdc_lote_itens"
EVENTS, PARENT, CHILD = "cdc_eventos", "cdc_pacientes", "cdc_exames"
DRAFTS = "cdc_rascunhos"
_JOIN_TIMEOUT_S = 300.0


def run_truncate(ctx: Context) -> None:
    """TRUNCATE a table alone and a parent with CASCADE (its child goes too), with rows written
    before and after."""
    rec = ctx.rec
    with rec.txn() as t:
        for i in range(3):
            t.insert(QUEUE, {"descricao": f"senha {i + 1}"})
    with rec.txn() as t:
        t.truncate([QUEUE])
    with rec.txn() as t:
        t.insert(QUEUE, {"descricao": "senha depois do truncate"})
    with rec.txn() as t:
        lote = t.insert(BATCH, {"descricao": "lote de reagentes"})
        for item in ("tubo EDTA", "seringa 5 ml"):
            t.insert(ITEM, {"lote_id": int(lote["id"]), "item": item})  # type: ignore[arg-type]
    with rec.txn() as t:
        t.truncate([BATCH], cascade_to=[ITEM])
    with rec.txn() as t:  # rows in the same transaction, after the truncate
        t.insert(BATCH, {"descricao": "lote novo"})


def _bulk(
    t: Txn,
    num_events: int,
    num_patients: int,
    num_exams: int,
    num_updates: int,
    num_deletes: int,
    lote: int,
) -> None:
    events = t.dml(
        "c",
        EVENTS,
        sql.SQL(
            "INSERT INTO {} (lote, sequencia, payload) SELECT %s, g, 'evento ' || g || ' do lote ' "
            "|| %s FROM generate_series(1, %s) AS g"
        ).format(sql.Identifier(EVENTS)),
        (lote, lote, num_events),
    )
    patients = t.dml(
        "c",
        PARENT,
        sql.SQL(
            "INSERT INTO {} (nome, cpf) SELECT 'Paciente ' || g, lpad(g::text, 11, '0') "
            "FROM generate_series(1, %s) AS g"
        ).format(sql.Identifier(PARENT)),
        (num_patients,),
    )
    parent_ids = [int(p["id"]) for p in patients]  # type: ignore[arg-type]
    t.dml(
        "c",
        CHILD,
        sql.SQL(
            "INSERT INTO {} (paciente_id, tipo_exame) SELECT (%s::bigint[])[1 + g %% %s], "
            "'Exame ' || g FROM generate_series(1, %s) AS g"
        ).format(sql.Identifier(CHILD)),
        (parent_ids, len(parent_ids), num_exams),
    )
    ids = [int(e["id"]) for e in events]  # type: ignore[arg-type]
    t.dml(
        "u",
        EVENTS,
        sql.SQL("UPDATE {} SET payload = payload || ' (revisto)' WHERE id = ANY (%s)").format(
            sql.Identifier(EVENTS)
        ),
        (ids[:num_updates],),
    )
    t.dml(
        "d",
        EVENTS,
        sql.SQL("DELETE FROM {} WHERE id = ANY (%s)").format(sql.Identifier(EVENTS)),
        (ids[len(ids) - num_deletes :],),
    )


def split_changes(total: int) -> tuple[int, int, int, int, int]:
    """Split ``total`` changes: (event inserts, patients, exams, event updates, deletes)."""
    patients = max(1, total // 10)
    exams = total // 10
    updates = total // 10
    deletes = total // 10
    events = total - patients - exams - updates - deletes
    return events, patients, exams, updates, deletes


def _small_worker(
    ctx: Context,
    index: int,
    ready: threading.Barrier,
    big_done: threading.Event,
    recorders: list[Recorder],
    errors: list[BaseException],
) -> None:
    assert ctx.dsn is not None
    ledger = (
        LedgerWriter(ctx.ledger_path, ctx.writer_id + 1 + index, run_id=ctx.run_id)
        if ctx.ledger_path
        else None
    )
    try:
        with db.connect(
            ctx.dsn,
            autocommit=True,
            application_name="loadgen-scenario",
            retry_for_s=ctx.options.connect_retry_s,
        ) as conn:
            rec = Recorder(
                conn, str(scenario_of(ctx.rec.op_name)), ledger=ledger, keep=ctx.rec.keep
            )
            recorders[index] = rec
            n = 0
            while n < ctx.options.small_txns_per_worker or not big_done.is_set():
                with rec.txn() as t:
                    row = t.insert(
                        EVENTS,
                        {"lote": -1 - index, "sequencia": n, "payload": f"worker {index} txn {n}"},
                    )
                    if n % 2:
                        t.update(EVENTS, int(row["id"]), {"payload": "atualizado"})  # type: ignore[arg-type]
                if n == 0:
                    ready.wait(_JOIN_TIMEOUT_S)
                n += 1
    except BaseException as exc:  # reported by the scenario thread
        errors.append(exc)
        ready.abort()
    finally:
        if ledger is not None:
            ledger.close()


_SMALL_WORKER = "scenario-small-"  # the name of each concurrent connection's thread, + its index


def small_workers_alive() -> bool:
    """Whether a big transaction's concurrent connections still run (a join that timed out):
    they could still change rows, so the run has not ended."""
    return any(t.name.startswith(_SMALL_WORKER) and t.is_alive() for t in threading.enumerate())


def run_big_transaction(ctx: Context) -> None:
    """One transaction of ``options.big_txn_changes`` changes over three tables (set-based
    inserts, updates and deletes), while concurrent connections commit small transactions
    that interleave with it in the WAL."""
    rec = ctx.rec
    num_workers = ctx.options.num_concurrent_workers if ctx.dsn else 0
    big_done = threading.Event()
    recorders: list[Recorder] = [rec] * num_workers
    errors: list[BaseException] = []
    ready = threading.Barrier(num_workers + 1)
    threads = [
        threading.Thread(
            target=_small_worker,
            args=(ctx, i, ready, big_done, recorders, errors),
            name=f"{_SMALL_WORKER}{i}",
            daemon=True,
        )
        for i in range(num_workers)
    ]
    for th in threads:
        th.start()
    try:
        if threads:  # every worker has committed once: they run all through the big one
            try:
                ready.wait(_JOIN_TIMEOUT_S)
            except threading.BrokenBarrierError:
                if errors:
                    raise errors[0] from None
                raise
        with rec.txn() as t:
            lote = t.txid % 1_000_000
            _bulk(t, *split_changes(ctx.options.big_txn_changes), lote=lote)
    finally:
        big_done.set()
        for th in threads:
            th.join(_JOIN_TIMEOUT_S)
    ctx.extra.extend(r for r in recorders if r is not rec)
    if errors:
        raise errors[0]


def run_rollback(ctx: Context) -> None:
    """Transactions and savepoints that roll back, next to ones that commit."""
    rec = ctx.rec
    with rec.txn() as t:
        kept = t.insert(DRAFTS, {"texto": "rascunho que fica", "etapa": "inicial"})
    kept_id = int(kept["id"])  # type: ignore[arg-type]
    with rec.txn() as t:  # a whole transaction rolled back: insert, update and delete
        t.insert(DRAFTS, {"texto": "nunca existiu", "etapa": "descartado"})
        t.update(DRAFTS, kept_id, {"etapa": "nunca"})
        t.delete(DRAFTS, kept_id)
        raise psycopg.Rollback()
    with rec.txn() as t:  # committed, with one savepoint rolled back and one kept
        t.update(DRAFTS, kept_id, {"etapa": "revisado"})
        with t.savepoint(rollback=True):
            t.insert(DRAFTS, {"texto": "só no savepoint", "etapa": "descartado"})
            t.update(DRAFTS, kept_id, {"texto": "texto descartado"})
        with t.savepoint(rollback=False):
            t.insert(DRAFTS, {"texto": "savepoint mantido", "etapa": "final"})
            with t.savepoint(rollback=True):  # nested, rolled back inside a kept one
                t.delete(DRAFTS, kept_id)
    try:  # a transaction that fails on the server
        with rec.txn() as t:
            t.insert(DRAFTS, {"texto": "antes do erro", "etapa": "descartado"})
            t.conn.execute("SELECT 1 / 0")
    except psycopg.errors.DivisionByZero:
        pass
    with rec.txn() as t:  # a TRUNCATE rolled back
        t.truncate([DRAFTS])
        raise psycopg.Rollback()
    with rec.txn() as t:
        t.update(DRAFTS, kept_id, {"etapa": "concluido"})


TRUNCATE = Scenario(
    name="truncate",
    summary="TRUNCATE of a table alone, and of a parent with CASCADE (its child goes too), "
    "with rows written before and after",
    expect="a truncate event per table (one message naming both, with the cascade flag), not "
    "row deletes; rows written after it follow",
    tables=(QUEUE, BATCH, ITEM),
    run=run_truncate,
    is_exclusive=True,
)
BIG_TRANSACTION = Scenario(
    name="big-transaction",
    summary="one transaction of N changes (default 100,000) over three tables, with small "
    "transactions from concurrent connections committing meanwhile",
    expect="all N changes in one transaction, none lost or split; the small transactions "
    "complete and in commit order",
    tables=(EVENTS, PARENT, CHILD),
    run=run_big_transaction,
)
ROLLBACK = Scenario(
    name="rollback",
    summary="transactions rolled back (explicitly, by an error, a TRUNCATE) and savepoints "
    "rolled back inside committed transactions",
    expect="only the committed work: nothing of a rolled-back transaction or savepoint appears",
    tables=(DRAFTS,),
    run=run_rollback,
    is_exclusive=True,  # its rolled-back TRUNCATE would deadlock with a concurrent run
)
