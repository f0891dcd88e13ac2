"""Turn decoded pgoutput messages into captured row changes for the verifier.

Tracks Relation messages (column names per relation id), transactions (Begin/Commit), and the
last full image of wide rows so that an unchanged-TOAST column (``u``) in a later update is
carried forward from the value the stream sent earlier, as a correct consumer must do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from loadgen.cdc import ledger_index
from loadgen.cdc import pgoutput as P
from loadgen.cdc import slot as slot_mod
from loadgen.cdc.ledger_index import OP_CODES, TableCodes
from loadgen.cdc.verify import DEFAULT_BATCH_CHANGES, DEFAULT_MAX_EXAMPLES, Verifier, VerifyReport
from loadgen.errors import ConfigError

# Rows whose text is longer than this keep their last full image so that a later
# unchanged-TOAST marker can be resolved. A value is stored out of line only when its row is
# over ~2 KB (TOAST_TUPLE_THRESHOLD) in binary form, and text renderings of the hospital
# types are never much shorter than their binary form; half of it leaves a margin.
TOAST_TRACK_MIN_CHARS = 1024
UNCHANGED = "<unchanged-toast>"


@dataclass
class _Rel:
    name: str
    names: tuple[str, ...]
    code: int | None  # None: not a table we verify
    id_pos: int
    order: tuple[int, ...]  # positions in column-name order (the canonical hash order)
    sorted_names: tuple[str, ...]


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
    order = tuple(sorted(range(len(names)), key=names.__getitem__))
    return _Rel(msg.name, names, codes.code(msg.name) if ours else None,
                names.index("id") if "id" in names else -1, order,
                tuple(names[i] for i in order))


def feed_slot(verifier: Verifier, messages: Iterable[tuple[int, int, P.PgOutputMessage]],
              schema: str) -> CaptureStats:
    """Feed every row change of ``messages`` (``slot.iter_messages`` output) to ``verifier``.

    Only tables in ``schema`` named in the verifier's table codes (the 7 hospital tables plus
    any table the ledger names) are verified; changes to other tables are counted and skipped.
    """
    codes = verifier.L.codes
    wanted = set(codes.names)
    stats = CaptureStats()
    rels: dict[int, _Rel] = {}
    wide: dict[tuple[int, int], tuple[P.Value, ...]] = {}
    occ: dict[tuple[int, int, int], int] = {}
    seen: set[tuple[int, int, int, int]] = set()
    txn = xid = 0
    add = verifier.add
    c_op, u_op, d_op = OP_CODES["c"], OP_CODES["u"], OP_CODES["d"]
    for lsn, _, msg in messages:
        if isinstance(msg, P.Insert | P.Update):
            r = rels[msg.relid]
            if r.code is None:
                stats.num_other += 1
                continue
            vals = msg.new
            op = c_op if isinstance(msg, P.Insert) else u_op
            pk = int(vals[r.id_pos])  # type: ignore[arg-type]
            unknown: tuple[str, ...] = ()
            if op == u_op and msg.old is not None and msg.old[r.id_pos] != vals[r.id_pos]:
                old_pk = int(msg.old[r.id_pos])  # type: ignore[arg-type]
                verifier.add_state_only(r.code, old_pk, d_op)  # the old key is gone
                if (r.code, old_pk) in wide:
                    wide[(r.code, pk)] = wide.pop((r.code, old_pk))
            if P.UNCHANGED_TOAST in vals:
                vals, unknown = _resolve(vals, msg, wide.get((r.code, pk)), r.names)
            if sum(len(v) for v in vals if isinstance(v, str)) > TOAST_TRACK_MIN_CHARS:
                wide[(r.code, pk)] = vals
            elif wide:
                wide.pop((r.code, pk), None)
            rowhash = hash((r.sorted_names, tuple([vals[i] for i in r.order])))
        elif isinstance(msg, P.Delete):
            r = rels[msg.relid]
            if r.code is None:
                stats.num_other += 1
                continue
            op, pk, vals, unknown, rowhash = d_op, int(msg.old[r.id_pos]), None, (), 0  # type: ignore[arg-type]
            if wide:
                wide.pop((r.code, pk), None)
        elif isinstance(msg, P.Begin):
            txn += 1
            xid = msg.xid
            occ.clear()
            seen.clear()
            continue
        elif isinstance(msg, P.Commit):
            stats.num_transactions += 1
            if stats.first_commit_lsn is None:
                stats.first_commit_lsn = msg.commit_lsn
            stats.last_commit_lsn = msg.commit_lsn
            continue
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
        dup_key = (lsn, r.code, pk, op)
        if dup_key in seen:
            verifier.add_duplicate(_describe(r, op, pk, vals, unknown, lsn, xid))
            continue
        seen.add(dup_key)
        k = (r.code, pk, op)
        n = occ.get(k, 0)
        occ[k] = n + 1
        stats.num_changes += 1
        add(txn, xid, r.code, op, pk, n, rowhash, bool(unknown),
            lambda r=r, op=op, pk=pk, vals=vals, unknown=unknown, lsn=lsn, xid=xid:
            _describe(r, op, pk, vals, unknown, lsn, xid))
    return stats


def _resolve(vals: tuple[P.Value, ...], msg: P.Update | P.Insert,
             previous: tuple[P.Value, ...] | None, names: tuple[str, ...]
             ) -> tuple[tuple[P.Value, ...], tuple[str, ...]]:
    """Replace unchanged-TOAST markers by the last value the stream carried for the column."""
    old = msg.old if isinstance(msg, P.Update) else None
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
    batch_changes: int = DEFAULT_BATCH_CHANGES,
) -> VerifyReport:
    """Verify the verifier's slot against the ledger at ``ledger_path`` (autocommit ``conn``).

    Reads a temporary copy of the slot up to the current WAL position (the slot itself is
    untouched unless ``consume``), then checks the final state against the tables in the
    connection's current schema. Blocks for the whole run.

    Raises:
        ConfigError: no ledger at ``ledger_path``, an empty ledger, or no such slot.
    """
    ledger = ledger_index.load(ledger_path)
    if ledger.num_changes == 0:
        raise ConfigError(f"--ledger {ledger_path!r}: the ledger holds no changes")
    schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
    verifier = Verifier(ledger, max_examples=max_examples)
    messages = slot_mod.iter_messages(conn, slot, publication, consume=consume,
                                      batch_changes=batch_changes)
    stats = feed_slot(verifier, messages, schema)
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
