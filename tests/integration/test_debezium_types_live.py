"""What a user's own schema brings, through real Debezium and loadgen's own slot alike, under
``cdc setup --all-tables``: extra columns, a generated column, a domain and an enum on a
hospital table; the user's own tables (generated columns, domains, enums) written during the
run; and a table of the values Debezium encodes specially — unchanged TOAST inside arrays of
every kind, REAL/DOUBLE edge values, DATE and NUMERIC infinities, a domain over date, timetz
with an offset and a 2-D array (known limits) — recorded in the ledger by the test itself.
No false alarm from any of it: both verifies exit 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg import sql

from loadgen import db
from loadgen.ledger import LedgerWriter, read_ledger
from loadgen.ledger.changes import RowChange
from loadgen.scenarios.recorder import text_rows
from tests.integration.test_debezium_live import (
    Live,
    Setup,
    _check,
    capture_for,
    dbz_dsn,  # noqa: F401 - the module-scoped fixture
    drop_live,
    every_operation_mix,
    make_live,
)

pytestmark = [pytest.mark.db, pytest.mark.java, pytest.mark.slow]

USER_SCHEMA = """
CREATE TYPE humor AS ENUM ('feliz', 'triste');
CREATE DOMAIN dia_util AS date;
CREATE DOMAIN peso AS numeric(6, 2) CHECK (VALUE >= 0);
ALTER TABLE pacientes ADD COLUMN obs text, ADD COLUMN humor humor,
  ADD COLUMN revisao dia_util DEFAULT '2024-02-29', ADD COLUMN peso peso DEFAULT 70.5,
  ADD COLUMN nome_upper text GENERATED ALWAYS AS (upper(nome)) STORED;
CREATE TABLE agenda_usuario (id bigserial PRIMARY KEY, dia dia_util, h humor, p peso,
  rotulo text, rotulo_upper text GENERATED ALWAYS AS (upper(rotulo)) STORED);
CREATE TABLE tipos_live (id bigserial PRIMARY KEY, n int, t text, ta text[], ia int4[],
  ba int8[], da date[], ua uuid[], j jsonb, b bytea, nu numeric,
  r real, d float8, dt date, du dia_util, nx numeric, tz timetz, arr2 int[], ts timestamp);
"""
TOASTED = ("t", "ta", "ia", "ba", "da", "ua", "j", "b", "nu")
BIG = "SELECT string_agg(md5(i::text), '') FROM generate_series(1, 150) i"
INSERT_BIG = f"""
INSERT INTO tipos_live (n, t, ta, ia, ba, da, ua, j, b, nu)
SELECT 1, s, ARRAY[s, 'b'], ia, ia::int8[], (SELECT array_agg(date '2020-01-01' + g)
  FROM generate_series(1, 800) g), (SELECT array_agg(md5(g::text)::uuid)
  FROM generate_series(1, 300) g), jsonb_build_object('k', s), convert_to(s, 'UTF8'),
  ('0.' || repeat('7', 3000))::numeric
