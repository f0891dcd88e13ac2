"""The pgoutput feeder: decoded slot messages → ``CapturedChange``/``CapturedTruncate``.

Tracks Relation messages (columns per relation id, partitions named as their root) and
transactions (Begin/Commit); unchanged TOAST is carried forward by ``toast.ToastCarry`` and a
USING INDEX identity without ``id`` is resolved by ``identity.IdentityTracker``, as for every
source. pgoutput sends each change once and whole transactions in commit order.
"""

from __future__ import annotations

import itertools
import operator
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from loadgen.cdc import pgoutput as P
from loadgen.cdc import slot_batch as SB
from loadgen.cdc.change import (
    OP_CREATE,
    OP_DELETE,
    OP_UPDATE,
    Captured,
    CapturedBatch,
    CapturedChange,
    CapturedTruncate,
    EncodingLimits,
)
from loadgen.cdc.identity import IdentityTracker, LedgerLookup
from loadgen.cdc.ledger_index import TableCodes
from loadgen.cdc.toast import ToastCarry, can_toast
from loadgen.lsn import format_lsn

_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from
_new = tuple.__new__  # builds a CapturedChange without its Python-level __new__ (hot path)
BATCH_ROWS = 20_000  # slot rows decoded together by the batch decoder
MIN_BATCH_ROWS = 64  # fewer rows than this: one at a time (numpy's per-call cost dominates)
_B, _C, _I, _U, _D = b"BCIUD"
_NEW, _K, _O = b"NKO"
_BATCHED_KINDS = np.frombuffer(b"BCIUD", np.uint8)
_LSN, _DATA = operator.itemgetter(0), operator.itemgetter(2)  # of a slot row


@dataclass
class _Rel:
    name: str
    names: tuple[str, ...]
    code: int | None  # None: not a table we verify
    id_pos: int
    can_toast: bool  # False: no unchanged-TOAST marker can ever come; skip the bookkeeping
    # replica identity without ``id`` (USING INDEX on other columns): positions of its columns
    key_pos: tuple[int, ...] | None = None
    is_plain: bool = False  # verified, no TOAST, no identity tracking: the hot path
    shape: SB.Shape | None = None  # for the batch decoder (plain relations only)


@dataclass
class SlotStats:
    num_transactions: int = 0
    num_changes: int = 0  # row changes on verified tables
    num_other: int = 0  # row changes on other tables (ignored)
    num_messages: int = 0  # pg_logical_emit_message messages
    first_commit_lsn: int | None = None
    last_commit_lsn: int | None = None
    relations: dict[int, str] = field(default_factory=dict)


def partition_roots(conn: psycopg.Connection) -> dict[str, str]:
    """partition → its root table, for the partitioned tables of the current schema.

    Without ``publish_via_partition_root`` a stream names the partition a row lives in; the
    ledger names the table the scenario wrote (the root).
    """
    rows = conn.execute(
        "SELECT c.relname, r.relname FROM pg_class c"
        " JOIN pg_class r ON r.oid = pg_partition_root(c.oid)"
        " WHERE c.relispartition AND c.relnamespace = current_schema()::regnamespace"
    ).fetchall()
    return {str(a): str(b) for a, b in rows}


