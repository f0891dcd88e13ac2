"""Debezium: a reader for dumped change events (the connector settings: ``debezium_config``).

The reader takes one JSON document per line, as ``kafka-console-consumer`` or ``kcat`` print
them: the value alone (with or without the JsonConverter ``schema``/``payload`` envelope),
optionally preceded by the key and a tab; a delete's tombstone is the line ``null``. Values are
turned back into PostgreSQL's text output using the column types in the database and the
settings ``debezium_config`` emits (``decimal.handling.mode=string``,
``time.precision.mode=adaptive_time_microseconds``, ``binary.handling.mode=hex``,
``interval.handling.mode=string``; see ``debezium_types``), so they compare exactly with the
ledger.

Debezium delivers at least once: an event seen again (same LSN, table, key and op) is a
duplicate, reported apart from losses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import psycopg
from psycopg import sql

from loadgen.cdc import debezium_types as T
from loadgen.cdc import ledger_index
from loadgen.cdc.capture import TOAST_TRACK_MIN_CHARS, UNCHANGED, partition_roots
from loadgen.cdc.ledger_index import OP_CODES, occurrences
from loadgen.cdc.verify import DEFAULT_MAX_EXAMPLES, Verifier, VerifyReport, gc_paused
from loadgen.errors import ConfigError
from loadgen.ledger.resolve import server_resolver

UNAVAILABLE_PLACEHOLDER = "__debezium_unavailable_value"  # unavailable.value.placeholder default
_SNAPSHOT, _TRUNCATE = "r", "t"


# -- value conversion: Debezium JSON → PostgreSQL text output -------------------------------

Converter = Callable[[Any], Any]


def _float(v: Any) -> str:
    if isinstance(v, str):  # NaN / Infinity arrive as strings
        return v
    s = repr(float(v))
    return s[:-2] if s.endswith(".0") else s


def _bytea_hex(v: Any) -> str:
    return "\\x" + str(v).lower()


def _converter(type_name: str, typmod: int, element: str | None = None) -> Converter:
    """The converter for one column type (``element``: the element type of an array)."""
    if element is not None:
        return T.array_of(_converter(element, -1))
    if type_name in ("int2", "int4", "int8", "oid"):
        return lambda v: str(int(v))
    if type_name == "bool":
        return lambda v: "t" if v else "f"
    if type_name == "date":
        return T.date_days
    if type_name == "timestamp":  # adaptive: precision ≤ 3 → ms
        return T.timestamp_millis if 0 <= typmod <= 3 else T.timestamp_micros
    if type_name == "timestamptz":
        return T.timestamptz
    if type_name == "time":
        return T.time_micros
    if type_name == "interval":
        return T.interval_iso
    if type_name in ("float4", "float8"):
        return _float
    if type_name == "bytea":
        return _bytea_hex
    if type_name == "money":
        return T.money
    if type_name == "numeric":
        return T.numeric
    # text, varchar, uuid, json, jsonb, inet: the string as sent. XXX: timetz arrives as
    # ZonedTime normalised to GMT, so a value written with another offset cannot compare.
    return str


def column_converters(conn: psycopg.Connection, table: str) -> dict[str, Converter]:
    """column → converter for ``table`` in the connection's current schema."""
    rows = conn.execute(
        "SELECT a.attname, t.typname, a.atttypmod, e.typname FROM pg_attribute a"
        " JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type e ON e.oid = t.typelem"
        " AND t.typcategory = 'A' WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0"
        " AND NOT a.attisdropped",
        (sql.Identifier(table).as_string(conn),),
    ).fetchall()
    return {
        str(n): _converter(str(t), int(m), None if e is None else str(e)) for n, t, m, e in rows
    }


def to_text(row: dict[str, Any], conv: dict[str, Converter]) -> dict[str, Any]:
    """Convert one Debezium row image to PostgreSQL text (unavailable values → the marker)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if v is None:
            out[k] = None
        elif v == UNAVAILABLE_PLACEHOLDER:
            out[k] = UNCHANGED
        else:
            out[k] = conv.get(k, str)(v)
    return out


# -- reading events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    line_no: int  # 1-based
    op: str  # c u d r t
    table: str
    schema: str
    tx_id: int
    lsn: int
    pk: int  # the row's id (after the change; for deletes, from before)
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """The value document of one dump line; None for a tombstone. Raises ValueError."""
    raw = raw.strip()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        key, sep, value = raw.partition(b"\t")  # "key<TAB>value" (print.key=true)
        if not sep:
            raise ValueError("not JSON") from None
        doc = orjson.loads(value)
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if "payload" in doc and "schema" in doc:
        doc = doc["payload"]
    return doc if isinstance(doc, dict) or doc is None else None


def iter_events(path: str, stats: dict[str, int]) -> Iterator[Event]:
    """Yield the change events of a dump file in file order (tombstones and others counted)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"--debezium {path!r}: {exc}") from exc
    with f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                doc = parse_line(raw)
            except (ValueError, orjson.JSONDecodeError):
                stats["unparseable_lines"] = stats.get("unparseable_lines", 0) + 1
                continue
            if doc is None:
                stats["tombstones"] = stats.get("tombstones", 0) + 1
                continue
            source = doc.get("source") or {}
            op = doc.get("op")
            if op not in ("c", "u", "d", "r", "t") or "table" not in source:
                stats["other_events"] = stats.get("other_events", 0) + 1
                continue
            row = doc.get("before") if op == "d" else doc.get("after")
            pk = (row or {}).get("id")
            if pk is None and op == "d" and row:
                pk = -1  # USING INDEX: only the identity's columns; found by them later
            elif pk is None and op != "t":
                stats["events_without_key"] = stats.get("events_without_key", 0) + 1
                continue
            yield Event(
                line_no,
                op,
                str(source["table"]),
                str(source.get("schema", "")),
                int(source.get("txId") or 0),
                int(source.get("lsn") or 0),
                int(pk or 0),
                doc.get("before"),
                doc.get("after"),
            )


