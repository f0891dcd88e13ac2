"""Parameter buffers for the operations: rows pre-generated in vectorised blocks by datagen.

Each ``ParamSource`` (new rows of a table, new values for an update) has a buffer refilled with
one ``generate`` call per block, converted to tuples once per block. Blocks grow while they
are used up quickly (up to ``MAX_BLOCK_ROWS``) and are thrown away when older than
``MAX_BUFFER_AGE_S``, so dates relative to "now" stay fresh even at one operation an hour.
A source with a ``sequence`` (pacientes, whose CPF is a function of the id) takes its ids from
that table's sequence a block at a time; ids left in a stale block are kept (only the other
columns are regenerated).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from loadgen import datagen, tables
from loadgen.ops.statement import Block, ParamSource

MIN_BLOCK_ROWS = 16
MAX_BLOCK_ROWS = 1024
MAX_BUFFER_AGE_S = 30.0


def new_rows(table: str, *, sequence: bool = False, name: str | None = None) -> ParamSource:
    """A source of fresh rows of ``table``: rows as a live hospital creates them now.

    Columns are the table's loader columns without ``id`` (the BIGSERIAL default gives it),
    or with it when ``sequence`` (ids come from the table's sequence). ``name`` defaults to
    ``new_<table>``.
    """
    spec = tables.BY_NAME[table]
    return ParamSource(
        name=name or f"new_{table}",
        columns=spec.columns if sequence else spec.columns[1:],
        generate=lambda block: _fresh(table, block),
        sequence=table if sequence else None,
    )


def _fresh(table: str, block: Block) -> Mapping[str, np.ndarray]:
    # fresh: pacientes registered now, consultas agendada ahead, exames scheduled without
    # result, internações just opened
    parents = block.parents()
    known = datagen.ParentIds(
        pacientes=parents["pacientes"], medicos=parents["medicos"], convenios=parents["convenios"]
    )
    return datagen.generate_rows(
        table, block.ids, block.rng, parents=known, now=block.now, fresh=True
    )


@dataclass
class _Buffer:
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # next row last (pop from the end)
    ids: list[int] = field(default_factory=list)  # sequence sources only: ids matching ``rows``
    made_at_s: float = 0.0  # monotonic time the block was generated
    block_rows: int = MIN_BLOCK_ROWS


class RowGenerator:
    """Buffers of pre-generated parameters; one per Workload (its worker's one thread).

    Args:
        rng: the workload's generator (every source draws from it, in the order they refill).
        parent_ids: returns ``{table: int64 ids known to exist}``, called by sources that need
            parents when they refill.
    """

    def __init__(
        self, rng: np.random.Generator, parent_ids: Callable[[], dict[str, np.ndarray]]
    ) -> None:
        self._rng = rng
        self._parent_ids = parent_ids
        self._buffers: dict[str, _Buffer] = {}

    def take(self, cur: psycopg.Cursor[Any], source: ParamSource, k: int) -> list[tuple[Any, ...]]:
        """Return ``k`` rows of ``source`` (tuples in ``source.columns`` order).

        ``cur`` is used only to allocate ids from the source's sequence (inside the caller's
        transaction; sequences are not transactional, so a rollback only leaves a gap).
        """
        if k <= 0:
            return []
        buf = self._buffers.get(source.name)
        if buf is None:
            buf = self._buffers[source.name] = _Buffer()
        now_s = time.monotonic()
        is_stale = now_s - buf.made_at_s > MAX_BUFFER_AGE_S
        if is_stale or len(buf.rows) < k:
            if not is_stale and buf.made_at_s:
                buf.block_rows = min(MAX_BLOCK_ROWS, buf.block_rows * 2)
            elif is_stale and buf.made_at_s:
                buf.block_rows = max(MIN_BLOCK_ROWS, buf.block_rows // 2)
            self._refill(cur, source, buf, max(k, buf.block_rows))
        out = buf.rows[-k:][::-1]
        del buf.rows[-k:]
        if buf.ids:
            del buf.ids[-k:]
        return out

    def _refill(self, cur: psycopg.Cursor[Any], source: ParamSource, buf: _Buffer, n: int) -> None:
        ids: list[int] = []
        if source.sequence is not None:
            # keep unused ids (in order of use), allocate the rest from the sequence
            ids = buf.ids[::-1] + _nextval(cur, source.sequence, n - len(buf.ids))
        now = datetime.now(UTC).replace(tzinfo=None)
        id_array = np.array(ids, dtype=np.int64) if ids else np.arange(1, n + 1, dtype=np.int64)
        batch = source.generate(Block(self._rng, id_array, now, self._parent_ids))
        rows = list(zip(*(batch[c].tolist() for c in source.columns), strict=True))
        buf.rows = rows[::-1]
        buf.ids = ids[::-1]
        buf.made_at_s = time.monotonic()


def _nextval(cur: psycopg.Cursor[Any], table: str, n: int) -> list[int]:
    if n <= 0:
        return []
    cur.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", (table, n)
    )
    return [int(row[0]) for row in cur.fetchall()]