FROM ({BIG}) a(s), (SELECT array_agg(g) FROM generate_series(1, 2000) g) b(ia)
"""
VALUES = [  # (r, d, dt, du, nx, tz, arr2, ts)
    ("1e-45", "1e15", "infinity", "2024-02-29", "Infinity", "10:00:00+03", "{{1,2},{3,4}}",
     "2000-01-01 00:00:00.000001"),
    ("1e6", "1e16", "-infinity", "0001-01-01 BC", "-Infinity", "23:59:59+00", "{1,NULL}",
     "4713-01-01 BC"),
    ("123456", "123456789012345", "5874897-12-31", None, "NaN", None, "{}", "infinity"),
    ("3.4028235e38", "1e-5", "4713-01-01 BC", None, "1e-20", None, None, None),
]  # fmt: skip


def _record(conn: psycopg.Connection, writer: LedgerWriter, op: str, query: str) -> None:
    """Run one statement ``... RETURNING *`` in a transaction; ledger its rows as text."""
    with conn.transaction():
        txid = int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0])  # type: ignore[index]
        ids = [int(r[0]) for r in conn.execute(query + " RETURNING id").fetchall()]  # type: ignore[call-overload]
        names = [c.name for c in conn.execute("SELECT * FROM tipos_live LIMIT 0").description or ()]
        rows = text_rows(
            conn, sql.SQL("SELECT * FROM tipos_live WHERE id = ANY(%s) ORDER BY id"), (ids,)
        )
    changes = [
        RowChange("tipos_live", op, int(r[0]), dict(zip(names, r, strict=True)), f"tipos_{op}")
        for r in rows
    ]
    writer.write_txn(txid, "2026-12-01T00:00:00Z", changes)


@pytest.fixture(scope="module")
def captured(dbz_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("dbz_types")
    live = make_live(
        dbz_dsn, tmp, Setup(scenarios=False, all_tables=True), before_setup=USER_SCHEMA
    )
    cap = capture_for(live)
    try:
        cap.start()
        with db.connect(live.dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE tipos_live " + ", ".join(
                f"ALTER COLUMN {c} SET STORAGE EXTERNAL" for c in TOASTED))  # fmt: skip
            with LedgerWriter(str(live.ledger), 900) as w:
                _record(conn, w, "c", INSERT_BIG)
                _record(conn, w, "u", "UPDATE tipos_live SET n = 2")  # every big value unchanged
                _record(conn, w, "u", "UPDATE tipos_live SET n = 3, t = t || 'x'")
                for v in VALUES:
                    _record(
                        conn,
                        w,
                        "c",
                        "INSERT INTO tipos_live (r, d, dt, du, nx, tz, arr2, ts) VALUES"
                        f" ({', '.join('NULL' if x is None else repr(x) for x in v)})",
                    )
            for i in range(20):  # the user's own table: published, never in the ledger
                conn.execute(
                    "INSERT INTO agenda_usuario (dia, h, p, rotulo) VALUES ('2025-01-01', 'feliz',"
                    " 1.5, %s)",
                    (f"r{i}",),
                )
        r = live.loadgen(
            "stream", "--mix", every_operation_mix(), "--max-ops", "200", "--rate", "unlimited",
            "--ledger", f"{live.ledger}/", "--no-progress",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        with db.connect(live.dsn, autocommit=True) as conn:
            conn.execute("UPDATE agenda_usuario SET rotulo = rotulo || '!'")
        cap.stop()
        yield live
    finally:
        cap.close()
        drop_live(dbz_dsn, live)


def test_own_slot_verifies_the_user_schema(captured: Live) -> None:
    recorded = read_ledger(str(captured.ledger)).entries
    # the ledger records the generated column that no stream carries, and the added ones
    pac = next(e for e in recorded if e.table == "pacientes" and e.op == "c")
    assert pac.after is not None
    assert {"nome_upper", "obs", "humor", "revisao", "peso"} <= set(pac.after)
    r = captured.loadgen("cdc", "verify", "--ledger", str(captured.ledger))
    assert r.returncode == 0, r.stdout[-3000:]


def test_debezium_verifies_the_user_schema_and_special_encodings(captured: Live) -> None:
    code, report = captured.verify()
    assert code == 0, {c["name"]: c["examples"][:2] for c in report["checks"] if not c["ok"]}
    limits = _check(report, "known_limits")
    assert {k for k in report["counts"] if k.startswith("limit ")} == {
        "limit timetz offset lost",
        "limit 2-D array lost",
    }
    assert {e["table"] for e in limits["examples"]} == {"tipos_live"}
    assert report["counts"]["other_table_events"] >= 40  # the user's table, skipped
    assert report["counts"]["matched"] == report["counts"]["ledger_changes"]


def test_an_unchanged_toast_array_placeholder_stored_as_data_fails(
    captured: Live, tmp_path: Path
) -> None:
    """The real connector sends an unchanged TOASTed int4[] as its placeholder's UTF-8 bytes;
    the reader takes that as "unchanged". Put those bytes in a create, where no earlier value
    stands for them, and they are data: values must fail."""
    docs = [orjson.loads(x.split(b"\t")[-1]) for x in captured.events.read_bytes().splitlines()]
    ours = [d for d in docs if d and d.get("op") and d["source"]["table"] == "tipos_live"]
    placeholder = list(b"__debezium_unavailable_value")
    assert any(d["op"] == "u" and d["after"]["ia"] == placeholder for d in ours)
    create = next(d for d in ours if d["op"] == "c" and d["after"]["ia"] is not None)
    create["after"]["ia"] = placeholder
    edited = tmp_path / "placeholder_as_data.jsonl"
    edited.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    code, report = captured.verify(events=edited)
    assert code == 1 and "values" in {c["name"] for c in report["checks"] if not c["ok"]}
