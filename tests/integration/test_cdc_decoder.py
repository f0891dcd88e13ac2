"""The pgoutput v1 decoder on real server output (wal_level=logical): every column type of the
hospital schema, NULLs, unicode, logical messages, truncate, and an unchanged TOASTed value,
under replica identity default and full."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from loadgen import db
from loadgen.cdc import pgoutput as P
from loadgen.cdc import slot as S
from tests.fixtures.cleanup import teardown_cdc

pytestmark = pytest.mark.db

UNICODE_NAME = 'Zoë d\'Ávila "Ñandú" \\ tab\there\nnova linha 🏥 שלום'


@dataclass
class Cdc:
    conn: psycopg.Connection
    slot: str
    publication: str

    def messages(self) -> list[tuple[int, int, P.PgOutputMessage]]:
        return list(S.iter_messages(self.conn, self.slot, self.publication, batch_changes=3))


@pytest.fixture(params=["default", "full"])
def cdc(request: pytest.FixtureRequest, schema_dsn: str) -> Iterator[Cdc]:
    tag = uuid.uuid4().hex[:10]
    slot, pub = f"lg_test_slot_{tag}", f"lg_test_pub_{tag}"
    conn = db.connect(schema_dsn, autocommit=True)
    try:
        conn.execute("CREATE TABLE cdc_toast_probe (id bigserial PRIMARY KEY, laudo text, n int)")
        conn.execute("ALTER TABLE cdc_toast_probe ALTER COLUMN laudo SET STORAGE EXTERNAL")
        conn.execute(
            sql.SQL("ALTER TABLE cdc_toast_probe REPLICA IDENTITY {}").format(
                sql.SQL(request.param.upper())
            )
        )
        result = S.setup(conn, publication=pub, slot=slot, replica_identity=request.param)
        assert result.is_slot_created
        conn.execute(
            sql.SQL("ALTER PUBLICATION {} ADD TABLE cdc_toast_probe").format(sql.Identifier(pub))
        )
        yield Cdc(conn, slot, pub)
    finally:
        teardown_cdc(conn, slot=slot, publication=pub)
        conn.close()


def _text_row(conn: psycopg.Connection, table: str, pk: int) -> tuple[str | None, ...]:
    """The row as the server's text output, per column in table order (the oracle)."""
    cols = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
            (table,),
        ).fetchall()
    ]
    q = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols),
        sql.Identifier(table),
    )
    row = conn.execute(q, (pk,)).fetchone()
    assert row is not None
    return tuple(row)


