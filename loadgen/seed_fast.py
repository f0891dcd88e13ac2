"""The empty-table fast path: load as pg_restore does, then add keys and indexes.

``prepare`` drops, in one transaction, the seeded tables' primary keys, UNIQUE constraints,
foreign keys (``sql/02_keys.sql``) and secondary indexes (``sql/03_indexes.sql``). ``run``
then gives each table one transaction on one of ``--workers`` connections (largest tables
first): ``TRUNCATE`` (of the empty table) and ``COPY ... FROM STDIN (FREEZE)`` of all its
pieces, so the rows are written frozen and all-visible, with no unique-index maintenance and
no foreign-key trigger per row. A producer per connection (a process for big runs, else a
thread: ``seed_producers``) generates and encodes the next blocks while the current ones are
sent. Pieces and their content are the append path's
(``datagen.generate_piece`` over the same id ranges), so both paths load identical rows.
On the same connections, as soon as a table is loaded, ``seed_build``'s jobs add its keys,
indexes and foreign keys back and ANALYZE it (the catalog ends as ``init`` makes it).

A failure or signal midway cancels every connection's statement; the orchestrator's
``seed_recovery.unfinished`` then truncates and restores the keys (``schema.restore``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

import psycopg
from psycopg import sql

from loadgen import schema, seed_build, seed_producers, tables
from loadgen.errors import SeedError
from loadgen.seed_options import ProgressFn, SeedOptions, TableResult
from loadgen.seed_parallel import Context, Task, prefetch, run_all
from loadgen.seed_plan import Plan


def prepare(conn: psycopg.Connection, names: list[str]) -> None:
    """Drop the keys and secondary indexes of tables ``names`` (empty), in one transaction.

    ``conn`` is in autocommit mode. The tables are locked first (ACCESS EXCLUSIVE).
    """
    with conn.transaction():
        conn.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.SQL(", ").join(map(sql.Identifier, names))
            )
        )
        schema.drop_secondary_indexes(conn)
        schema.drop_keys(conn, names)


def copy_frozen(
    conn: psycopg.Connection,
    table_name: str,
    blocks: Iterable[tuple[bytes | memoryview, int]],
    ctx: Context,
) -> None:
    """In one transaction on ``conn`` (idle, autocommit): check ``table_name`` is still
    empty, ``TRUNCATE`` it and ``COPY .. FROM STDIN (FREEZE)`` the ``(block, rows)`` items.

    Reports ``(table, rows, t0)`` per block and ``(table, -1, t0)`` once committed.

    Raises:
        SeedError: the table holds rows (another writer); psycopg.Error: the server refused.
    """
    t0 = time.monotonic()
    table = sql.Identifier(table_name)
    columns = sql.SQL(", ").join(map(sql.Identifier, tables.BY_NAME[table_name].columns))
    ctx.report((table_name, 0, t0))
    with conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        row = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table))
        if (row.fetchone() or (False,))[0]:
            raise SeedError(
                f"table {table_name} received rows from another session while this seed"
                " prepared it; stop other writers and run `loadgen reset --yes`"
            )
        conn.execute(sql.SQL("TRUNCATE {}").format(table))  # what FREEZE requires
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FREEZE)").format(table, columns)
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            for block, n in blocks:
                copy.write(block)
                ctx.report((table_name, n, t0))
    ctx.report((table_name, -1, t0))  # committed


def _load_task(
    plan: Plan,
    seed: int,
    reference: datetime,
    block_rows: int,
    producers: Mapping[int, Connection],
) -> Task:
    def task(conn: psycopg.Connection, ctx: Context) -> None:
        pipe = producers.get(id(conn))
        if pipe is not None:
            blocks = seed_producers.blocks(pipe, plan, seed, reference, block_rows, ctx)
        else:
            blocks = prefetch(seed_producers.table_blocks(plan, seed, reference, block_rows), ctx)
        copy_frozen(conn, plan.table, blocks, ctx)

    return task


def run(
    conns: list[psycopg.Connection],
    plans: list[Plan],
    options: SeedOptions,
    seed: int,
    reference: datetime,
    progress: ProgressFn | None,
    producers: Sequence[Connection] = (),
) -> tuple[list[TableResult], tuple[float, float], dict[str, float]]:
    """Load every plan with rows, one table per transaction, and build the keys, indexes and
    foreign keys and ANALYZE (``seed_build.jobs``: a table's build starts once it is loaded),
    on all of ``conns`` (idle, autocommit, after ``prepare``); block until all is done.
    ``producers`` (``seed_producers.started``), one per connection, generate the rows in other
    processes; without them producer threads do.

    Returns:
        per-table results in ``plans`` order, ``(CPU seconds spent generating rows, seconds
        the loaders waited for generated rows)``, and the ``time.monotonic()`` at which the
        last job of each kind (load, index, keys, analyze) ended.

    Raises:
        SeedError: a table received rows meanwhile; psycopg.Error: the server refused (or a
        duplicate/orphan row stopped a key); KeyboardInterrupt: a signal. Every statement
        still running is cancelled first, open transactions roll back.
    """
    done: dict[str, int] = {p.table: 0 for p in plans}
    seconds: dict[str, float] = {p.table: 0.0 for p in plans}
    by_name = {p.table: p for p in plans}

    def on_event(event: Any) -> None:
        table, n, t0 = event
        elapsed = time.monotonic() - t0
        if n < 0:
            seconds[table] = elapsed
            return
        done[table] += n
        if progress:
            progress(table, done[table], by_name[table].rows, elapsed)

    ctx = Context()
    pipes = {id(c): pipe for c, pipe in zip(conns, producers, strict=False)}
    loads = {
        p.table: _load_task(p, seed, reference, options.block_rows, pipes) for p in plans if p.rows
    }
    weight = {p.table: float(cost(p)) for p in plans}
    ends = run_all(conns, seed_build.jobs(conns[0], loads, weight), ctx, on_event)
    results = [
        TableResult(p.table, p.rows, seconds[p.table], p.first_id if p.rows else 0) for p in plans
    ]
    return results, (sum(ctx.cpu_s), sum(ctx.starved_s)), ends


def cost(plan: Plan) -> int:
    """Relative COPY cost of a plan: rows x columns (wide text tables weigh more)."""
    return plan.rows * len(tables.BY_NAME[plan.table].columns)
