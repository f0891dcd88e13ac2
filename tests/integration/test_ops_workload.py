"""Workload operations against a real PostgreSQL: constraints, checks, deltas, after-images."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from psycopg import sql

from loadgen import datagen, db, schema, tables
from loadgen.errors import SchemaMissingError
from loadgen.ledger.changes import RowChange
from loadgen.ops.mix import parse_mix
from loadgen.ops.registry import BY_NAME, OP_NAMES
from loadgen.ops.workload import Workload

pytestmark = pytest.mark.db

SMALL = {
    "pacientes": 60,
    "medicos": 8,
    "pacientes_convenios": 90,
    "consultas": 150,
    "exames": 150,
    "internacoes": 80,
}


def seed_small(conn: psycopg.Connection, seed: int = 7) -> None:
    """Insert a small realistic data set with datagen (the seeder's generators)."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    convenios = np.array(
        [r[0] for r in conn.execute("SELECT id FROM convenios ORDER BY id")], dtype=np.int64
    )
    parents = datagen.ParentIds(convenios=convenios)
    with conn.transaction():
        for spec in tables.TABLES:
            n = SMALL.get(spec.name)
            if n is None:
                continue
            ids = np.arange(1, n + 1, dtype=np.int64)
            batch = datagen.generate_rows(spec.name, ids, rng, parents=parents, now=now)
            rows = list(zip(*(batch[c].tolist() for c in spec.columns), strict=True))
            cols = sql.SQL(", ").join(map(sql.Identifier, spec.columns))
            marks = sql.SQL(", ").join(sql.Placeholder() * len(spec.columns))
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                        sql.Identifier(spec.name), cols, marks
                    ),
                    rows,
                )
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (spec.name, n))
            if spec.name in ("pacientes", "medicos"):
                parents = datagen.ParentIds(
                    pacientes=ids if spec.name == "pacientes" else parents.pacientes,
                    medicos=ids if spec.name == "medicos" else parents.medicos,
                    convenios=convenios,
                )


@pytest.fixture
def seeded(schema_dsn: str) -> Iterator[psycopg.Connection]:
    with db.connect(schema_dsn, autocommit=True) as conn:
        seed_small(conn)
        yield conn


def run_batches(
    conn: psycopg.Connection, work: Workload, batches: int, size: int
) -> list[RowChange]:
    changes: list[RowChange] = []
    for _ in range(batches):
        names = work.choose(size)
        if not names:
            break
        with conn.transaction():
            changes.extend(work.execute(conn, names).changes)
        work.on_commit()
    return changes


def failed_checks(conn: psycopg.Connection) -> list[tuple[str, list[str]]]:
    return [(r.name, r.examples) for r in schema.check(conn) if not r.ok]


def text_row(conn: psycopg.Connection, table: str, pk: int) -> dict[str, str | None] | None:
    """The row as ``col::text`` per column (what the after-image must equal)."""
    cols = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (table,),
        )
    ]
    query = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols),
        sql.Identifier(table),
    )
    row = conn.execute(query, (pk,)).fetchone()
    return None if row is None else dict(zip(cols, row, strict=True))


@pytest.mark.parametrize("op_name", OP_NAMES)
def test_operation_commits_and_changes_match_the_database(
    seeded: psycopg.Connection, op_name: str
) -> None:
    conn = seeded
    before = schema.counts(conn)
    work = Workload(conn, worker_id=0, num_workers=1, seed=11, mix={op_name: 1.0})
    changes = run_batches(conn, work, batches=6, size=7)

    assert changes, f"{op_name} changed nothing"
    assert {c.op_name for c in changes} == {op_name}
    spec = BY_NAME[op_name]
    assert {c.table for c in changes} == set(spec.tables)
    expected_op = {"insert": "c", "update": "u", "delete": "d"}[spec.kind]
    assert {c.op for c in changes} == {expected_op}
    assert failed_checks(conn) == []

    after = schema.counts(conn)
    delta = Counter[str]()
    for c in changes:
        delta[c.table] += {"c": 1, "d": -1, "u": 0}[c.op]
    assert {t: after[t] - before[t] for t in after} == {t: delta[t] for t in after}

    latest: dict[tuple[str, int], RowChange] = {}
    for c in changes:
        latest[(c.table, c.pk)] = c
    for (table, pk), c in latest.items():
        row = text_row(conn, table, pk)
        if c.op == "d":
            assert row is None and c.after is None
        else:
            assert c.after == row


