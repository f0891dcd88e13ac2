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
from loadgen.ledger.resolve import server_resolver

_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from

# Rows whose text is longer than this keep their last full image so that a later
# unchanged-TOAST marker can be resolved. A value is stored out of line only when its row is
# over ~2 KB (TOAST_TUPLE_THRESHOLD) in binary form, and text renderings of the hospital
# types are never much shorter than their binary form; half of it leaves a margin.
TOAST_TRACK_MIN_CHARS = 1024
UNCHANGED = "<unchanged-toast>"


# Largest text of fixed-size types, and the biggest row that can never be TOASTed.
_FIXED_TYPE_BYTES = {
    16: 5,
    20: 20,
    21: 6,
    23: 11,
    26: 10,
    700: 16,
    701: 24,
    1082: 13,
    1083: 15,
    1114: 29,
    1184: 35,
    2950: 36,
}
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
    # replica identity without ``id`` (USING INDEX on other columns): positions of its columns
    key_pos: tuple[int, ...] | None = None


@dataclass
class CaptureStats:
    num_transactions: int = 0
    num_changes: int = 0  # row changes on verified tables
    num_other: int = 0  # row changes on other tables (ignored)
    num_messages: int = 0  # pg_logical_emit_message messages
    first_commit_lsn: int | None = None
    last_commit_lsn: int | None = None
    relations: dict[int, str] = field(default_factory=dict)


def _rel(
    msg: P.Relation, schema: str, codes: TableCodes, wanted: set[str], table_of: dict[str, str]
) -> _Rel:
    names = msg.column_names
    name = table_of.get(msg.name, msg.name)  # a partition is verified as its root table
    ours = msg.namespace == schema and name in wanted and "id" in names
    id_pos = names.index("id") if "id" in names else -1
    key_pos = None
    if ours and not msg.columns[id_pos].is_key:
        key_pos = tuple(i for i, c in enumerate(msg.columns) if c.is_key)
    return _Rel(
        name, names, codes.code(name) if ours else None, id_pos, can_toast(msg.columns), key_pos
    )


def partition_roots(conn: psycopg.Connection) -> dict[str, str]:
    """partition → its root table, for the partitioned tables of the current schema.

    Without ``publish_via_partition_root`` pgoutput names the partition a row lives in; the
    ledger names the table the scenario wrote (the root).
    """
    rows = conn.execute(
        "SELECT c.relname, r.relname FROM pg_class c"
        " JOIN pg_class r ON r.oid = pg_partition_root(c.oid)"
        " WHERE c.relispartition AND c.relnamespace = current_schema()::regnamespace"
    ).fetchall()
    return {str(a): str(b) for a, b in rows}


def feed_slot(
    verifier: Verifier,
    rows: Iterable[tuple[int, int, bytes]],
    schema: str,
    encoding: str = "utf-8",
    table_of: dict[str, str] | None = None,
) -> CaptureStats:
    """Feed every row change of ``rows`` (``slot.iter_slot`` rows: lsn, xid, message) to
    ``verifier``, decoding pgoutput v1 on the way.

    Only tables in ``schema`` named in the verifier's table codes (the 7 hospital tables plus
    any table the ledger names) are verified; changes to other tables are counted and skipped.
    ``table_of`` renames relations (partition → root, see ``partition_roots``). A table whose
    replica identity leaves out ``id`` (USING INDEX) has its rows found by the identity's
    columns: from earlier images in the stream, else the ledger's before-images.
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
    table_of = table_of or {}
    idents: dict[int, dict[tuple[P.Value, ...], int]] = {}  # table → identity key → id
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
            old = old_kind = old_pk = None
            if data[5] == 0x4E:  # 'N': no old tuple (the common case)
                vals = decode_tuple(data, 6, encoding)[0]
            else:
                msg = P.decode(data, encoding)
                vals, old = msg.new, msg.old  # type: ignore[union-attr]
                old_kind = msg.old_kind  # type: ignore[union-attr]
            op = c_op if kind == 0x49 else u_op
            pk = int(vals[r.id_pos])  # type: ignore[arg-type]
            unknown = ()
            if old is not None and isinstance(old[r.id_pos], str):
                old_pk = int(old[r.id_pos])  # type: ignore[arg-type]
            if r.key_pos is not None:
                old_pk = _track_identity(
                    idents.setdefault(r.code, {}), r, vals, old, pk, old_pk, op == u_op, verifier
                )
            if old_pk == pk:
                old_pk = None
            if old_pk is not None:
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
                old, old_kind, old_pk = msg.old, msg.old_kind, None
                op, vals, unknown, rowhash = d_op, None, (), 0
                if isinstance(old[r.id_pos], str):
                    pk = int(old[r.id_pos])  # type: ignore[arg-type]
                else:  # USING INDEX: the old tuple has only the identity's columns
                    pk = _pk_by_identity(idents.get(r.code, {}), r, old, verifier, pop=True)
                if wide:
                    wide.pop((r.code, pk), None)
            elif isinstance(msg, P.Relation):
                rels[msg.relid] = _rel(msg, schema, codes, wanted, table_of)
                stats.relations[msg.relid] = f"{msg.namespace}.{msg.name}"
                continue
            elif isinstance(msg, P.Truncate):
                for relid in msg.relids:
                    r = rels[relid]
                    if r.code is not None:
                        code = r.code
                        verifier.add_truncate(
                            code,
                            xid,
                            lambda r=r, lsn=lsn, xid=xid: {
                                "table": r.name,
                                "op": "truncate",
                                "at": _at(lsn, xid),
                            },
                        )
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
        # column 7 flags a key change, so the verifier checks it against the ledger's old key
        batch.append(
            (txn, xid, r.code, op, pk, n, rowhash, 0 if old_pk is None else 1, 1 if unknown else 0)
        )
        entries.append((r, op, pk, vals, unknown, lsn, xid, old_kind, old, old_pk))
        if len(batch) >= limit:
            verifier._flush()
    verifier._flush()
    return stats


def _identity_key(r: _Rel, values: tuple[P.Value, ...]) -> tuple[P.Value, ...]:
    return tuple(values[i] for i in r.key_pos or ())


def _pk_by_identity(
    ids: dict[tuple[P.Value, ...], int],
    r: _Rel,
    old: tuple[P.Value, ...],
    verifier: Verifier,
    *,
    pop: bool,
) -> int:
    """The id of the row an identity-only old tuple names: from earlier images in the stream,
    else the ledger's before-images; -1 when neither knows it (then it cannot match)."""
    key = _identity_key(r, old)
    pk = ids.pop(key, None) if pop else ids.get(key)
    if pk is None and r.code is not None:
        pk = verifier.L.pk_by_identity(r.code, {r.names[i]: old[i] for i in r.key_pos or ()})
    return -1 if pk is None else pk


