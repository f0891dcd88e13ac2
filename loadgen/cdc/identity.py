"""Rows of a REPLICA IDENTITY USING INDEX table, found by their identity columns.

When a table's replica identity is a unique index that leaves out ``id``, the old tuple a
delete (or an identity-changing update) sends holds only the index's columns: pgoutput sends
nothing else, Debezium fills every other NOT NULL column with its type's default (``"id": 0``,
``""``). An update that changes only ``id`` sends no old tuple at all. ``IdentityTracker``
keeps identity key → ``id`` from the images the stream carried, falling back to the ledger's
before-images, so every source resolves these rows the same way.

Used by every feeder, in the verifier's thread. Memory: one entry per row of such tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from loadgen.cdc.change import Value

IdentityKey = tuple[Value, ...]
# (table code, identity column → text) → id, from the ledger (``LedgerIndex.pk_by_identity``)
LedgerLookup = Callable[[int, Mapping[str, object]], int | None]


class IdentityTracker:
    """identity key → id, per table whose replica identity does not include ``id``."""

    def __init__(self, ledger_lookup: LedgerLookup) -> None:
        self._ids: dict[int, dict[IdentityKey, int]] = {}
        self._ledger = ledger_lookup

    def _lookup(
        self, table: int, names: tuple[str, ...], key_pos: tuple[int, ...], key: IdentityKey
    ) -> int | None:
        return self._ledger(table, {names[i]: v for i, v in zip(key_pos, key, strict=True)})

    def delete(
        self, table: int, names: tuple[str, ...], key_pos: tuple[int, ...], old: tuple[Value, ...]
    ) -> int:
        """The id of the row a delete's identity-only old tuple names (-1: nobody knows it)."""
        key = tuple(old[i] for i in key_pos)
        pk = self._ids.setdefault(table, {}).pop(key, None)
        if pk is None:
            pk = self._lookup(table, names, key_pos, key)
        return -1 if pk is None else pk

    def upsert(
        self,
        table: int,
        names: tuple[str, ...],
        key_pos: tuple[int, ...],
        values: tuple[Value, ...],
        pk: int,
        old: tuple[Value, ...] | None,
        *,
        is_update: bool,
    ) -> int | None:
        """Track a create or update (``values``: the after-image); return the update's old id
        when it moved the row to a new ``id`` (None: it did not, or unknown).

        An update that changed the identity's columns sends them as the old tuple; one that
        changed only ``id`` sends none, and the row is the one the unchanged identity named.
        """
        ids = self._ids.setdefault(table, {})
        old_pk: int | None = None
        if old is not None:
            old_key = tuple(old[i] for i in key_pos)
            old_pk = ids.pop(old_key, None)
            if old_pk is None:
                old_pk = self._lookup(table, names, key_pos, old_key)
        key = tuple(values[i] for i in key_pos)
        if is_update and old is None:
            old_pk = ids.get(key)
            if old_pk is None:
                old_pk = self._lookup(table, names, key_pos, key)
        ids[key] = pk
        return None if old_pk == pk else old_pk

    def truncate(self, table: int) -> None:
        self._ids.pop(table, None)
