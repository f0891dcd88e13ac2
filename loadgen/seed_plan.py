"""Where a seed's rows go: id ranges reserved from the sequences, parents, sequences after.

``plan`` decides each table's id range (after max(id) and the sequence, reserved so that a
stream running meanwhile never takes one) and the parent ids its foreign keys draw from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from loadgen import datagen, schema, tables
from loadgen.errors import SeedError
from loadgen.seed_options import SeedOptions

Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Plan:
    """One table's share of a seed: ids ``first_id .. first_id + rows - 1`` and its parents."""

    table: str
    first_id: int
    rows: int
    parents: datagen.ParentIds

    def pieces(self) -> list[tuple[int, int]]:
        """The run's pieces of this table, ``(lo, hi)`` half-open, on datagen's chunk grid."""
        return list(datagen.iter_pieces(self.first_id, self.first_id + self.rows))


def ids(conn: psycopg.Connection, table: str) -> Int64Array:
    rows = conn.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier(table)))
    return np.array([r[0] for r in rows.fetchall()], dtype=np.int64)


def reserve_ids(conn: psycopg.Connection, table: str, num_rows: int) -> int:
    """Reserve ``num_rows`` consecutive ids of ``table`` from its sequence; return the first.

    The range starts after both max(id) and the sequence's position, and the sequence is moved
    past it while concurrent ``nextval`` calls wait (a stream inserting meanwhile never gets
    one of these ids): ``ALTER SEQUENCE`` (a no-op: the same increment) takes the lock
    ``nextval`` needs, for this short transaction. Needs the sequence's ownership.
    """
    seq = sequence(conn, table)
    seq_id = sql.Identifier(*seq.split("."))
    with conn.transaction():
        row = conn.execute(
            "SELECT seqincrement FROM pg_sequence WHERE seqrelid = %s::regclass", (seq,)
        ).fetchone()
        conn.execute(
            sql.SQL("ALTER SEQUENCE {} INCREMENT BY {}").format(
                seq_id, sql.Literal(int(row[0]) if row else 1)
            )
        )
        row = conn.execute(
            sql.SQL(
                "SELECT greatest((SELECT coalesce(max(id), 0) FROM {t}),"
                " (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {s}))"
            ).format(t=sql.Identifier(table), s=seq_id)
        ).fetchone()
        first = int(row[0]) + 1 if row else 1
        if num_rows > 0:
            conn.execute("SELECT setval(%s::regclass, %s)", (seq, first + num_rows - 1))
    return first


def sequence(conn: psycopg.Connection, table: str) -> str:
    row = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
    if not row or not row[0]:
        raise SeedError(f"table {table} has no id sequence; run `loadgen init --drop`")
    return str(row[0]).replace('"', "")


def plan(conn: psycopg.Connection, options: SeedOptions) -> tuple[list[Plan], bool]:
    """Decide id ranges and parents per table; reserve the ids from the sequences.

    Returns ``(plans in foreign-key order, tables_were_empty)``.

    Raises:
        SeedError: tables hold rows without ``append``; no convenios; impossible counts.
    """
    counts = schema.counts(conn)
    busy = [t for t, n in counts.items() if n and not tables.BY_NAME[t].is_lookup]
    if busy and not options.append:
        raise SeedError(
            f"tables already hold data ({', '.join(f'{t}={counts[t]}' for t in busy)}); "
            "use --append or `loadgen reset --yes`"
        )
    convenios = ids(conn, "convenios")
    if convenios.size == 0:
        raise SeedError("table convenios is empty (lookup rows); run `loadgen init`")
    rows = {t: options.rows_for(t) for t in tables.TABLE_NAMES if not tables.BY_NAME[t].is_lookup}
    # ids reserved from the sequences: a stream running meanwhile cannot take them
    first = {t: reserve_ids(conn, t, n) for t, n in rows.items()}

    def with_new(table: str) -> Int64Array:
        old = ids(conn, table) if options.append else np.empty(0, dtype=np.int64)
        return np.concatenate((old, np.arange(first[table], first[table] + rows[table])))

    pacientes, medicos = with_new("pacientes"), with_new("medicos")
    new_pacientes = np.arange(first["pacientes"], first["pacientes"] + rows["pacientes"])
    max_links = len(new_pacientes) * len(convenios)
    if rows["pacientes_convenios"] > max_links:
        raise SeedError(
            f"{rows['pacientes_convenios']} pacientes_convenios need at least "
            f"{-(-rows['pacientes_convenios'] // len(convenios))} new pacientes "
            f"(links go to this run's pacientes, <= {len(convenios)} each); "
            "raise SEED_PACIENTES or lower SEED_PACIENTES_CONVENIOS"
        )
    for child in ("consultas", "exames", "internacoes"):
        if rows[child] and pacientes.size == 0:
            raise SeedError(f"cannot seed {child}: no pacientes; raise SEED_PACIENTES")
    if rows["consultas"] and medicos.size == 0:
        raise SeedError("cannot seed consultas: no medicos; raise SEED_MEDICOS")
    everyone = datagen.ParentIds(pacientes=pacientes, medicos=medicos, convenios=convenios)
    plans = []
    for spec in tables.TABLES:
        if spec.is_lookup:
            continue
        parents = everyone
        if spec.name == "pacientes_convenios":
            parents = datagen.ParentIds(
                pacientes=new_pacientes, convenios=convenios, link_base_id=first[spec.name]
            )
        plans.append(Plan(spec.name, first[spec.name], rows[spec.name], parents))
    return plans, not busy


def advance_sequences(conn: psycopg.Connection) -> None:
    """Move every sequence forward past its table's max(id) (never backwards)."""
    for spec in tables.TABLES:
        conn.execute(
            sql.SQL(  # forward only: never hand out again an id a stream may hold
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), m) "
                "FROM (SELECT max(id) AS m FROM {}) x WHERE m IS NOT NULL AND m > "
                "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {})"
            ).format(
                sql.Identifier(spec.name), sql.Identifier(*sequence(conn, spec.name).split("."))
            ),
            (spec.name,),
        )
