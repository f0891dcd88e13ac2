"""After a load into key-less tables: keys, indexes, foreign keys and ANALYZE, in parallel.

The order pg_restore uses, spread over the loaders' connections:

1. the unique indexes of the primary keys and UNIQUE constraints (``sql/02_keys.sql``) and
   the secondary indexes (``sql/03_indexes.sql``), largest tables first, all at once (each
   ``CREATE INDEX`` holds only a SHARE lock); then each key ``ADD CONSTRAINT .. USING INDEX``
   (catalog only);
2. foreign keys added ``NOT VALID`` (catalog only, one connection), then each
   ``VALIDATE CONSTRAINT``ed: one scan of the child joined with its parent's key, holding
   only SHARE UPDATE EXCLUSIVE on the child and ROW SHARE on the parent, so validations of
   different children run at once (a plain ``ADD FOREIGN KEY`` locks the parent against
   the others). The catalog ends exactly as ``init`` makes it (validated constraints);
3. ``ANALYZE`` of every table.

Every step runs only for what is missing, so a build that stopped can simply run again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from loadgen import schema, tables
from loadgen.seed_parallel import Context, Job, Task, run_all

TEXT_KEY_COST = 3.0  # a text key's build relative to a bigint one of the same rows (a guess)


def _rows(conn: psycopg.Connection) -> dict[str, float]:
    """Each table's size in bytes (what a build's cost follows; right after a load, too)."""
    found = conn.execute(
        "SELECT relname, pg_relation_size(oid) FROM pg_class"
        " WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
    ).fetchall()
    return {str(name): float(n) for name, n in found}


def _statement(stmt: sql.SQL | sql.Composed) -> Task:
    def task(conn: psycopg.Connection, ctx: Context) -> None:
        conn.execute(stmt)

    return task


def _by_cost(jobs: list[tuple[float, Task | Job]]) -> list[Task | Job]:
    return [task for _cost, task in sorted(jobs, key=lambda j: -j[0])]


def key_and_index_tasks(conn: psycopg.Connection) -> list[Task | Job]:
    """Index builds for the missing primary keys, UNIQUEs and secondary indexes.

    Keys are built as ``CREATE UNIQUE INDEX`` (SHARE lock: all of a table's builds run at
    once) and attached afterwards by ``attach_keys``.
    """
    rows = _rows(conn)
    existing = {
        str(r[0])
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        ).fetchall()
    }
    jobs: list[tuple[float, Task | Job]] = []
    for key in schema.missing_keys(conn):
        if key.kind != "FOREIGN KEY" and key.name not in existing:
            cost = rows.get(key.table, 0) * (1 if key.kind == "PRIMARY KEY" else TEXT_KEY_COST)
            jobs.append((cost, _statement(key.build_index())))
    for name, table, statement in schema.index_statements():
        if name not in existing:
            jobs.append((rows.get(table, 0) * TEXT_KEY_COST, _statement(sql.SQL(statement))))  # type: ignore[arg-type]
    return _by_cost(jobs)


def attach_keys(conn: psycopg.Connection) -> None:
    """Make the built unique indexes the primary keys and UNIQUEs (catalog only)."""
    for key in schema.missing_keys(conn):
        if key.kind != "FOREIGN KEY":
            conn.execute(key.attach())


def foreign_key_tasks(conn: psycopg.Connection) -> list[Task | Job]:
    """Add the missing foreign keys ``NOT VALID`` now (on ``conn``); return their validations.

    Also returns validations of foreign keys present but not validated (a build that stopped).
    """
    for key in schema.missing_keys(conn):
        if key.kind == "FOREIGN KEY":
            conn.execute(key.add(not_valid=True))
    unvalidated = {
        (str(t), str(n))
        for t, n in conn.execute(
            "SELECT c.relname, k.conname FROM pg_constraint k JOIN pg_class c"
            " ON c.oid = k.conrelid WHERE c.relnamespace = current_schema()::regnamespace"
            " AND k.contype = 'f' AND NOT k.convalidated"
        ).fetchall()
    }
    rows = _rows(conn)
    jobs: list[tuple[float, Task | Job]] = []
    for key in schema.key_constraints():
        if (key.table, key.name) in unvalidated:
            stmt = sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                sql.Identifier(key.table), sql.Identifier(key.name)
            )
            jobs.append((rows.get(key.table, 0), Job(_statement(stmt), group=key.table)))
    return _by_cost(jobs)


def analyze_tasks(conn: psycopg.Connection) -> list[Task | Job]:
    """``ANALYZE`` of each hospital table, largest first."""
    rows = _rows(conn)
    return _by_cost(
        [
            (rows.get(t.name, 0), _statement(sql.SQL("ANALYZE {}").format(sql.Identifier(t.name))))
            for t in tables.TABLES
        ]
    )


def build(
    conns: list[psycopg.Connection],
    on_step: Callable[[str], Any] | None = None,
) -> None:
    """Add every missing key, index and foreign key (validated) using all of ``conns``.

    ``conns`` are idle and in autocommit mode; ``conns[0]`` also adds the ``NOT VALID``
    foreign keys. ``on_step(name)`` is called before each step (``keys``, ``foreign keys``).

    Raises:
        psycopg.Error: a duplicate key or orphan row (that constraint is not added; what was
            built stays), or a refusal; KeyboardInterrupt: every statement was cancelled.
    """
    if on_step:
        on_step("keys")
    run_all(conns, key_and_index_tasks(conns[0]), Context())
    attach_keys(conns[0])
    if on_step:
        on_step("foreign keys")
    run_all(conns, foreign_key_tasks(conns[0]), Context())


def analyze(conns: list[psycopg.Connection]) -> None:
    """``ANALYZE`` every hospital table using all of ``conns`` (idle, autocommit)."""
    run_all(conns, analyze_tasks(conns[0]), Context())
