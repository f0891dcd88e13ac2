"""Keys, indexes, foreign keys and ANALYZE for key-less tables, overlapping the load.

The work pg_restore does after the data, as jobs on the loaders' connections
(``seed_parallel.run_all``), each table's starting as soon as its own load committed:

1. the unique indexes of its primary key and UNIQUE constraints (``sql/02_keys.sql``) and its
   secondary indexes (``sql/03_indexes.sql``), all at once (each ``CREATE INDEX`` holds only
   a SHARE lock), largest first; then ``ADD CONSTRAINT .. USING INDEX`` (catalog only);
2. each foreign key once both tables have their keys: added ``NOT VALID`` (catalog only),
   then ``VALIDATE CONSTRAINT``: one scan of the child joined with its parent's key, holding
   only SHARE UPDATE EXCLUSIVE on the child and ROW SHARE on the parent, so validations of
   different children run at once (a plain ``ADD FOREIGN KEY`` locks the parent against the
   others). The catalog ends exactly as ``init`` makes it (validated constraints);
3. ``ANALYZE`` of each table once its indexes exist.

Jobs whose locks conflict on a table never run at once (``Job.groups``), so no connection
sits waiting on another's lock. Only what is missing is built: a build that stopped can
simply run again (``schema.restore`` does it on one connection).
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg import sql

from loadgen import schema, tables
from loadgen.seed_parallel import Context, Job, Task, run_all

TEXT_KEY_COST = 3.0  # a text key's build relative to a bigint one of the same rows (a guess)


def _statement(stmt: sql.SQL | sql.Composed) -> Task:
    def task(conn: psycopg.Connection, ctx: Context) -> None:
        conn.execute(stmt)

    return task


def _relations(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
    ).fetchall()
    return {str(r[0]) for r in rows}


def _unvalidated(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
        " WHERE c.relnamespace = current_schema()::regnamespace AND k.contype = 'f'"
        " AND NOT k.convalidated"
    ).fetchall()
    return {str(r[0]) for r in rows}


def jobs(
    conn: psycopg.Connection,
    loads: Mapping[str, Task],
    weight: Mapping[str, float],
) -> list[Job]:
    """The load jobs of ``loads`` (table -> task, kind ``load``) and every build job, in
    priority order: loads, index builds (kind ``index``), key attachments and foreign keys
    (``keys``), ANALYZE (``analyze``). ``weight`` orders them (a table's relative size).

    Reads the catalog on ``conn``: only missing keys and indexes, and unvalidated foreign keys,
    get a job.
    """
    existing = _relations(conn)
    missing = schema.missing_keys(conn)
    unvalidated = _unvalidated(conn)

    def w(table: str) -> float:
        return -float(weight.get(table, 0.0))

    def load_need(table: str) -> frozenset[str]:
        return frozenset({f"load:{table}"}) if table in loads else frozenset()

    out = [
        Job(task, f"load:{t}", "load") for t, task in sorted(loads.items(), key=lambda kv: w(kv[0]))
    ]
    builds: list[tuple[float, str, Job]] = []  # (order, table, job)
    for key in missing:
        if key.kind != "FOREIGN KEY" and key.name not in existing:
            factor = 1.0 if key.kind == "PRIMARY KEY" else TEXT_KEY_COST
            job = Job(_statement(key.build_index()), f"index:{key.name}", "index",
                      load_need(key.table))  # fmt: skip
            builds.append((w(key.table) * factor, key.table, job))
    for name, table, statement in schema.index_statements():
        if name not in existing:
            job = Job(_statement(sql.SQL(statement)), f"index:{name}", "index",  # type: ignore[arg-type]
                      load_need(table))  # fmt: skip
            builds.append((w(table) * TEXT_KEY_COST, table, job))
    builds.sort(key=lambda b: b[0])
    out += [job for _order, _table, job in builds]
    built: dict[str, set[str]] = {}
    for _order, table, job in builds:
        built.setdefault(table, set()).add(job.name)

    def keyed(table: str) -> frozenset[str]:
        """What must be done before foreign keys or ANALYZE touch ``table``."""
        return load_need(table) | built.get(table, set()) | {f"attach:{table}"}

    for spec in sorted(tables.TABLES, key=lambda t: w(t.name)):
        attach = [k for k in missing if k.table == spec.name and k.kind != "FOREIGN KEY"]
        if attach:

            def run(
                conn: psycopg.Connection, ctx: Context, todo: list[schema.Key] = attach
            ) -> None:
                for key in todo:
                    conn.execute(key.attach())

            out.append(Job(run, f"attach:{spec.name}", "keys",
                           frozenset(built.get(spec.name, set())) | load_need(spec.name),
                           frozenset({spec.name})))  # fmt: skip
    fks = [k for k in schema.key_constraints() if k.kind == "FOREIGN KEY"]
    for key in sorted(fks, key=lambda k: w(k.table)):
        parent = key.parent or key.table
        if key in missing:
            out.append(Job(_statement(key.add(not_valid=True)), f"fk:{key.name}", "keys",
                           keyed(key.table) | keyed(parent),
                           frozenset({key.table, parent})))  # fmt: skip
        if key in missing or key.name in unvalidated:
            stmt = sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                sql.Identifier(key.table), sql.Identifier(key.name)
            )
            out.append(Job(_statement(stmt), f"validate:{key.name}", "keys",
                           keyed(key.table) | keyed(parent) | {f"fk:{key.name}"},
                           frozenset({key.table})))  # fmt: skip
    for spec in sorted(tables.TABLES, key=lambda t: w(t.name)):
        stmt = sql.SQL("ANALYZE {}").format(sql.Identifier(spec.name))
        out.append(Job(_statement(stmt), f"analyze:{spec.name}", "analyze",
                       keyed(spec.name), frozenset({spec.name})))  # fmt: skip
    return out


def sizes(conn: psycopg.Connection) -> dict[str, float]:
    """Each table's size in bytes (a build's cost follows it)."""
    rows = conn.execute(
        "SELECT relname, pg_relation_size(oid) FROM pg_class"
        " WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
    ).fetchall()
    return {str(name): float(n) for name, n in rows}


def build(conns: list[psycopg.Connection]) -> dict[str, float]:
    """Add every missing key, index and foreign key (validated) and ANALYZE, on all of
    ``conns`` (idle, autocommit). Returns when each kind of job ended (``run_all``).

    Raises:
        psycopg.Error: a duplicate key or orphan row (that constraint is not added; what was
            built stays), or a refusal; KeyboardInterrupt: every statement was cancelled.
    """
    return run_all(conns, jobs(conns[0], {}, sizes(conns[0])), Context())