class SlotFeeder:
    """``change.Feeder`` over ``slot.iter_slot`` rows (lsn, xid, pgoutput v1 message).

    Only tables in ``schema`` named in ``codes`` (the ledger's tables) are verified; changes
    to other tables are counted and skipped. ``table_of`` renames relations (partition →
    root). Hot path: inserts, plain updates, begins and commits are decoded inline (no message
    object); every other kind goes through ``pgoutput.decode``. Raises
    ``pgoutput.DecodeError`` from ``changes()`` on a message that is not valid pgoutput v1.
    """

    limits: EncodingLimits | None = None  # pgoutput carries every value as text: no limits

    def __init__(
        self,
        rows: Iterable[tuple[int, int, bytes]],
        *,
        name: str,
        schema: str,
        codes: TableCodes,
        identity_lookup: LedgerLookup,
        encoding: str = "utf-8",
        table_of: dict[str, str] | None = None,
        consume: bool = False,
        batches: Iterable[Sequence[tuple[int, int, bytes]]] | None = None,
    ) -> None:
        self.source = f"slot {name}"
        self._consume = consume
        self._rows = rows
        self._batches = batches  # rows already in batches (``slot.iter_slot``): used instead
        self._rels: dict[int, _Rel] = {}
        self._toast = ToastCarry()
        self._xid = 0  # of the transaction being read (its Begin's)
        self._schema = schema
        self._codes = codes
        self._encoding = encoding
        self._table_of = table_of or {}
        self._identity = IdentityTracker(identity_lookup)
        self.stats = SlotStats()

    def where(self, item: Captured) -> str:
        return f"lsn {format_lsn(item.position)} xid {item.xid}"

    def counts(self) -> dict[str, int]:
        return {
            "captured_transactions": self.stats.num_transactions,
            "other_table_changes": self.stats.num_other,
            "logical_messages": self.stats.num_messages,
        }

    def notes(self) -> list[str]:
        st = self.stats
        if st.first_commit_lsn is None or st.last_commit_lsn is None:
            return []
        return [
            f"read commits {format_lsn(st.first_commit_lsn)} .."
            f" {format_lsn(st.last_commit_lsn)}"
            + (" (slot advanced)" if self._consume else " (slot left as it was)")
        ]

    def problems(self) -> tuple[int, list[dict[str, object]]]:
        return 0, []

    def _relation(self, msg: P.Relation) -> _Rel:
        names = msg.column_names
        name = self._table_of.get(msg.name, msg.name)  # a partition is verified as its root
        ours = msg.namespace == self._schema and name in self._codes.codes and "id" in names
        id_pos = names.index("id") if "id" in names else -1
        key_pos = None
        if ours and not msg.columns[id_pos].is_key:
            key_pos = tuple(i for i, c in enumerate(msg.columns) if c.is_key)
        toastable = can_toast([(c.type_oid, c.typmod) for c in msg.columns])
        code = self._codes.code(name) if ours else None
        plain = code is not None and not toastable and key_pos is None
        sh = SB.shape(names, id_pos) if plain else None
        return _Rel(name, names, code, id_pos, toastable, key_pos, plain, sh)

    def changes(self) -> Iterator[Captured]:
        for item in self.chunks():
            if type(item) is CapturedBatch:
                yield from item.changes()
            else:
                yield item  # type: ignore[misc]

    def chunks(self) -> Iterator[Captured | CapturedBatch]:
        """``changes()``, with each run of plain changes (``_Rel.is_plain``: inserts, updates
        without an old tuple, deletes) of a batch of rows as one ``CapturedBatch``."""
        batches = self._batches
        if batches is None:
            it = iter(self._rows)
            batches = iter(lambda: list(itertools.islice(it, BATCH_ROWS)), [])
        for rows in batches:
            if len(rows) < MIN_BATCH_ROWS:
                yield from self._slow(rows)
            else:
                yield from self._chunk(rows)

    def _chunk(self, rows: Sequence[tuple[int, int, bytes]]) -> Iterator[Captured | CapturedBatch]:
        datas = list(map(_DATA, rows))
        lens = np.fromiter(map(len, datas), np.int64, len(rows))
        if lens.min() < 6:  # no valid message is that short: let the decoder say why
            yield from self._slow(rows)
            return
        buf = np.frombuffer(b"".join(datas) + bytes(SB.PAD), np.uint8)
        starts = np.cumsum(lens) - lens
        kinds = buf[starts]
        esc = SB.escaped_at(buf)  # (once per batch of rows)
        # Relation, Truncate, Message... change what follows (or are rare): one at a time
        cuts = np.flatnonzero(~np.isin(kinds, _BATCHED_KINDS)).tolist()
        a = 0
        for c in [*cuts, len(rows)]:
            if c > a:
                yield from self._segment(rows, buf, esc, starts, lens, kinds, a, c)
            if c < len(rows):
                yield from self._slow(rows[c : c + 1])
            a = c + 1

    def _segment(
        self,
        rows: Sequence[tuple[int, int, bytes]],
        buf: npt.NDArray[np.uint8],
        esc: npt.NDArray[np.int64],
        starts: npt.NDArray[np.int64],
        lens: npt.NDArray[np.int64],
        kinds: npt.NDArray[np.uint8],
        a: int,
        b: int,
    ) -> Iterator[Captured | CapturedBatch]:
        """Rows ``a:b`` (Begin, Commit, Insert, Update, Delete only), vectorized."""
        st, k = starts[a:b], kinds[a:b]
        ci = np.flatnonzero((k != _B) & (k != _C))  # the changes
        relid = SB.be_u32(buf, st[ci] + 1)
        sub = buf[st[ci] + 5]
        fast = np.zeros(len(ci), bool)
        other = np.zeros(len(ci), bool)
        for rid in np.unique(relid).tolist():
            r = self._rels.get(rid)
            if r is None:
                continue  # (the one-at-a-time path raises it)
            sel = relid == rid
            if r.code is None:
                other |= sel
            elif r.is_plain:
                is_d = k[ci] == _D
                fast |= sel & np.where(is_d, (sub == _K) | (sub == _O), sub == _NEW)
        if (~fast & ~other).sum() * 4 > len(ci):  # mostly not plain: one at a time
            yield from self._slow(rows[a:b])
            return
        is_b = k == _B
        last_b = np.where(is_b, np.arange(b - a), -1)
        np.maximum.accumulate(last_b, out=last_b)
        b_xids = np.zeros(b - a, np.int64)
        b_xids[is_b] = SB.be_u32(buf, st[is_b] + 17)
        xids = np.where(last_b >= 0, b_xids[np.maximum(last_b, 0)], self._xid)
        commits = SB.be_u64(buf, st[k == _C] + 2)
        stats = self.stats
        self.stats.num_other += int(other.sum())
        shapes = {
            rid: (r.code, r.shape)
            for rid, r in self._rels.items()
            if r.shape is not None and r.code is not None
        }
        *cols, ok = SB.plain_columns(
            rows[a:b], buf, esc, st, lens[a:b], ci[fast], relid[fast], shapes, self._encoding
        )
        fast[fast] = ok  # rows the batch decoder could not vouch for: one at a time
        cols = [c[ok] for c in cols]
        slow = ci[~fast & ~other]
        done = 0
        for cut in [*slow.tolist(), b - a]:
            n_before = int(np.searchsorted(cols[0], cut))
            if n_before > done:
                yield self._batch(rows, a, xids, cols, done, n_before)
                done = n_before
            if cut < b - a:
                self._xid = int(xids[cut])
                yield from self._slow(rows[a + cut : a + cut + 1])
        if len(commits):
            stats.num_transactions += len(commits)
            if stats.first_commit_lsn is None:
                stats.first_commit_lsn = int(commits[0])
            stats.last_commit_lsn = int(commits[-1])
        self._xid = int(xids[-1])

    def _batch(
        self,
        rows: Sequence[tuple[int, int, bytes]],
        a: int,
        xids: npt.NDArray[np.int64],
        cols: list[npt.NDArray[Any]],
        lo: int,
        hi: int,
    ) -> CapturedBatch:
        """The plain changes ``lo:hi`` of a segment's ``_columns`` as one batch."""
        fi, table, op, pk, rowhash, relid = (c[lo:hi] for c in cols)
        pos = np.fromiter(map(_LSN, map(rows.__getitem__, (fi + a).tolist())), np.int64, len(fi))
        xid = xids[fi]
        rels, enc = self._rels, self._encoding
        self.stats.num_changes += len(fi)

        def change(i: int) -> CapturedChange:
            lsn, _, data = rows[a + int(fi[i])]
            r = rels[int(relid[i])]
            code, pk_i, xid_i = r.code, int(pk[i]), int(xid[i])
            assert code is not None
            msg = P.decode(data, enc)
            if isinstance(msg, P.Delete):
                return CapturedChange(code, OP_DELETE, pk_i, xid_i, lsn, r.names, None,
                                      old=msg.old, old_kind=msg.old_kind)  # fmt: skip
            assert isinstance(msg, P.Insert | P.Update)
            opc = OP_CREATE if isinstance(msg, P.Insert) else OP_UPDATE
            return CapturedChange(code, opc, pk_i, xid_i, lsn, r.names, msg.new)

        return CapturedBatch(table, op, pk, xid, pos, rowhash, change)

    def _slow(self, rows: Iterable[tuple[int, int, bytes]]) -> Iterator[Captured]:
        """Rows one at a time (small batches, and whatever the batch decoder leaves)."""
        stats, identity, toast, rels = self.stats, self._identity, self._toast, self._rels
        decode_tuple, decode, u32, u64 = P.decode_tuple, P.decode, _U32, _U64
        enc = self._encoding
        xid, num_changes = self._xid, 0
        try:
            for lsn, _, data in rows:
                kind = data[0]
                if kind == 0x49 or kind == 0x55:  # 'I' insert, 'U' update
                    r = rels[u32(data, 1)[0]]
                    if r.is_plain and data[5] == 0x4E:  # no old tuple, no TOAST, no identity
                        vals = decode_tuple(data, 6, enc)[0]
                        num_changes += 1
                        yield _new(  # type: ignore[call-overload]
                            CapturedChange,
                            (r.code, OP_CREATE if kind == 0x49 else OP_UPDATE,
                             int(vals[r.id_pos]),  # type: ignore[arg-type]
                             xid, lsn, r.names, vals, (), None, None, None, 0, False),
                        )  # fmt: skip
                        continue
                    code = r.code
                    if code is None:
                        stats.num_other += 1
                        continue
                    old = old_kind = old_pk = None
                    if data[5] == 0x4E:  # 'N': no old tuple (the common case)
                        vals = decode_tuple(data, 6, enc)[0]
                    else:
                        msg = decode(data, enc)
                        vals, old = msg.new, msg.old  # type: ignore[union-attr]
                        old_kind = msg.old_kind  # type: ignore[union-attr]
                    pk = int(vals[r.id_pos])  # type: ignore[arg-type]
                    if old is not None and isinstance(old[r.id_pos], str):
                        old_pk = int(old[r.id_pos])  # type: ignore[arg-type]
                        if old_pk == pk:
                            old_pk = None
                    if r.key_pos is not None:
                        old_pk = identity.upsert(
                            code, r.names, r.key_pos, vals, pk, old, is_update=kind == 0x55
                        )
                    if old_pk is not None:
                        toast.move(code, old_pk, pk)
                    unknown: tuple[str, ...] = ()
                    if r.can_toast:
                        vals, unknown = toast.resolve(code, pk, r.names, vals, old)
                    num_changes += 1
                    yield _new(  # type: ignore[call-overload]
                        CapturedChange,
                        (code, OP_CREATE if kind == 0x49 else OP_UPDATE, pk, xid, lsn, r.names,
                         vals, unknown, old_pk, old, old_kind, 0, False),
                    )  # fmt: skip
                elif kind == 0x42:  # 'B' begin: final LSN, commit time, xid
                    xid = self._xid = u32(data, 17)[0]
                elif kind == 0x43:  # 'C' commit: flags, commit LSN, ...
                    commit_lsn = u64(data, 2)[0]
                    stats.num_transactions += 1
                    if stats.first_commit_lsn is None:
                        stats.first_commit_lsn = commit_lsn
                    stats.last_commit_lsn = commit_lsn
                else:
                    yield from self._other(decode(data, enc), lsn, xid, rels, toast)
        finally:  # also when the consumer stops early
            stats.num_changes += num_changes

    def _other(
        self, msg: P.PgOutputMessage, lsn: int, xid: int, rels: dict[int, _Rel], toast: ToastCarry
    ) -> Iterator[Captured]:
        stats = self.stats
        if isinstance(msg, P.Delete):
            r = rels[msg.relid]
            if r.code is None:
                stats.num_other += 1
                return
            old = msg.old
            if isinstance(old[r.id_pos], str):
                pk = int(old[r.id_pos])  # type: ignore[arg-type]
            elif r.key_pos is not None:  # USING INDEX: only the identity's columns
                pk = self._identity.delete(r.code, r.names, r.key_pos, old)
            else:
                pk = -1
            toast.forget(r.code, pk)
            stats.num_changes += 1
            yield CapturedChange(
                r.code, OP_DELETE, pk, xid, lsn, r.names, None, old=old, old_kind=msg.old_kind
            )
        elif isinstance(msg, P.Relation):
            rels[msg.relid] = self._relation(msg)
            stats.relations[msg.relid] = f"{msg.namespace}.{msg.name}"
        elif isinstance(msg, P.Truncate):
            for relid in msg.relids:
                r = rels[relid]
                if r.code is not None:
                    toast.truncate(r.code)
                    self._identity.truncate(r.code)
                    yield CapturedTruncate(r.code, xid, lsn)
        elif isinstance(msg, P.Message):
            stats.num_messages += 1
