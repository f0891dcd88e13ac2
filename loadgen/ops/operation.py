"""One streaming operation as one object: what it is, the SQL it runs, where its values come from.

An ``Operation`` holds everything the engine, the mix parser, the ledger and the docs read about
one operation: its name and kind, the tables it writes (in order), its default weight and one-line
description, its ``Statement`` s (each changes one row per operation), the ``ParamSource`` s that
generate their values, what it needs to be possible (``capacity``) and how it runs (``run``).
``loadgen.ops.checks`` verifies that these facts agree (at import, for the registry).

Objects here are plain frozen data; the callables they hold run in one worker process, on its
one thread (see ``loadgen.ops.context``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loadgen.ops.statement import (
    CHANGE_OF_KIND,
    KINDS,
    UNLIMITED,
    Block,
    Change,
    Kind,
    ParamSource,
    Statement,
)

if TYPE_CHECKING:
    import psycopg

    from loadgen.ledger.changes import RowChange
    from loadgen.ops.context import Context
    from loadgen.ops.state import Candidates

__all__ = [
    "CHANGE_OF_KIND",
    "KINDS",
    "UNLIMITED",
    "Block",
    "Change",
    "Kind",
    "Operation",
    "ParamSource",
    "Statement",
    "unlimited",
]


def unlimited(_: Candidates) -> float:
    """Capacity of an operation that needs no candidate row."""
    return UNLIMITED


@dataclass(frozen=True)
class Operation:
    """One streaming operation: the one place that knows it.

    ``run(ctx, cur, k)`` performs ``k`` of it inside the caller's open transaction (pipeline
    mode) and returns the rows that changed, in execution order; fewer than ``k`` operations'
    rows means no-ops. ``capacity(candidates)`` is how many can run now (``UNLIMITED`` when
    no candidate row is needed); ``choose`` never draws more.
    """

    name: str  # registry name, e.g. "insert_consulta"; also the RowChange.op_name
    kind: Kind  # what every statement does; the summary's by_kind bucket
    tables: tuple[str, ...]  # tables it writes, in the order it writes them
    default_weight: float  # relative weight in the default mix; 0 = off by default
    description: str  # one line, for `loadgen ops list` and docs/operations.md
    statements: tuple[Statement, ...]  # in execution order; one row changed by each
    run: Callable[[Context, psycopg.Cursor[Any], int], list[RowChange]] = field(repr=False)
    capacity: Callable[[Candidates], float] = field(default=unlimited, repr=False)

    @property
    def changes(self) -> tuple[tuple[str, Change], ...]:
        """The rows one effective operation changes: (table, change letter) per statement."""
        return tuple((s.table, s.change) for s in self.statements)

    @property
    def first_table(self) -> str:
        """The table of its first statement: one row there per operation that was not a no-op."""
        return self.statements[0].table