def _track_identity(
    ids: dict[tuple[P.Value, ...], int],
    r: _Rel,
    vals: tuple[P.Value, ...],
    old: tuple[P.Value, ...] | None,
    pk: int,
    old_pk: int | None,
    is_update: bool,
    verifier: Verifier,
) -> int | None:
    """Keep identity key → id for a USING INDEX table; return the update's old id.

    An update that changed the identity's columns sends them as the old tuple (K); one that
    changed only ``id`` sends none, and the row is the one the unchanged identity named.
    """
    if old is not None and old_pk is None:
        old_pk = _pk_by_identity(ids, r, old, verifier, pop=True)
        old_pk = None if old_pk == -1 else old_pk
    key = _identity_key(r, vals)
    if is_update and old_pk is None:
        prev = ids.get(key)
        if prev is None and old is None:
            prev = (
                verifier.L.pk_by_identity(r.code, {r.names[i]: vals[i] for i in r.key_pos or ()})
                if r.code is not None
                else None
            )
        old_pk = prev
    ids[key] = pk
    return old_pk


def _resolve(
    vals: tuple[P.Value, ...],
    old: tuple[P.Value, ...] | None,
    previous: tuple[P.Value, ...] | None,
    names: tuple[str, ...],
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


def _image(r: _Rel, vals: tuple[P.Value, ...] | None) -> dict[str, Any] | None:
    return (
        None
        if vals is None
        else {
            n: (UNCHANGED if v is P.UNCHANGED_TOAST else v)
            for n, v in zip(r.names, vals, strict=True)
        }
    )


def _describe(
    r: _Rel,
    op: int,
    pk: int,
    vals: tuple[P.Value, ...] | None,
    unknown: tuple[str, ...],
    lsn: int,
    xid: int,
    old_kind: str | None,
    old: tuple[P.Value, ...] | None,
    old_pk: int | None,
) -> dict[str, Any]:
    return {
        "table": r.name,
        "op": "cud"[op],
        "pk": pk,
        "at": _at(lsn, xid),
        "after": _image(r, vals),
        "unchanged_toast_unknown": list(unknown),
        "old_kind": old_kind,
        "old": _image(r, old),
        "old_pk": old_pk,
    }


def _before_slot_hint(verifier: Verifier, origin: slot_mod.SlotOrigin | None) -> str | None:
    """A note when most missing changes belong to transactions that ended before the slot
    existed (a slot only sees later commits): the ledger predates ``cdc setup``."""
    if origin is None or origin.xmin_before is None:
        return None
    L = verifier.L
    missing = ~L.is_dup & (verifier.match_count == 0)
    truncate_xids = [
        L.truncates[i][0] for idxs in verifier._ledger_truncates.values() for i in idxs
    ]
    total = int(missing.sum()) + len(truncate_xids)
    before = int((L.xid[missing] < origin.xmin_before).sum()) + sum(
        1 for x in truncate_xids if x < origin.xmin_before
    )
    if not before or before * 2 < total:
        return None
    return (
        f"{before:,} of the {total:,} missing changes committed before the slot was"
        f" created at {origin.created_at} (LSN {origin.start_lsn}): a slot only sees later"
        " commits; run `loadgen cdc setup` before the load"
    )


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
        ledger = ledger_index.load(ledger_path, resolve=server_resolver(conn))
        if ledger.num_changes == 0:
            raise ConfigError(f"--ledger {ledger_path!r}: the ledger holds no changes")
        schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        verifier = Verifier(ledger, max_examples=max_examples)
        rows = (
            row
            for batch in slot_mod.iter_slot(
                conn, slot, publication, consume=consume, batch_changes=batch_changes
            )
            for row in batch
        )
        try:
            stats = feed_slot(
                verifier, rows, schema, slot_mod.python_encoding(conn), partition_roots(conn)
            )
        except P.DecodeError as exc:
            raise CheckFailedError(f"slot {slot}: cannot decode the stream: {exc}") from exc
    report = verifier.finish(conn, f"slot {slot}")
    hint = _before_slot_hint(verifier, slot_mod.slot_origin(conn, slot))
    if hint:
        report.notes.append(hint)
    report.counts.update(
        {
            "captured_transactions": stats.num_transactions,
            "other_table_changes": stats.num_other,
            "logical_messages": stats.num_messages,
        }
    )
    if stats.first_commit_lsn is not None and stats.last_commit_lsn is not None:
        report.notes.append(
            f"read commits {P.format_lsn(stats.first_commit_lsn)} .."
            f" {P.format_lsn(stats.last_commit_lsn)}"
            + (" (slot advanced)" if consume else " (slot left as it was)")
        )
    return report