def verify_file(
    conn: psycopg.Connection,
    ledger_path: str,
    events_path: str,
    *,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> VerifyReport:
    """Verify a Debezium dump against the ledger, and replay it against the tables.

    Two passes over the file: the first finds redeliveries and each change's occurrence rank
    within its transaction (by LSN), the second feeds the verifier in file order.

    Raises:
        ConfigError: missing ledger or events file, or an empty ledger.
    """
    with gc_paused():
        return _verify_file(conn, ledger_path, events_path, max_examples)


def _verify_file(
    conn: psycopg.Connection, ledger_path: str, events_path: str, max_examples: int
) -> VerifyReport:
    ledger = ledger_index.load(ledger_path, split_pk_updates=True, resolve=server_resolver(conn))
    if ledger.num_changes == 0:
        raise ConfigError(f"--ledger {ledger_path!r}: the ledger holds no changes")
    schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
    codes = ledger.codes
    wanted = set(codes.names)
    roots = partition_roots(conn)  # without publish_via_partition_root: partition names
    convs = {t: column_converters(conn, t) for t in wanted}
    stats: dict[str, int] = {}
    keys: list[tuple[int, int, int, int, int]] = []

    def key_of(ev: Event, table: str) -> int:
        if ev.pk != -1 or not ev.before:
            return ev.pk
        ident = to_text({k: v for k, v in ev.before.items() if v is not None}, convs[table])
        pk = ledger.pk_by_identity(codes.code(table), ident)
        return -1 if pk is None else pk

    for ev in iter_events(events_path, {}):
        table = roots.get(ev.table, ev.table)
        if ev.op in (_SNAPSHOT, _TRUNCATE) or table not in wanted:
            continue
        if ev.schema and ev.schema != schema:
            continue
        keys.append(
            (ev.tx_id & 0xFFFFFFFF, codes.code(table), key_of(ev, table), OP_CODES[ev.op], ev.lsn)
        )
    k = np.array(keys, np.int64).reshape(-1, 5)
    order = np.arange(len(k), dtype=np.int64)
    is_dup = occurrences([k[:, 0], k[:, 1], k[:, 2], k[:, 3], k[:, 4]], order) > 0
    keep = np.flatnonzero(~is_dup)
    occ = np.zeros(len(k), np.int64)
    occ[keep] = occurrences([k[keep, 0], k[keep, 1], k[keep, 2], k[keep, 3]], k[keep, 4])

    verifier = Verifier(ledger, max_examples=max_examples)
    wide: dict[tuple[int, int], dict[str, Any]] = {}
    i = 0
    for ev in iter_events(events_path, stats):
        if ev.op == _SNAPSHOT:
            verifier.num_snapshot += 1
            continue
        table = roots.get(ev.table, ev.table)
        if table not in wanted or (ev.schema and ev.schema != schema):
            stats["other_table_events"] = stats.get("other_table_events", 0) + 1
            continue
        code = codes.code(table)
        where = f"{events_path}:{ev.line_no} lsn {ev.lsn} txId {ev.tx_id}"
        if ev.op == _TRUNCATE:
            verifier.add_truncate(
                code,
                ev.tx_id & 0xFFFFFFFF,
                lambda t=table, w=where: {"table": t, "op": "truncate", "at": w},
            )
            wide = {key: v for key, v in wide.items() if key[0] != code}
            continue
        j, i = i, i + 1
        op = OP_CODES[ev.op]
        after = to_text(ev.after, convs[table]) if ev.after is not None and op != 2 else None
        pk = int(keys[j][2])
        desc = _describe(ev, table, pk, after, where)
        if is_dup[j]:
            verifier.add_duplicate(desc)
            continue
        unknown: list[str] = []
        if after is not None:
            # only an update may leave a value out; a create carrying the placeholder would
            # make a consumer store it as data (the values check then fails)
            if op == OP_CODES["u"] and UNCHANGED in after.values():
                prev = wide.get((code, pk), {})
                for col, v in after.items():
                    if v == UNCHANGED:
                        if col in prev and prev[col] != UNCHANGED:
                            after[col] = prev[col]
                        else:
                            unknown.append(col)
            if sum(len(v) for v in after.values() if isinstance(v, str)) > TOAST_TRACK_MIN_CHARS:
                wide[(code, pk)] = after
            rowhash = ledger_index.dict_hash(after)
        else:
            wide.pop((code, pk), None)
            rowhash = 0
        verifier.add(
            ev.tx_id,
            ev.tx_id & 0xFFFFFFFF,
            code,
            op,
            pk,
            int(occ[j]),
            rowhash,
            bool(unknown),
            lambda d=desc, u=tuple(unknown): {**d(), "unchanged_toast_unknown": list(u)},
        )
    report = verifier.finish(conn, f"debezium {events_path}")
    report.counts.update(stats)
    return report


def _describe(
    ev: Event, table: str, pk: int, after: dict[str, Any] | None, where: str
) -> Callable[[], dict[str, Any]]:
    return lambda: {"table": table, "op": ev.op, "pk": pk, "at": where, "after": after}