@pytest.mark.parametrize("multirow_inserts", [True, False])
def test_default_mix_keeps_every_check_passing(
    seeded: psycopg.Connection, multirow_inserts: bool
) -> None:
    conn = seeded
    work = Workload(
        conn,
        worker_id=0,
        num_workers=1,
        seed=3,
        mix=parse_mix("insert=70,update=30,delete=10,admit_paciente=5"),
        multirow_inserts=multirow_inserts,
    )
    changes = run_batches(conn, work, batches=20, size=25)
    assert len({c.op_name for c in changes}) >= 10
    assert failed_checks(conn) == []
    latest = {(c.table, c.pk): c for c in changes}
    for (table, pk), c in latest.items():
        assert c.after == text_row(conn, table, pk)
    statuses = Counter(
        c.after["status"] for c in changes if c.op_name == "update_consulta" and c.after
    )
    assert statuses["realizada"] > statuses["faltou"] > 0


def test_admit_paciente_writes_three_linked_rows(seeded: psycopg.Connection) -> None:
    conn = seeded
    work = Workload(conn, worker_id=0, num_workers=1, seed=5, mix={"admit_paciente": 1.0})
    with conn.transaction():
        changes = work.execute(conn, ["admit_paciente"] * 3).changes
    work.on_commit()
    assert [c.table for c in changes] == ["pacientes"] * 3 + ["pacientes_convenios"] * 3 + [
        "internacoes"
    ] * 3
    pids = [c.pk for c in changes[:3]]
    assert [c.after["paciente_id"] for c in changes[3:6] if c.after] == [str(p) for p in pids]
    assert [c.after["paciente_id"] for c in changes[6:] if c.after] == [str(p) for p in pids]
    assert all(c.after and c.after["data_saida"] is None for c in changes[6:])
    # the new pacientes are parents and owned rows now
    counts = work.counts()
    assert counts["insert_paciente_convenio"] is not None
    assert counts["update_internacao"] is not None and counts["update_internacao"] >= 3


def test_two_workers_never_touch_the_same_row(seeded: psycopg.Connection) -> None:
    conn = seeded
    mix = parse_mix("update=1,delete=1,insert_paciente_convenio=1")
    works = [Workload(conn, worker_id=w, num_workers=2, seed=w, mix=mix) for w in (0, 1)]
    touched: list[set[tuple[str, int]]] = []
    for w, work in enumerate(works):
        changes = run_batches(conn, work, batches=8, size=10)
        assert changes
        mine = {(c.table, c.pk) for c in changes if c.op in ("u", "d")}
        for table, pk in mine:
            owner = pk if table != "pacientes_convenios" else None
            if owner is not None and pk <= SMALL[table]:
                assert pk % 2 == w, f"worker {w} touched {table} id {pk}"
        touched.append(mine)
    assert not touched[0] & touched[1]
    assert failed_checks(conn) == []


def test_rollback_restores_candidates(seeded: psycopg.Connection) -> None:
    conn = seeded
    mix = parse_mix("update=1,delete=1,insert_paciente_convenio=1,admit_paciente=1")
    work = Workload(conn, worker_id=0, num_workers=1, seed=9, mix=mix)
    run_batches(conn, work, batches=2, size=10)  # create some cancelled consultas etc.
    before_counts, before_rows = work.counts(), schema.counts(conn)
    names = work.choose(30)
    with conn.transaction() as tx:
        first = work.execute(conn, names).changes
        raise psycopg.Rollback(tx)
    work.on_rollback()
    assert first
    assert work.counts() == before_counts
    assert schema.counts(conn) == before_rows
    with conn.transaction():
        again = work.execute(conn, names).changes  # the retry succeeds against the constraints
    work.on_commit()
    assert Counter(c.op_name for c in again) == Counter(c.op_name for c in first)
    assert failed_checks(conn) == []