def test_every_hospital_column_type_nulls_unicode(cdc: Cdc) -> None:
    c = cdc.conn
    with c.transaction():
        xid = c.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
        pac = c.execute(
            "INSERT INTO pacientes (nome, nascimento, cpf, telefone, endereco, data_cadastro)"
            " VALUES (%s, '1950-01-31', '111.444.777-35', NULL, NULL,"
            " '2024-02-29 23:59:59.123456') RETURNING id",
            (UNICODE_NAME,),
        ).fetchone()[0]
        med = c.execute(
            "INSERT INTO medicos (nome, crm, especialidade) VALUES ('Dr. Ângelo',"
            " 'CRM/SP 123456', 'Cardiologia') RETURNING id"
        ).fetchone()[0]
        conv = c.execute("SELECT min(id) FROM convenios").fetchone()[0]
        pc = c.execute(
            "INSERT INTO pacientes_convenios (paciente_id, convenio_id, validade)"
            " VALUES (%s, %s, NULL) RETURNING id",
            (pac, conv),
        ).fetchone()[0]
        con = c.execute(
            "INSERT INTO consultas (paciente_id, medico_id, data, motivo, status)"
            " VALUES (%s, %s, '2025-06-01 08:00', 'dor', 'agendada') RETURNING id",
            (pac, med),
        ).fetchone()[0]
        exa = c.execute(
            "INSERT INTO exames (paciente_id, tipo_exame, data) VALUES"
            " (%s, 'Hemograma', '2025-06-02 09:30:00.5') RETURNING id",
            (pac,),
        ).fetchone()[0]
        inte = c.execute(
            "INSERT INTO internacoes (paciente_id, data_entrada, motivo) VALUES"
            " (%s, '2025-06-03 10:00', 'observação') RETURNING id",
            (pac,),
        ).fetchone()[0]
        c.execute("SELECT pg_logical_emit_message(true, 'loadgen', 'op=42')")
    inserted = {
        "pacientes": pac,
        "medicos": med,
        "pacientes_convenios": pc,
        "consultas": con,
        "exames": exa,
        "internacoes": inte,
    }
    oracle = {t: _text_row(c, t, pk) for t, pk in inserted.items()}
    c.execute("UPDATE consultas SET status = 'realizada' WHERE id = %s", (con,))
    after_update = _text_row(c, "consultas", con)
    c.execute("DELETE FROM internacoes WHERE id = %s", (inte,))

    msgs = cdc.messages()
    kinds = [type(m).__name__ for _, _, m in msgs]
    begins = [m for _, _, m in msgs if isinstance(m, P.Begin)]
    assert kinds.count("Begin") == kinds.count("Commit") == 3
    assert begins[0].xid == xid % 2**32  # the 32-bit xid of pg_current_xact_id()
    rels = {m.relid: m for _, _, m in msgs if isinstance(m, P.Relation)}
    inserts = [m for _, _, m in msgs if isinstance(m, P.Insert)]
    assert len(inserts) == 6
    for ins in inserts:
        rel = rels[ins.relid]
        assert ins.new == oracle[rel.name], rel.name
        assert rel.columns[0].name == "id" and rel.columns[0].is_key
    pac_rel = next(r for r in rels.values() if r.name == "pacientes")
    assert pac_rel.column_names[:3] == ("id", "nome", "nascimento")
    assert [c.type_oid for c in pac_rel.columns[:3]] == [20, 1043, 1082]  # int8 varchar date
    assert inserts[0].new[1] == UNICODE_NAME and inserts[0].new[4] is None
    msg = next(m for _, _, m in msgs if isinstance(m, P.Message))
    assert msg.is_transactional and msg.prefix == "loadgen" and msg.content == b"op=42"
    upd = next(m for _, _, m in msgs if isinstance(m, P.Update))
    assert upd.new == after_update
    dele = next(m for _, _, m in msgs if isinstance(m, P.Delete))
    if rels[dele.relid].replica_identity == "f":
        assert dele.old_kind == "O" and upd.old_kind == "O"
        assert dele.old == oracle["internacoes"]
        assert upd.old == oracle["consultas"]
    else:
        assert dele.old_kind == "K" and upd.old is None
        assert dele.old[0] == str(inte) and set(dele.old[1:]) == {None}
    commits = [m for _, _, m in msgs if isinstance(m, P.Commit)]
    assert [b.final_lsn for b in begins] == [m.commit_lsn for m in commits]
    assert commits == sorted(commits, key=lambda m: m.commit_lsn)


def test_unchanged_toast_and_truncate(cdc: Cdc) -> None:
    c = cdc.conn
    big = c.execute(
        "SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i"
    ).fetchone()[0]  # 6400 incompressible-ish chars, stored out of line
    pk = c.execute(
        "INSERT INTO cdc_toast_probe (laudo, n) VALUES (%s, 1) RETURNING id", (big,)
    ).fetchone()[0]
    c.execute("UPDATE cdc_toast_probe SET n = 2 WHERE id = %s", (pk,))
    c.execute("UPDATE cdc_toast_probe SET laudo = 'curto', n = 3 WHERE id = %s", (pk,))
    c.execute("TRUNCATE cdc_toast_probe")
    msgs = [m for _, _, m in cdc.messages()]
    ins = next(m for m in msgs if isinstance(m, P.Insert))
    assert ins.new == (str(pk), big, "1")
    upd1, upd2 = [m for m in msgs if isinstance(m, P.Update)]
    assert upd1.new[0] == str(pk) and upd1.new[2] == "2"
    assert upd1.new[1] is P.UNCHANGED_TOAST  # the server did not resend the big value
    assert repr(upd1.new[1]) == "UNCHANGED_TOAST" and not isinstance(upd1.new[1], str)
    if upd1.old_kind == "O":  # FULL: the old row is sent; its big value comes along or as 'u'
        assert upd1.old is not None and upd1.old[2] == "1"
        assert upd1.old[1] in (big, P.UNCHANGED_TOAST)
    assert upd2.new == (str(pk), "curto", "3")
    trunc = next(m for m in msgs if isinstance(m, P.Truncate))
    rel = next(m for m in msgs if isinstance(m, P.Relation) and m.name == "cdc_toast_probe")
    assert trunc.relids == (rel.relid,) and not trunc.is_cascade
