"""The data an operation is made of: its ``Statement`` s, their ``ParamSource`` s and ``Block`` s.

Plain frozen data with no behaviour beyond binding parameters (``Statement.bind``), so that the
workload's helpers (``loadgen.ops.context``, ``loadgen.ops.rowgen``) and ``Operation`` can all
depend on it without depending on each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    pass

Kind = Literal["insert", "update", "delete"]
Change = Literal["c", "u", "d"]  # Debezium's letters, as in RowChange.op

KINDS: tuple[Kind, ...] = ("insert", "update", "delete")
CHANGE_OF_KIND: dict[str, Change] = {"insert": "c", "update": "u", "delete": "d"}

UNLIMITED = math.inf  # capacity of an operation that is always possible (inserts)


@dataclass(frozen=True)
class Block:
    """What a ``ParamSource`` generates from: one refill of its buffer.

    ``ids`` has one id per row to generate (shape ``(n,)``, int64): ids taken from the
    source's ``sequence``, else ``1..n`` (placeholders the generator may ignore). ``now`` is
    naive UTC. ``parents()`` returns ``{table: int64 ids known to exist}`` (pacientes, medicos,
    convenios), merged lazily, so call it only when the rows need parents.
    """

    rng: np.random.Generator
    ids: np.ndarray
    now: datetime
    parents: Callable[[], dict[str, np.ndarray]]

    @property
    def n(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ParamSource:
    """Values generated in vectorised blocks (``loadgen.ops.rowgen`` buffers them).

    One buffer per source name, shared by every operation that uses the source, so its
    random stream is drawn in the order those operations run.
    """

    name: str  # buffer key, unique in the registry, e.g. "new_consulta"
    columns: tuple[str, ...]  # the values of one generated row, in order
    generate: Callable[[Block], Mapping[str, np.ndarray]]  # {column: (n,) array}, >= columns
    sequence: str | None = None  # table whose id sequence numbers the rows (``Block.ids``)


@dataclass(frozen=True)
class Statement:
    """One SQL statement of an operation; each operation it runs for changes one row or none.

    ``columns`` are the statement's parameters in order (for named ``%(x)s`` placeholders:
    their names). Each comes from the ``source`` (generated) or is ``chosen`` by the operation
    from its state (candidate ids, rows it inserted just before); a chosen column overrides a
    generated one of the same name. ``sql`` is the text of an UPDATE/DELETE; an insert's is
    built from ``table``, ``columns`` and ``on_conflict`` (``loadgen.ops.statements``).
    """

    table: str
    change: Change
    columns: tuple[str, ...]
    sql: str | None = None  # UPDATE/DELETE text (psycopg placeholders); None for an INSERT
    source: ParamSource | None = None
    chosen: tuple[str, ...] = ()
    # INSERT only: ON CONFLICT (these columns) DO NOTHING, for a natural key whose value is
    # free by construction unless an in-doubt commit did happen (then a no-op, not an error)
    on_conflict: tuple[str, ...] = ()

    @cached_property
    def is_named(self) -> bool:
        """Whether the SQL takes a mapping (``%(name)s`` placeholders) instead of a sequence."""
        return self.sql is not None and "%(" in self.sql

    def position(self, column: str) -> int:
        """Index of ``column`` in a bound parameter row. Raises ValueError if absent."""
        return self.columns.index(column)

    @cached_property
    def _getter(self) -> Callable[[tuple[Any, ...]], tuple[Any, ...]] | None:
        """From ``(*chosen values, *generated values)`` to ``columns`` order; None = as is."""
        generated = self.source.columns if self.source is not None else ()
        positions = [
            self.chosen.index(c) if c in self.chosen else len(self.chosen) + generated.index(c)
            for c in self.columns
        ]
        if positions == list(range(len(self.chosen) + len(generated))):
            return None
        if len(positions) == 1:
            (i,) = positions
            return lambda row: (row[i],)
        return itemgetter(*positions)

    @cached_property
    def _named_keys(self) -> tuple[str, ...]:
        """Keys of ``(*generated values, *chosen values)``: a chosen value overrides."""
        return (*(self.source.columns if self.source is not None else ()), *self.chosen)

    def bind(
        self, chosen: Sequence[tuple[Any, ...]], generated: Sequence[tuple[Any, ...]]
    ) -> list[Any]:
        """Parameter rows in ``columns`` order from per-row ``chosen`` and ``generated`` values.

        ``chosen`` rows hold the ``chosen`` columns, ``generated`` rows the source's columns
        (pass ``()`` for what the statement has none of). Returns tuples, or dicts for named
        placeholders. Raises ValueError when chosen and generated rows differ in number.
        """
        both = bool(self.chosen) and self.source is not None
        if self.is_named:
            keys = self._named_keys
            if both:
                return [
                    dict(zip(keys, (*g, *c), strict=True))
                    for c, g in zip(chosen, generated, strict=True)
                ]
            return [
                dict(zip(keys, row, strict=True)) for row in (chosen if self.chosen else generated)
            ]
        getter = self._getter
        if both:
            pairs = zip(chosen, generated, strict=True)
            if getter is None:
                return [(*c, *g) for c, g in pairs]
            return [getter((*c, *g)) for c, g in pairs]
        rows = chosen if self.chosen else generated
        if getter is not None:
            return list(map(getter, rows))
        return rows if isinstance(rows, list) else list(rows)