def test_choose_never_returns_an_operation_without_candidates(seeded: psycopg.Connection) -> None:
    conn = seeded
    work = Workload(
        conn,
        worker_id=0,
        num_workers=2,
        seed=1,
        mix={"update_internacao": 1.0, "delete_consulta": 1.0},
    )
    start = work.counts()
    assert start["update_internacao"] and start["delete_consulta"]
    names = work.choose(10_000)
    got = Counter(names)
    assert got["update_internacao"] == start["update_internacao"]
    assert got["delete_consulta"] == start["delete_consulta"]
    with conn.transaction():
        changes = work.execute(conn, names).changes
    work.on_commit()
    assert len(changes) == len(names)
    assert work.choose(5) == []
    assert work.counts()["update_internacao"] == 0


def test_missing_or_empty_schema_is_reported(dsn: str) -> None:
    with db.connect(dsn, autocommit=True) as conn:
        with pytest.raises(SchemaMissingError, match="loadgen init"):
            Workload(conn, worker_id=0, num_workers=1, seed=1, mix=parse_mix(None))
        schema.init(conn)
        with pytest.raises(SchemaMissingError, match="pacientes is empty"):
            Workload(conn, worker_id=0, num_workers=1, seed=1, mix=parse_mix(None))


def test_state_rolled_back_after_a_commit_that_did_happen_stays_safe(
    seeded: psycopg.Connection,
) -> None:
    """An in-doubt commit resolved as unknown: the engine calls on_rollback although the
    transaction committed. Later operations must still succeed (guards, ON CONFLICT)."""
    conn = seeded
    mix = parse_mix("insert=1,update=1,delete=1,insert_paciente_convenio=3,admit_paciente=1")
    work = Workload(conn, worker_id=0, num_workers=1, seed=21, mix=mix)
    for _ in range(3):
        names = work.choose(40)
        with conn.transaction():
            work.execute(conn, names)
        work.on_rollback()  # committed, but the workload is told otherwise
    changes = run_batches(conn, work, batches=10, size=40)
    assert changes
    assert failed_checks(conn) == []


def test_candidate_pools_stop_growing_at_their_cap(
    seeded: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays flat in long runs: inserted rows beyond MAX_POOL_ROWS are not tracked."""
    from loadgen.ops import pools

    conn = seeded
    work = Workload(
        conn,
        worker_id=0,
        num_workers=1,
        seed=2,
        mix={"insert_internacao": 1.0, "admit_paciente": 1.0},
    )
    initial = work.counts()["update_internacao"] or 0
    monkeypatch.setattr(pools, "MAX_POOL_ROWS", initial + 3)
    changes = run_batches(conn, work, batches=5, size=10)
    assert sum(c.table == "internacoes" for c in changes) == 50
    assert work.counts()["update_internacao"] == initial + 3
    assert failed_checks(conn) == []


def test_server_errors_propagate_unchanged_and_the_retry_succeeds(
    seeded: psycopg.Connection,
) -> None:
    conn = seeded
    work = Workload(conn, worker_id=0, num_workers=1, seed=4, mix=parse_mix("insert=1,update=1"))
    conn.execute("ALTER TABLE consultas ADD CONSTRAINT lg_no_new CHECK (false) NOT VALID")
    names = ["update_internacao", "insert_consulta", "update_paciente"]
    before = work.counts()
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        work.execute(conn, names)
    work.on_rollback()
    assert work.counts() == before
    conn.execute("ALTER TABLE consultas DROP CONSTRAINT lg_no_new")
    with conn.transaction():
        changes = work.execute(conn, names).changes
    work.on_commit()
    assert [c.op_name for c in changes] == names
