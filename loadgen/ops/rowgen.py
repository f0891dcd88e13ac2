"""Parameter buffers for the operations: rows pre-generated in vectorised blocks by datagen.

Each kind of parameter (new rows per table, new values for updates) has a buffer refilled with
one ``generate_rows`` call per block, converted to tuples once per block. Blocks grow while they
are used up quickly (up to ``MAX_BLOCK_ROWS``) and are thrown away when older than
``MAX_BUFFER_AGE_S``, so dates relative to "now" stay fresh even at one operation an hour.
New paciente ids are taken from the table's sequence a block at a time; ids left in a stale
block are kept (CPF is a function of the id, so only the other columns are regenerated).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from loadgen import datagen, tables

MIN_BLOCK_ROWS = 16
MAX_BLOCK_ROWS = 1024
MAX_BUFFER_AGE_S = 30.0

# Columns each insert statement writes (``id`` only for pacientes, whose CPF derives from it;
# the others take their id from the BIGSERIAL default).
COLUMNS: dict[str, tuple[str, ...]] = {
    spec.name: spec.columns if spec.name == "pacientes" else spec.columns[1:]
    for spec in tables.TABLES
}
# What ``take`` returns per kind: (source table or None for field helpers, columns).
_KINDS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "pacientes": ("pacientes", COLUMNS["pacientes"]),
    "consultas": ("consultas", COLUMNS["consultas"]),
    "exames": ("exames", COLUMNS["exames"]),
    "internacoes": ("internacoes", COLUMNS["internacoes"]),
    "pacientes_convenios": ("pacientes_convenios", ("numero_carteira", "validade")),
    "update_paciente": (None, ("telefone", "endereco")),
    "update_consulta": (None, ("status",)),
    "update_exame": (None, ("resultado",)),
}


@dataclass
class _Buffer:
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # next row last (pop from the end)
    ids: list[int] = field(default_factory=list)  # pacientes only: ids matching ``rows``
    made_at_s: float = 0.0  # monotonic time the block was generated
    block_rows: int = MIN_BLOCK_ROWS


class RowGenerator:
    """Buffers of pre-generated parameters; one per Workload (single thread)."""

    def __init__(
        self, rng: np.random.Generator, parent_ids: Callable[[], dict[str, np.ndarray]]
    ) -> None:
        self._rng = rng
        self._parent_ids = parent_ids  # called at refill: table -> ids known to exist
        self._buffers = {kind: _Buffer() for kind in _KINDS}

    def take(self, cur: psycopg.Cursor, kind: str, k: int) -> list[tuple[Any, ...]]:
        """Return ``k`` parameter tuples of ``kind`` (columns as in ``_KINDS``).

        ``cur`` is used only to allocate paciente ids from the sequence (inside the caller's
        transaction; sequences are not transactional, so a rollback only leaves a gap).
        """
        if k <= 0:
            return []
        buf = self._buffers[kind]
        now_s = time.monotonic()
        is_stale = now_s - buf.made_at_s > MAX_BUFFER_AGE_S
        if is_stale or len(buf.rows) < k:
            if not is_stale and buf.made_at_s:
                buf.block_rows = min(MAX_BLOCK_ROWS, buf.block_rows * 2)
            elif is_stale and buf.made_at_s:
                buf.block_rows = max(MIN_BLOCK_ROWS, buf.block_rows // 2)
            self._refill(cur, kind, buf, max(k, buf.block_rows))
        out = buf.rows[-k:][::-1]
        del buf.rows[-k:]
        if buf.ids:
            del buf.ids[-k:]
        return out

    def _refill(self, cur: psycopg.Cursor, kind: str, buf: _Buffer, n: int) -> None:
        table, columns = _KINDS[kind]
        ids: list[int] = []
        if kind == "pacientes":
            # keep unused ids (in order of use), allocate the rest from the sequence
            ids = buf.ids[::-1] + _nextval(cur, "pacientes", n - len(buf.ids))
        now = datetime.now(UTC).replace(tzinfo=None)
        batch = self._generate(kind, table, ids, n, now)
        rows = list(zip(*(batch[c].tolist() for c in columns), strict=True))
        buf.rows = rows[::-1]
        buf.ids = ids[::-1]
        buf.made_at_s = time.monotonic()

    def _generate(
        self, kind: str, table: str | None, ids: list[int], n: int, now: datetime
    ) -> dict[str, np.ndarray]:
        rng = self._rng
        if kind == "update_paciente":
            return {
                "telefone": datagen.new_phones(rng, n),
                "endereco": datagen.new_addresses(rng, n),
            }
        if kind == "update_consulta":
            return {"status": datagen.consulta_outcomes(rng, n)}
        if kind == "update_exame":
            return {"resultado": datagen.exam_results(rng, n)}
        assert table is not None
        parents = self._parent_ids()
        id_array = np.array(ids, dtype=np.int64) if ids else np.arange(1, n + 1, dtype=np.int64)
        if kind == "pacientes_convenios":
            # only numero_carteira/validade are used (the workload picks the pair); n fake
            # pacientes give datagen's link slots room
            known = datagen.ParentIds(pacientes=id_array, convenios=parents["convenios"])
        else:
            known = datagen.ParentIds(
                pacientes=parents["pacientes"],
                medicos=parents["medicos"],
                convenios=parents["convenios"],
            )
        # fresh: rows as a live hospital creates them (pacientes registered now, consultas
        # agendada ahead, exames scheduled without result, internações just opened)
        return datagen.generate_rows(table, id_array, rng, parents=known, now=now, fresh=True)


def _nextval(cur: psycopg.Cursor, table: str, n: int) -> list[int]:
    if n <= 0:
        return []
    cur.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", (table, n)
    )
    return [int(row[0]) for row in cur.fetchall()]
