"""numeric-extremes, time-extremes, types, unicode: values that decoders and sinks mangle.

Values are written as PostgreSQL input text with an explicit cast, so nothing is turned into a
Python float or a naive datetime on the way in; the ledger holds the server's text output.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import numpy as np
from psycopg import sql

from loadgen.datagen.copy_text import encode_rows
from loadgen.scenarios.base import Context, Scenario
from loadgen.scenarios.recorder import Txn, cast

NUMERIC_T, TIMES_T, TYPES_T, TEXTS_T = "cdc_numericos", "cdc_tempos", "cdc_tipos", "cdc_textos"

# column → type, for the cast of each input text
_NUMERIC_TYPES = {
    "livre": "numeric",
    "preciso": "numeric(38,18)",
    "duplo": "float8",
    "simples": "float4",
    "inteiro": "int8",
    "pequeno": "int2",
    "dinheiro": "money",
}
_NUMERIC_ROWS: dict[str, dict[str, str | None]] = {
    "nan": {"livre": "NaN", "duplo": "NaN", "simples": "NaN"},
    "zero-negativo": {
        "livre": "-0",
        "preciso": "-0.000000000000000000",
        "duplo": "-0",
        "simples": "-0",
        "inteiro": "-0",
        "pequeno": "-0",
        "dinheiro": "-0.00",
    },
    "maximos": {
        "livre": "9" * 300 + "." + "9" * 300,
        "preciso": "99999999999999999999.999999999999999999",
        "duplo": "1.7976931348623157e308",
        "simples": "3.4028235e38",
        "inteiro": "9223372036854775807",
        "pequeno": "32767",
        "dinheiro": "92233720368547758.07",
    },
    "minimos": {
        "livre": "-0." + "0" * 999 + "1",
        "preciso": "-0.000000000000000001",
        "duplo": "4.9e-324",
        "simples": "1.4e-45",
        "inteiro": "-9223372036854775808",
        "pequeno": "-32768",
        "dinheiro": "-92233720368547758.08",
    },
    "escala": {
        "livre": "3.14159265358979323846264338327950288419716939937510",
        "preciso": "0.100000000000000000",
        "duplo": "0.1",
        "simples": "0.1",
        "dinheiro": "0.01",
    },
    "infinitos": {"duplo": "Infinity", "simples": "-Infinity"},
    "nulos": {},
}

_TIME_TYPES = {
    "instante": "timestamptz",
    "local_ts": "timestamp",
    "dia": "date",
    "hora": "time",
    "hora_tz": "timetz",
    "duracao": "interval",
}
_TIME_ROWS: dict[str, dict[str, str | None]] = {
    "infinito": {"instante": "infinity", "local_ts": "infinity", "dia": "infinity"},
    "menos-infinito": {"instante": "-infinity", "local_ts": "-infinity", "dia": "-infinity"},
    "antes-de-cristo": {
        "instante": "0044-03-15 12:00:00+00 BC",
        "local_ts": "4713-01-01 00:00:00 BC",
        "dia": "4713-01-01 BC",
        "hora": "00:00:00",
        "hora_tz": "00:00:00+15:59",
        "duracao": "-178000000 years",
    },
    "futuro-distante": {
        "instante": "294276-12-31 23:59:59.999999+00",
        "local_ts": "294276-12-31 23:59:59.999999",
        "dia": "5874897-12-31",
        "hora": "24:00:00",
        "hora_tz": "24:00:00-15:59",
        "duracao": "178000000 years 11 mons 30 days 23:59:59.999999",
    },
    "microssegundos": {
        "instante": "2024-02-29 23:59:59.999999+00",
        "local_ts": "2000-01-01 00:00:00.000001",
        "dia": "2024-02-29",
        "hora": "12:34:56.789012",
        "hora_tz": "12:34:56.789012+05:45",
        "duracao": "1 day -00:00:00.000001",
    },
    "nulos": {},
}
# Written from sessions in these zones (offsets with minutes, DST, far from UTC): the same
# local wall-clock text means different instants; the ledger renders them in UTC.
WRITER_TIME_ZONES = (
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/St_Johns",
    "Australia/Lord_Howe",
)

_TYPE_TYPES = {
    "uid": "uuid",
    "doc": "jsonb",
    "doc_json": "json",
    "textos": "text[]",
    "inteiros": "int4[]",
    "uids": "uuid[]",
    "dados": "bytea",
    "ip": "inet",
    "ativo": "boolean",
}
_TYPE_ROWS: dict[str, dict[str, str | None]] = {
    "cheio": {
        "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "doc": '{"paciente": {"nome": "Zoë Ñandú 🏥", "alergias": ["pólen", "🐝"], "vazio": {},'
        ' "lista": [], "nulo": null, "num": 1.50, "grande": 123456789012345678901234567890,'
        ' "aninhado": {"a": {"b": {"c": [1, [2, [3]]]}}}, "rtl": "שלום"}}',
        "doc_json": '{"b": 1,  "a": [1, 2],\n "a": "chave repetida"}',
        "textos": '{simples,"com,vírgula","com \\"aspas\\"","barra\\\\invertida","",NULL,"NULL"}',
        "inteiros": "{1,NULL,-2147483648,2147483647}",
        "uids": "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}",
        "dados": "\\x000102ff00fe00",
        "ip": "2001:db8::1/64",
        "ativo": "true",
    },
    "vazios": {
        "uid": "00000000-0000-0000-0000-000000000000",
        "doc": "{}",
        "doc_json": "[]",
        "textos": "{}",
        "inteiros": "{}",
        "uids": "{}",
        "dados": "\\x",
        "ip": "0.0.0.0/0",
        "ativo": "false",
    },
    "json-null": {
        "doc": "null",
        "doc_json": "null",
        "textos": "{NULL}",
        "inteiros": "{{1,2},{3,4}}",
        "dados": "\\x00",
        "ip": "192.168.0.1/24",
    },
    "nulos": {},
}

UNICODE_TEXTS = (
    ("José da Conceição Ñúñez", "Rua São João, 1º andar — apto. 12", "acentuação"),
    ("Zoë Ødegård-Łukasz", "Øster Allé 7, København", None),
    ("Maria 🏥💉 Souza 👩🏽‍⚕️", "Av. 🌴 Atlântica, 🏖️", "emoji com ZWJ e modificador de tom"),
    ("דוד כהן / محمد علي", "שדרות רוטשילד 1, תל אביב", "RTL misturado com LTR: abc 123"),
    ('O\'Brien "Tico" `crase`', 'Rua D\'Ajuda, "casa" 3', "aspas ' \" `"),
    ("C:\\pasta\\arquivo \\N", "\\N", "\\N é dado, não NULL; \\\\ duas barras"),
    ("linha1\nlinha2\tcoluna\r\nfim", "tab\taqui", "\r\n\t\\ \b\f\v"),
    ("e\u0301 (combinado) \u00a0nbsp \u200bzwsp", "\ufeffBOM no início", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛"),
    ("🏥" * 150, "ç" * 200, "varchar(150) e (200) cheios de caracteres multibyte"),
)


def _insert_cast(
    t: Txn, table: str, rotulo: str, values: Mapping[str, str | None], types: Mapping[str, str]
) -> int:
    row = t.insert(table, {"rotulo": rotulo, **{c: cast(values.get(c), types[c]) for c in types}})
    return int(row["id"])  # type: ignore[arg-type]


def run_numeric_extremes(ctx: Context) -> None:
    """Insert rows of extreme numeric/float/int/money values, then update some to others."""
    rec = ctx.rec
    rows = dict(_NUMERIC_ROWS)
    if rec.conn.info.server_version >= 140000:  # numeric infinity exists since PostgreSQL 14
        rows["infinitos"] = {**rows["infinitos"], "livre": "-Infinity"}
    ids: dict[str, int] = {}
    with rec.txn() as t:
        for rotulo, values in rows.items():
            ids[rotulo] = _insert_cast(t, NUMERIC_T, rotulo, values, _NUMERIC_TYPES)
    with rec.txn() as t:
        t.update(
            NUMERIC_T,
            ids["maximos"],
            {
                "livre": sql.SQL("-livre"),
                "duplo": sql.SQL("-duplo"),
                "dinheiro": sql.SQL("dinheiro * -1 + 0.01::money"),
            },
        )
        t.update(
            NUMERIC_T,
            ids["nulos"],
            {"livre": cast("1e-130", "numeric"), "duplo": cast("-Infinity", "float8")},
        )
        t.update(NUMERIC_T, ids["nan"], {"livre": cast("0.0000000000", "numeric")})


def run_time_extremes(ctx: Context) -> None:
    """Insert infinities, BC and far-future instants, microseconds and intervals; then write
    the same local wall-clock time from sessions in several time zones."""
    rec = ctx.rec
    ids: dict[str, int] = {}
    with rec.txn() as t:
        for rotulo, values in _TIME_ROWS.items():
            ids[rotulo] = _insert_cast(t, TIMES_T, rotulo, values, _TIME_TYPES)
    for zone in WRITER_TIME_ZONES:
        with rec.txn() as t:
            # The zone only shapes how input is read; the after-image is read back in UTC.
            t.conn.execute("SELECT set_config('TimeZone', %s, true)", (zone,))
            pk = int(
                t.conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (rotulo, instante, local_ts, dia, hora_tz, duracao) VALUES"
                        " (%s, '2025-11-02 00:30:00.000001', '2025-11-02 00:30:00.000001', "
                        "'2025-11-02', '08:00:00', '1 mon -1 day +25:00:00') RETURNING id"
                    ).format(sql.Identifier(TIMES_T)),
                    (f"fuso {zone}",),
                ).fetchone()[0]  # type: ignore[index]
            )
            t.conn.execute(
                sql.SQL(
                    "UPDATE {} SET instante = instante + interval '1 day' WHERE id = %s"
                ).format(sql.Identifier(TIMES_T)),
                (ids["microssegundos"],),
            )
            t.conn.execute("SELECT set_config('TimeZone', 'UTC', true)")
            t.record("c", TIMES_T, pk)
            t.record("u", TIMES_T, ids["microssegundos"])
    with rec.txn() as t:
        t.update(
            TIMES_T,
            ids["infinito"],
            {
                "instante": cast("-infinity", "timestamptz"),
                "duracao": cast("-00:00:00.000001", "interval"),
            },
        )


def run_types(ctx: Context) -> None:
    """Insert uuid, jsonb/json, arrays, bytea with zero bytes, inet, boolean, and NULL in each;
    then update some of them."""
    rec = ctx.rec
    ids: dict[str, int] = {}
    with rec.txn() as t:
        for rotulo, values in _TYPE_ROWS.items():
            ids[rotulo] = _insert_cast(t, TYPES_T, rotulo, values, _TYPE_TYPES)
    with rec.txn() as t:
        t.update(
            TYPES_T,
            ids["cheio"],
            {
                "ativo": cast(None, "boolean"),
                "uid": uuid.uuid4(),
                "dados": b"\x00" * 3 + "ção".encode(),
                "doc": sql.SQL("""doc || '{"novo": ["ok"]}'"""),
            },
        )
        t.update(
            TYPES_T,
            ids["nulos"],
            {"textos": ["a", None, "b c"], "ativo": True, "ip": cast("::ffff:10.0.0.1", "inet")},
        )


def _copy_rows(t: Txn, rows: Sequence[tuple[str, str | None, str | None]]) -> list[int]:
    """COPY the rows in with our COPY text encoder; return their ids (drawn beforehand)."""
    ids = [
        int(r[0])
        for r in t.conn.execute(
            "SELECT nextval('cdc_textos_id_seq') FROM generate_series(1, %s)", (len(rows),)
        )
    ]
    columns = [np.array(ids, dtype=np.int64)] + [
        np.array([r[i] for r in rows], dtype=object) for i in range(3)
    ]
    with (
        t.conn.cursor() as cur,
        cur.copy(
            sql.SQL("COPY {} (id, nome, endereco, obs) FROM STDIN").format(sql.Identifier(TEXTS_T))
        ) as cp,
    ):
        cp.write(encode_rows(columns))
    return ids


def run_unicode(ctx: Context) -> None:
    """Names and addresses with accents, emoji, RTL, quotes, backslashes, tabs and newlines,
    inserted with INSERT and with COPY (our encoder), then updated."""
    rec = ctx.rec
    with rec.txn() as t:
        inserted = [
            int(
                t.insert(
                    TEXTS_T,
                    {
                        "nome": n,
                        "endereco": e,  # type: ignore[arg-type]
                        "obs": o,
                    },
                )["id"]
            )
            for n, e, o in UNICODE_TEXTS
        ]
    with rec.txn() as t:
        for pk in _copy_rows(t, UNICODE_TEXTS):
            t.record("c", TEXTS_T, pk)
    with rec.txn() as t:
        t.update(TEXTS_T, inserted[0], {"obs": "\t".join(n for n, _, _ in UNICODE_TEXTS[:6])})


NUMERIC_EXTREMES = Scenario(
    name="numeric-extremes",
    summary="numeric with 600 and 1000 digits, NaN, -0, infinities, numeric(38,18) limits, "
    "float8/float4 extremes and denormals, int8/int2 limits, money limits",
    expect="every value exactly as the server prints it (no rounding through a float, NaN and "
    "infinities kept, -0 as the type prints it)",
    tables=(NUMERIC_T,),
    run=run_numeric_extremes,
)
TIME_EXTREMES = Scenario(
    name="time-extremes",
    summary="timestamptz/timestamp/date at ±infinity, BC and far-future limits, microseconds, "
    "time 24:00, timetz offsets, intervals; writers in several time zones",
    expect="every value as the server prints it under TimeZone=UTC and DateStyle=ISO: no "
    "infinity turned into a date, no BC lost, no microsecond rounded, no zone shift",
    tables=(TIMES_T,),
    run=run_time_extremes,
)
TYPES_SCENARIO = Scenario(
    name="types",
    summary="uuid, jsonb (nested, unicode, empty, JSON null), json (kept verbatim), arrays of "
    "text/int/uuid (NULL elements, empty, 2-D), bytea with zero bytes, inet, boolean, "
    "and SQL NULL in each",
    expect="each value as the server prints it; JSON null distinct from SQL NULL; bytea as hex",
    tables=(TYPES_T,),
    run=run_types,
)
UNICODE = Scenario(
    name="unicode",
    summary="names and addresses with accents, emoji (ZWJ), right-to-left text, quotes, "
    "backslashes, \\N as data, tabs, CR/LF, combining marks; by INSERT and by COPY",
    expect="every string byte for byte as written (COPY escaping included)",
    tables=(TEXTS_T,),
    run=run_unicode,
)
