"""Workload.execute overhead: rows/s through ``Workload`` vs a bare psycopg loop, same server.

Side by side in one run, one connection, batches of 50 per transaction, synchronous_commit
off (so the figure is the client's and the server's work, not fsync):

- ``bare``: ``executemany`` of 50 ``INSERT INTO consultas ... RETURNING *`` per transaction
  (what pgbench's equivalent script sends, plus the after-images the ledger needs);
- ``workload-em``: ``Workload.choose(50)`` + ``execute`` with ``--mix insert_consulta=1`` and
  ``multirow_inserts=False`` (executemany, the same statements as ``bare``);
- ``workload``: the same with multi-row inserts (one ``INSERT ... SELECT FROM unnest``);
- ``workload-mix``: the default mix (8 operations, 7 tables), multi-row inserts.

The ratio workload ÷ bare is the figure to watch (machines are noisy).

    LOADGEN_TEST_DSN=postgresql://... .venv/bin/python bench/bench_ops.py [batches]
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import psycopg
from psycopg import sql

from loadgen import datagen, db, schema, seed
from loadgen.ops.mix import parse_mix
from loadgen.ops.workload import Workload

BATCH = 50


def _bare(conn: psycopg.Connection) -> Callable[[], int]:
    """The same realistic rows the workload inserts (datagen, fresh), pre-generated."""
    pacientes = np.array([r[0] for r in conn.execute("SELECT id FROM pacientes")], np.int64)
    medicos = np.array([r[0] for r in conn.execute("SELECT id FROM medicos")], np.int64)
    parents = datagen.ParentIds(pacientes=pacientes, medicos=medicos)
    columns = ("paciente_id", "medico_id", "data", "motivo", "status")
    batch = datagen.generate_rows(
        "consultas",
        np.arange(1, 10_001, dtype=np.int64),
        np.random.default_rng(1),
        parents=parents,
        now=datetime.now(UTC).replace(tzinfo=None),
        fresh=True,
    )
    rows = list(zip(*(batch[c].tolist() for c in columns), strict=True))
    query = (
        "INSERT INTO consultas (paciente_id, medico_id, data, motivo, status) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING *"
    )
    offset = [0]

    def run() -> int:
        start = offset[0] = (offset[0] + BATCH) % (len(rows) - BATCH)
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(query, rows[start : start + BATCH], returning=True)
            n = 0
            while True:
                n += len(cur.fetchall())
                if not cur.nextset():
                    return n

    return run


def _workload(
    conn: psycopg.Connection, mix: str | None, multirow_inserts: bool = True
) -> Callable[[], int]:
    work = Workload(
        conn,
        worker_id=0,
        num_workers=1,
        seed=1,
        mix=parse_mix(mix),
        multirow_inserts=multirow_inserts,
    )

    def run() -> int:
        names = work.choose(BATCH)
        with conn.transaction():
            changes = work.execute(conn, names).changes
        work.on_commit()
        return len(changes)

    return run


def _rate(run: Callable[[], int], batches: int) -> float:
    for _ in range(10):
        run()
    t0 = time.perf_counter()
    rows = sum(run() for _ in range(batches))
    return rows / (time.perf_counter() - t0)


def main(batches: int) -> None:
    base = os.environ.get("LOADGEN_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"lg_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    dsn = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{name}"
    try:
        with db.connect(dsn, autocommit=True) as conn:
            schema.init(conn)
            seed.seed(dsn, seed.SeedOptions(scale=1, workers=1, seed=1))
            conn.execute("SET synchronous_commit = off")
            runs = {
                "bare": _bare(conn),
                "workload-em": _workload(conn, "insert_consulta=1", False),
                "workload": _workload(conn, "insert_consulta=1"),
                "workload-mix": _workload(conn, None),
            }
            rates: dict[str, list[float]] = {k: [] for k in runs}
            for _ in range(3):  # interleaved rounds: drift hits every variant alike
                for key, run in runs.items():
                    rates[key].append(_rate(run, batches))
            best = {k: max(v) for k, v in rates.items()}
            for key, value in best.items():
                print(f"{key:13s} {value:10,.0f} rows/s  ratio {value / best['bare']:.2f}")
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
