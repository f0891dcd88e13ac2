"""Unchanged-TOAST carry-forward: the one place a consumer's resolution of left-out values lives.

PostgreSQL leaves a TOASTed value out of an update's new tuple when the update did not change
it (pgoutput column kind ``u``; Debezium's ``__debezium_unavailable_value`` placeholder). A
correct consumer keeps the value it received earlier. ``ToastCarry`` does that for the
verifier: it resolves a left-out value from the update's own old tuple (REPLICA IDENTITY
FULL sends the whole old row), else from the last full image the stream carried for that row,
and keeps only the images of rows wide enough to ever hold a TOASTed value.

Used by every feeder, in the verifier's thread. Memory: one image per wide row alive.
"""

from __future__ import annotations

from loadgen.cdc.change import UNCHANGED, Value

# Rows whose text is longer than this keep their last full image so that a later
# unchanged-TOAST marker can be resolved. A value is stored out of line only when its row is
# over ~2 KB (TOAST_TUPLE_THRESHOLD) in binary form, and text renderings of the hospital
# types are never much shorter than their binary form; half of it leaves a margin.
TOAST_TRACK_MIN_CHARS = 1024

# Largest text of fixed-size types (by type oid and name), and the biggest row that can
# never be TOASTed.
_FIXED_TYPES = (
    (16, "bool", 5),
    (20, "int8", 20),
    (21, "int2", 6),
    (23, "int4", 11),
    (26, "oid", 10),
    (700, "float4", 16),
    (701, "float8", 24),
    (1082, "date", 13),
    (1083, "time", 15),
    (1114, "timestamp", 29),
    (1184, "timestamptz", 35),
    (2950, "uuid", 36),
)
_FIXED_TYPE_CHARS: dict[int | str, int] = {
    **{oid: n for oid, _, n in _FIXED_TYPES},
    **{name: n for _, name, n in _FIXED_TYPES},
}
TOAST_TUPLE_THRESHOLD_BYTES = 2032  # PostgreSQL's default (8 KB pages)
_BOUNDED_TEXT = frozenset({1043, 1042, "varchar", "bpchar"})  # varchar(n), char(n)


def can_toast(columns: list[tuple[int | str, int]]) -> bool:
    """Whether a row of a relation with these ``(type oid or name, typmod)`` columns can ever
    be large enough for a value to go out of line.

    varchar(n)/char(n) hold at most 4n bytes (UTF-8); fixed-size types are small. Only when
    every column is bounded and the bound is under the TOAST threshold is the answer no.
    """
    total = 0
    for type_key, typmod in columns:
        if type_key in _FIXED_TYPE_CHARS:
            total += _FIXED_TYPE_CHARS[type_key]
        elif type_key in _BOUNDED_TEXT and typmod > 4:
            total += 4 * (typmod - 4) + 4
        else:
            return True
    return total >= TOAST_TUPLE_THRESHOLD_BYTES


class ToastCarry:
    """Last full images of wide rows, keyed by (table code, id)."""

    def __init__(self) -> None:
        self._images: dict[tuple[int, int], tuple[Value, ...]] = {}

    def resolve(
        self,
        table: int,
        pk: int,
        names: tuple[str, ...],
        values: tuple[Value, ...],
        old: tuple[Value, ...] | None,
    ) -> tuple[tuple[Value, ...], tuple[str, ...]]:
        """``values`` with each UNCHANGED replaced by the value the stream carried last (the
        update's own old tuple first); returns (values, names of the columns still unknown).
        Then remembers the row's image when it is wide. Call for every create and update of a
        relation that ``can_toast``."""
        unknown: tuple[str, ...] = ()
        if UNCHANGED in values:
            prev = self._images.get((table, pk))
            out, missing = list(values), []
            for i, v in enumerate(values):
                if v is not UNCHANGED:
                    continue
                if old is not None and i < len(old) and isinstance(old[i], str):
                    out[i] = old[i]
                elif prev is not None and i < len(prev) and prev[i] is not UNCHANGED:
                    out[i] = prev[i]
                else:
                    missing.append(names[i])
            values, unknown = tuple(out), tuple(missing)
        if sum(len(v) for v in values if isinstance(v, str)) > TOAST_TRACK_MIN_CHARS:
            self._images[(table, pk)] = values
        elif self._images:
            self._images.pop((table, pk), None)
        return values, unknown

    def previous(self, table: int, pk: int) -> tuple[Value, ...] | None:
        """The last full image kept for the row (None: none, or the row is not wide)."""
        return self._images.get((table, pk))

    def move(self, table: int, old_pk: int, pk: int) -> None:
        """An update changed the row's id: its image follows it."""
        image = self._images.pop((table, old_pk), None)
        if image is not None:
            self._images[(table, pk)] = image

    def forget(self, table: int, pk: int) -> None:
        """The row was deleted."""
        if self._images:
            self._images.pop((table, pk), None)

    def truncate(self, table: int) -> None:
        """Every row of ``table`` is gone."""
        for key in [k for k in self._images if k[0] == table]:
            del self._images[key]
