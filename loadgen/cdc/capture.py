"""Turn decoded pgoutput messages into captured row changes for the verifier.

Tracks Relation messages (column names per relation id), transactions (Begin/Commit), and the
last full image of wide rows so that an unchanged-TOAST column (``u``) in a later update is
carried forward from the value the stream sent earlier, as a correct consumer must do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from loadgen.cdc import ledger_index
from loadgen.cdc import pgoutput as P
from loadgen.cdc import slot as slot_mod
from loadgen.cdc.ledger_index import OP_CODES, TableCodes
from loadgen.cdc.verify import DEFAULT_MAX_EXAMPLES, Verifier, VerifyReport, gc_paused
from loadgen.errors import CheckFailedError, ConfigError

_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from

# Rows whose text is longer than this keep their last full image so that a later
# unchanged-TOAST marker can be resolved. A value is stored out of line only when its row is
# over ~2 KB (TOAST_TUPLE_THRESHOLD) in binary form, and text renderings of the hospital
# types are never much shorter than their binary form; half of it leaves a margin.
TOAST_TRACK_MIN_CHARS = 1024
UNCHANGED = "<unchanged-toast>"


# Largest text of fixed-size types, and the biggest row that can never be TOASTed.
_FIXED_TYPE_BYTES = {16: 5, 20: 20, 21: 6, 23: 11, 26: 10, 700: 16, 701: 24, 1082: 13,
                     1083: 15, 1114: 29, 1184: 35, 2950: 36}
TOAST_TUPLE_THRESHOLD_BYTES = 2032  # PostgreSQL's default (8 KB pages)
_VARCHAR, _BPCHAR = 1043, 1042


def can_toast(columns: tuple[P.Column, ...]) -> bool:
    """Whether a row of this relation can ever be large enough for a value to go out of line.

    varchar(n)/char(n) hold at most 4n bytes (UTF-8); fixed-size types are small. Only when
    every column is bounded and the bound is under the TOAST threshold is the answer no.
    """
    total = 0
    for c in columns:
        if c.type_oid in _FIXED_TYPE_BYTES:
            total += _FIXED_TYPE_BYTES[c.type_oid]
        elif c.type_oid in (_VARCHAR, _BPCHAR) and c.typmod > 4:
            total += 4 * (c.typmod - 4) + 4
        else:
            return True
    return total >= TOAST_TUPLE_THRESHOLD_BYTES


@dataclass
class _Rel:
    name: str
    names: tuple[str, ...]
    code: int | None  # None: not a table we verify
    id_pos: int
    can_toast: bool  # False: no unchanged-TOAST marker can ever come; skip the bookkeeping


@dataclass
class CaptureStats:
    num_transactions: int = 0
    num_changes: int = 0  # row changes on verified tables
    num_other: int = 0  # row changes on other tables (ignored)
    num_messages: int = 0  # pg_logical_emit_message messages
    first_commit_lsn: int | None = None
    last_commit_lsn: int | None = None
    relations: dict[int, str] = field(default_factory=dict)


def _rel(msg: P.Relation, schema: str, codes: TableCodes, wanted: set[str]) -> _Rel:
    names = msg.column_names
    ours = msg.namespace == schema and msg.name in wanted and "id" in names
    return _Rel(msg.name, names, codes.code(msg.name) if ours else None,
                names.index("id") if "id" in names else -1, can_toast(msg.columns))


def feed_slot(verifier: Verifier, rows: Iterable[tuple[int, int, bytes]], schema: str,
              encoding: str = "utf-8") -> CaptureStats:
    """Feed every row change of ``rows`` (``slot.iter_slot`` rows: lsn, xid, message) to
    ``verifier``, decoding pgoutput v1 on the way.

    Only tables in ``schema`` named in the verifier's table codes (the 7 hospital tables plus
    any table the ledger names) are verified; changes to other tables are counted and skipped.
    Hot path: inserts, plain updates, begins and commits are decoded inline (no message
    object); every other kind goes through ``pgoutput.decode``.

    Raises:
        pgoutput.DecodeError: a message is not valid pgoutput v1.
    """
    codes = verifier.L.codes
    wanted = set(codes.names)
    stats = CaptureStats()
    rels: dict[int, _Rel] = {}
    wide: dict[tuple[int, int], tuple[P.Value, ...]] = {}
    occ: dict[tuple[int, int, int], int] = {}
    txn = xid = 0
    # rows go straight into the verifier's batch (the inline form of Verifier.add)
    batch, entries, limit = verifier._b, verifier._b_desc, verifier.batch_changes
    verifier.describer = lambda e: _describe(*e)
    c_op, u_op, d_op = OP_CODES["c"], OP_CODES["u"], OP_CODES["d"]
    decode_tuple, u32, u64 = P.decode_tuple, _U32, _U64
    unknown: tuple[str, ...]
    for lsn, _, data in rows:
        kind = data[0]
        if kind == 0x49 or kind == 0x55:  # 'I' insert, 'U' update
            r = rels[u32(data, 1)[0]]
            if r.code is None:
                stats.num_other += 1
                continue
            old = None
            if data[5] == 0x4E:  # 'N': no old tuple (the common case)
                vals = decode_tuple(data, 6, encoding)[0]
            else:
                msg = P.decode(data, encoding)
                vals, old = msg.new, msg.old  # type: ignore[union-attr]
            op = c_op if kind == 0x49 else u_op
            pk = int(vals[r.id_pos])  # type: ignore[arg-type]
            unknown = ()
            if old is not None and old[r.id_pos] != vals[r.id_pos]:
                old_pk = int(old[r.id_pos])  # type: ignore[arg-type]
                verifier.add_state_only(r.code, old_pk, d_op)  # the old key is gone
                if (r.code, old_pk) in wide:
                    wide[(r.code, pk)] = wide.pop((r.code, old_pk))
            if r.can_toast:
                if P.UNCHANGED_TOAST in vals:
                    vals, unknown = _resolve(vals, old, wide.get((r.code, pk)), r.names)
                if sum(len(v) for v in vals if isinstance(v, str)) > TOAST_TRACK_MIN_CHARS:
                    wide[(r.code, pk)] = vals
                elif wide:
                    wide.pop((r.code, pk), None)
            rowhash = hash((r.names, vals))  # ledger_index.row_hash, inlined
        elif kind == 0x42:  # 'B' begin: final LSN, commit time, xid
            txn += 1
            xid = u32(data, 17)[0]
            occ.clear()
            continue
        elif kind == 0x43:  # 'C' commit: flags, commit LSN, ...
            commit_lsn = u64(data, 2)[0]
            stats.num_transactions += 1
            if stats.first_commit_lsn is None:
                stats.first_commit_lsn = commit_lsn
            stats.last_commit_lsn = commit_lsn
            continue
        else:
            msg = P.decode(data, encoding)
            if isinstance(msg, P.Delete):
                r = rels[msg.relid]
                if r.code is None:
                    stats.num_other += 1
                    continue
                op, pk, vals, unknown, rowhash = d_op, int(msg.old[r.id_pos]), None, (), 0  # type: ignore[arg-type]
                if wide:
                    wide.pop((r.code, pk), None)
            elif isinstance(msg, P.Relation):
                rels[msg.relid] = _rel(msg, schema, codes, wanted)
                stats.relations[msg.relid] = f"{msg.namespace}.{msg.name}"
                continue
            elif isinstance(msg, P.Truncate):
                for relid in msg.relids:
                    r = rels[relid]
                    if r.code is not None:
                        code = r.code
                        verifier.add_truncate(code, xid, lambda r=r, lsn=lsn, xid=xid: {
                            "table": r.name, "op": "truncate", "at": _at(lsn, xid)})
                        for key in [k for k in wide if k[0] == code]:
                            del wide[key]
                continue
            else:
                if isinstance(msg, P.Message):
                    stats.num_messages += 1
                continue
        # pgoutput sends each change once (no redelivery within one read), so no dedup here
        k = (r.code, pk, op)
        n = occ.get(k, 0)
        occ[k] = n + 1
        stats.num_changes += 1
        batch.append((txn, xid, r.code, op, pk, n, rowhash, 0, 1 if unknown else 0))
        entries.append((r, op, pk, vals, unknown, lsn, xid))
        if len(batch) >= limit:
            verifier._flush()
    verifier._flush()
    return stats


def _resolve(vals: tuple[P.Value, ...], old: tuple[P.Value, ...] | None,
             previous: tuple[P.Value, ...] | None, names: tuple[str, ...]
             ) -> tuple[tuple[P.Value, ...], tuple[str, ...]]:
    """Replace unchanged-TOAST markers by the last value the stream carried for the column
    (the update's own old tuple under replica identity FULL, else the last full image)."""
    out, unknown = list(vals), []
    for i, v in enumerate(vals):
        if v is not P.UNCHANGED_TOAST:
            continue
        if old is not None and isinstance(old[i], str):
            out[i] = old[i]
        elif previous is not None and i < len(previous) and previous[i] is not P.UNCHANGED_TOAST:
            out[i] = previous[i]
        else:
            unknown.append(names[i])
    return tuple(out), tuple(unknown)


def _at(lsn: int, xid: int) -> str:
    return f"lsn {P.format_lsn(lsn)} xid {xid}"


def _describe(r: _Rel, op: int, pk: int, vals: tuple[P.Value, ...] | None,
              unknown: tuple[str, ...], lsn: int, xid: int) -> dict[str, Any]:
    after = None if vals is None else {
        n: (UNCHANGED if v is P.UNCHANGED_TOAST else v) for n, v in zip(r.names, vals, strict=True)}
    return {"table": r.name, "op": "cud"[op], "pk": pk, "at": _at(lsn, xid), "after": after,
            "unchanged_toast_unknown": list(unknown)}


def verify_slot(
    conn: psycopg.Connection,
    ledger_path: str,
    *,
    slot: str,
    publication: str,
    consume: bool = False,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    batch_changes: int = slot_mod.DEFAULT_BATCH_CHANGES,
) -> VerifyReport:
    """Verify the verifier's slot against the ledger at ``ledger_path`` (autocommit ``conn``).

    Reads a temporary copy of the slot up to the current WAL position (the slot itself is
    untouched unless ``consume``), then checks the final state against the tables in the
    connection's current schema. Blocks for the whole run.

    Raises:
        ConfigError: no ledger at ``ledger_path``, an empty ledger, or no such slot.
    """
    with gc_paused():
        ledger = ledger_index.load(ledger_path)
        if ledger.num_changes == 0:
            raise ConfigError(f"--ledger {ledger_path!r}: the ledger holds no changes")
        schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        verifier = Verifier(ledger, max_examples=max_examples)
        rows = (row for batch in slot_mod.iter_slot(conn, slot, publication, consume=consume,
                                                    batch_changes=batch_changes) for row in batch)
        try:
            stats = feed_slot(verifier, rows, schema, slot_mod.python_encoding(conn))
        except P.DecodeError as exc:
            raise CheckFailedError(f"slot {slot}: cannot decode the stream: {exc}") from exc
    report = verifier.finish(conn, f"slot {slot}")
    report.counts.update({
        "captured_transactions": stats.num_transactions,
        "other_table_changes": stats.num_other,
        "logical_messages": stats.num_messages,
    })
    if stats.first_commit_lsn is not None and stats.last_commit_lsn is not None:
        report.notes.append(f"read commits {P.format_lsn(stats.first_commit_lsn)} .."
                            f" {P.format_lsn(stats.last_commit_lsn)}"
                            + (" (slot advanced)" if consume else " (slot left as it was)"))
    return report
