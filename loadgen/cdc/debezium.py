"""The Debezium feeder: a file of Debezium change events → ``CapturedChange``s.

The file holds one JSON document per line as ``loadgen cdc capture``, ``kafka-console-consumer``
or ``kcat`` write them: the value alone (with or without the JsonConverter ``schema``/
``payload`` envelope), optionally preceded by the key and a tab; a delete's tombstone is the
line ``null``; heartbeats and transaction-metadata events are counted. Values are turned back
into PostgreSQL's text output from the column types in the database and the settings
``debezium_config`` emits (``debezium_types``).

What Debezium does that the reader undoes, so every source looks the same to the verifier:

- an update that changes the row's key arrives as a delete and a create of the same
  transaction and LSN: they are paired back into one update with an old key (a create first
  is an ``order`` failure);
- REPLICA IDENTITY USING INDEX: the old tuple's other NOT NULL columns are filled with their
  type's default (``"id": 0``, ``""``), so only the identity's columns are taken from it and
  the row is found by them (``identity``); a change of ``id`` alone arrives as a plain update;
- unchanged TOAST arrives as ``__debezium_unavailable_value``, inside arrays as a one-element
  list of it, its UTF-8 bytes, a uuid made from them, or null (``debezium_types.
  placeholder_form``), and is carried forward (``toast``);
- snapshot reads (``op r``) are yielded as ``OP_READ`` for the snapshot checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from loadgen.cdc import debezium_types as T
from loadgen.cdc import rows as R
from loadgen.cdc.change import (
    OP_CREATE,
    OP_DELETE,
    OP_READ,
    OP_UPDATE,
    UNCHANGED,
    Captured,
    CapturedChange,
    CapturedTruncate,
    Value,
)
from loadgen.cdc.debezium_limits import DebeziumLimits
from loadgen.cdc.debezium_lines import parse_line as parse_line
from loadgen.cdc.debezium_lines import sniff
from loadgen.cdc.identity import IdentityTracker, LedgerLookup
from loadgen.cdc.ledger_index import TableCodes
from loadgen.cdc.toast import ToastCarry, can_toast

UNAVAILABLE_PLACEHOLDER = T.UNAVAILABLE_PLACEHOLDER
_MASK32 = 0xFFFFFFFF
_OPS = {"c": OP_CREATE, "u": OP_UPDATE, "d": OP_DELETE, "r": OP_READ}


@dataclass(slots=True)
class _Event:
    op: int
    code: int
    table: _Table
    xid: int
    position: int
    line_no: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class _Table:
    """What the reader knows of one relation (a partition has its own identity)."""

    def __init__(self, catalog: R.Catalog, relation: str, code: int) -> None:
        self.code = code
        cols = [c for c in catalog.column_types(relation) if not c["generated"]]
        self.convs = {c["name"]: T.converter(c["type"], c["typmod"], c["element"]) for c in cols}
        self.forms = {c["name"]: T.placeholder_form(c["type"], c["element"]) for c in cols}
        self.null_toast = frozenset(n for n, f in self.forms.items() if f is None)
        self.can_toast = can_toast([(c["type"], c["typmod"]) for c in cols])
        self.kind, self.identity = catalog.replica_identity(relation)
        self.by_identity = self.kind == "i" and "id" not in self.identity
        self._names: tuple[str, ...] = ()
        self._conv_list: list[T.Converter] = []

    def text(self, row: dict[str, Any]) -> tuple[tuple[str, ...], tuple[Value, ...]]:
        """A row image as (column names, PostgreSQL text values)."""
        names = tuple(row)
        if names != self._names:
            self._names = names
            self._conv_list = [self.convs.get(n, str) for n in names]
        return names, tuple(
            [
                None if v is None else f(v)
                for f, v in zip(self._conv_list, row.values(), strict=True)
            ]
        )

    def text_unchanged(self, row: dict[str, Any]) -> tuple[tuple[str, ...], tuple[Value, ...]]:
        """Like ``text`` for an update: unchanged-TOAST placeholders become UNCHANGED."""
        names, values = self.text(row)
        if not self.can_toast:
            return names, values
        forms, out = self.forms, list(values)
        for i, (n, v) in enumerate(row.items()):
            if v is None:
                if n in self.null_toast:
                    out[i] = UNCHANGED
            elif v == UNAVAILABLE_PLACEHOLDER or v == forms.get(n):  # the string in any column
                out[i] = UNCHANGED
        return names, tuple(out)

    def old(
        self, names: tuple[str, ...], values: tuple[Value, ...]
    ) -> tuple[tuple[Value, ...], str]:
        """The old tuple as the replica identity obliges it: every column (FULL) or only the
        identity's (Debezium fills the others with type defaults)."""
        if self.kind == "f":
            return values, "O"
        ident = self.identity
        return tuple(v if n in ident else None for n, v in zip(names, values, strict=True)), "K"

    def key_pos(self, names: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(i for i, n in enumerate(names) if n in self.identity)


class DebeziumFeeder:
    """``change.Feeder`` over a Debezium event file (module docstring). Reads the file once,
    streaming; ``catalog`` gives the column types and replica identities (``rows.DbCatalog``
    for the verified schema). Raises ConfigError at construction when the file is not
    Debezium events."""

    def __init__(
        self,
        path: str,
        *,
        catalog: R.Catalog,
        schema: str,
        codes: TableCodes,
        identity_lookup: LedgerLookup,
        table_of: dict[str, str] | None = None,
    ) -> None:
        sniff(path)
        self.path = path
        self.source = f"debezium {path}"
        self._catalog, self._schema, self._codes = catalog, schema, codes
        self._table_of = table_of or {}
        self._identity = IdentityTracker(identity_lookup)
        self._toast = ToastCarry()
        self._tables: dict[str, _Table | None] = {}
        self.limits = DebeziumLimits()
        for name in list(codes.names):
            self.limits.add_table(codes.code(name), catalog.column_types(name))
        self.stats: dict[str, int] = {}
        self._bad: list[dict[str, Any]] = []
        self._num_bad = 0
        self._notes: list[str] = []
        self.num_null_toast = 0
        self._snapshot_done = False

    # -- the Feeder protocol -------------------------------------------------------------
    def where(self, item: Captured) -> str:
        return f"{self.path}:{item.ref} lsn {item.position} txId {item.xid}"

    def counts(self) -> dict[str, int]:
        return dict(sorted(self.stats.items()))

    def notes(self) -> list[str]:
        notes = list(self._notes)
        if self.stats.get("snapshot_events") and not self._snapshot_done:
            notes.append(
                "no snapshot read is marked last: the snapshot did not complete in this file"
            )
        if self.stats.get("incremental_snapshot_events"):
            notes.append(
                f"{self.stats['incremental_snapshot_events']:,} incremental-snapshot reads were"
                " not verified (only the initial snapshot is)"
            )
        if self.num_null_toast:
            notes.append(
                f"{self.num_null_toast:,} array values arrived as null in updates where the"
                " row's previous image had them: taken as unchanged TOAST (Debezium cannot"
                " encode its placeholder in arrays of those element types)"
            )
        return notes

    def problems(self) -> tuple[int, list[dict[str, Any]]]:
        return self._num_bad, self._bad

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def _table(self, relation: str) -> _Table | None:
        if relation not in self._tables:
            name = self._table_of.get(relation, relation)  # a partition is verified as its root
            ok = name in self._codes.codes and bool(self._catalog.column_types(relation))
            self._tables[relation] = (
                _Table(self._catalog, relation, self._codes.code(name)) if ok else None
            )
        return self._tables[relation]

    # -- reading --------------------------------------------------------------------------
    def _events(self) -> Iterator[_Event | CapturedTruncate | None]:
        with open(self.path, "rb") as f:
            line_no, raw = 0, b""
            for line_no, raw in enumerate(f, start=1):  # noqa: B007 - the last one is used
                if not raw.strip():
                    continue
                try:
                    doc = parse_line(raw)
                except (ValueError, orjson.JSONDecodeError):
                    if not raw.endswith(b"\n"):
                        self._notes.append(
                            f"torn last line {line_no} of {self.path}: the writer died"
                            " mid-write; it is not counted"
                        )
                        continue
                    self._num_bad += 1
                    if len(self._bad) < 5:
                        text = raw[:80].decode("utf-8", "replace")
                        self._bad.append({"line": line_no, "text": text})
                    continue
                ev = self._event(doc, line_no)
                if ev is not None:
                    yield ev

    def _event(self, doc: dict[str, Any] | None, line_no: int) -> _Event | CapturedTruncate | None:
        if doc is None:
            self._count("tombstones")
            return None
        op, source = doc.get("op"), doc.get("source")
        if not isinstance(source, dict) or op not in ("c", "u", "d", "r", "t"):
            if "status" in doc:
                self._count("transaction_events")
            elif set(doc) <= {"ts_ms", "ts_us", "ts_ns"}:
                self._count("heartbeats")
            else:
                self._count("other_events")
            return None
        t = None
        if str(source.get("schema", self._schema)) == self._schema:
            t = self._table(str(source.get("table")))
        if t is None:
            self._count("other_table_events")
            return None
        xid, position = int(source.get("txId") or 0) & _MASK32, int(source.get("lsn") or 0)
        if op == "t":
            return CapturedTruncate(t.code, xid, position, line_no)
        if op == "r" and source.get("snapshot") == "incremental":
            self._count("incremental_snapshot_events")  # read while streaming: not verified
            return None
        if op == "r" and source.get("snapshot") == "last":
            self._snapshot_done = True
        self._count("snapshot_events" if op == "r" else "change_events")
        return _Event(
            _OPS[op], t.code, t, xid, position, line_no, doc.get("before"), doc.get("after")
        )

    def changes(self) -> Iterator[Captured]:
        """Every change in file order; a create or delete is held until the next event of its
        table, to pair a split key change (or until ``_events`` yields None: a growing file's
        reader saying the file has stopped growing for now)."""
        held: dict[int, _Event] = {}
        for ev in self._events():
            if ev is None:
                for h in held.values():
                    yield from self._single(h)
                held.clear()
                continue
            code = ev.table if isinstance(ev, CapturedTruncate) else ev.code
            prev = held.pop(code, None)
            if isinstance(ev, CapturedTruncate):
                if prev is not None:
                    yield from self._single(prev)
                self._toast.truncate(code)
                self._identity.truncate(code)
                yield ev
                continue
            if prev is not None:
                if (prev.xid, prev.position) == (ev.xid, ev.position) and {prev.op, ev.op} == {
                    OP_DELETE,
                    OP_CREATE,
                }:
                    yield from self._key_change(prev, ev)
                    continue
                yield from self._single(prev)
            if ev.op in (OP_CREATE, OP_DELETE):
                held[code] = ev
            else:
                yield from self._single(ev)
        for ev in held.values():
            yield from self._single(ev)

    def _single(self, ev: _Event) -> Iterator[CapturedChange]:
        t = ev.table
        if ev.op == OP_DELETE:
            ch = self._delete(ev, t)
            if ch is not None:
                yield ch
            return
        if ev.after is None or "id" not in ev.after:
            self._count("events_without_key")
            return
        if ev.op == OP_UPDATE:
            names, values = t.text_unchanged(ev.after)
        else:
            names, values = t.text(ev.after)  # a create's placeholder is data (values fails)
        pk = int(ev.after["id"])
        old = old_kind = old_pk = None
        if ev.op == OP_UPDATE and t.kind == "f" and ev.before:
            old, old_kind = t.old(*t.text(ev.before))
        if t.by_identity:
            old_pk = self._identity.upsert(
                ev.code, names, t.key_pos(names), values, pk, None, is_update=ev.op == OP_UPDATE
            )
            if old_pk is not None:
                self._toast.move(ev.code, old_pk, pk)
        values, unknown = self._resolve(t, ev.code, pk, names, values, old)
        yield CapturedChange(
            ev.code, ev.op, pk, ev.xid, ev.position, names, values, unknown, old_pk, old,
            old_kind, ev.line_no,
        )  # fmt: skip

    def _resolve(
        self,
        t: _Table,
        code: int,
        pk: int,
        names: tuple[str, ...],
        values: tuple[Value, ...],
        old: tuple[Value, ...] | None,
    ) -> tuple[tuple[Value, ...], tuple[str, ...]]:
        if not t.can_toast:
            return values, ()
        if t.null_toast and UNCHANGED in values:
            values = self._null_toast(t, code, pk, names, values)
        return self._toast.resolve(code, pk, names, values, old)

    def _null_toast(
        self, t: _Table, code: int, pk: int, names: tuple[str, ...], values: tuple[Value, ...]
    ) -> tuple[Value, ...]:
        """A null where Debezium cannot write its placeholder is taken as unchanged TOAST only
        when the row's previous image had a value there; otherwise it is a NULL."""
        prev = self._toast.previous(code, pk)
        out = list(values)
        for i, (n, v) in enumerate(zip(names, values, strict=True)):
            if v is UNCHANGED and n in t.null_toast:
                if prev is not None and i < len(prev) and isinstance(prev[i], str):
                    self.num_null_toast += 1
                else:
                    out[i] = None
        return tuple(out)

    def _delete(self, ev: _Event, t: _Table) -> CapturedChange | None:
        if not ev.before:
            self._count("events_without_key")
            return None
        names, before = t.text(ev.before)
        old, old_kind = t.old(names, before)
        if t.by_identity:  # Debezium's id is the type default: find the row by its identity
            pk = self._identity.delete(ev.code, names, t.key_pos(names), old)
        elif "id" in ev.before and ev.before["id"] is not None:
            pk = int(ev.before["id"])
        else:
            self._count("events_without_key")
            return None
        self._toast.forget(ev.code, pk)
        return CapturedChange(
            ev.code, OP_DELETE, pk, ev.xid, ev.position, names, None, old=old, old_kind=old_kind,
            ref=ev.line_no,
        )  # fmt: skip

    def _key_change(self, first: _Event, second: _Event) -> Iterator[CapturedChange]:
        """A delete and a create of one transaction and LSN: one update that moved the row."""
        d, c = (first, second) if first.op == OP_DELETE else (second, first)
        t = c.table
        if not d.before or c.after is None or "id" not in c.after:
            yield from self._single(first)
            yield from self._single(second)
            return
        names, values = t.text_unchanged(c.after)
        old_names, before = t.text(d.before)
        old, old_kind = t.old(old_names, before)
        if old_names != names:  # the old tuple must line up with the new one's columns
            by_name = dict(zip(old_names, old, strict=True))
            old = tuple(by_name.get(n) for n in names)
        pk = int(c.after["id"])
        if t.by_identity:
            old_pk = self._identity.upsert(
                c.code, names, t.key_pos(names), values, pk, old, is_update=True
            )
        else:
            old_pk = int(d.before["id"]) if d.before.get("id") is not None else None
            old_pk = None if old_pk == pk else old_pk
        if old_pk is not None:
            self._toast.move(c.code, old_pk, pk)
        values, unknown = self._resolve(t, c.code, pk, names, values, old)
        yield CapturedChange(
            c.code, OP_UPDATE, pk, c.xid, c.position, names, values, unknown, old_pk, old,
            old_kind, c.line_no, first.op == OP_CREATE,
        )  # fmt: skip
