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
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import psycopg

from loadgen import tables

try:
    from loadgen.datagen import generate_rows
except ImportError:  # XXX: until loadgen.datagen lands; remove with _datagen_shim.py
    from loadgen.ops._datagen_shim import generate_rows  # type: ignore[assignment]

MIN_BLOCK_ROWS = 16
MAX_BLOCK_ROWS = 1024
MAX_BUFFER_AGE_S = 30.0
_MINUTE_US = 60_000_000
_HOUR_US = 60 * _MINUTE_US
_DAY_US = 24 * _HOUR_US

# Columns each insert statement writes (``id`` only for pacientes, whose CPF derives from it;
# the others take their id from the BIGSERIAL default).
COLUMNS: dict[str, tuple[str, ...]] = {
    spec.name: spec.columns if spec.name == "pacientes" else spec.columns[1:]
    for spec in tables.TABLES
}
# What ``take`` returns per kind: (source table, columns).
_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pacientes": ("pacientes", COLUMNS["pacientes"]),
    "consultas": ("consultas", COLUMNS["consultas"]),
    "exames": ("exames", COLUMNS["exames"]),
    "internacoes": ("internacoes", COLUMNS["internacoes"]),
    "pacientes_convenios": ("pacientes_convenios", ("numero_carteira", "validade")),
    "update_paciente": ("pacientes", ("telefone", "endereco")),
    "update_exame": ("exames", ("resultado",)),
}


@dataclass
class _Buffer:
    rows: list[tuple] = field(default_factory=list)  # next row last (pop from the end)
    ids: list[int] = field(default_factory=list)  # pacientes only: ids matching ``rows``
    made_at_s: float = 0.0  # monotonic time the block was generated
    block_rows: int = MIN_BLOCK_ROWS


class RowGenerator:
    """Buffers of pre-generated parameters; one per Workload (single thread)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buffers = {kind: _Buffer() for kind in _KINDS}

    def take(self, cur: psycopg.Cursor, kind: str, k: int,
             parents: dict[str, np.ndarray]) -> list[tuple]:
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
            self._refill(cur, kind, buf, max(k, buf.block_rows), parents)
        out = buf.rows[-k:][::-1]
        del buf.rows[-k:]
        if buf.ids:
            del buf.ids[-k:]
        return out

    def _refill(self, cur: psycopg.Cursor, kind: str, buf: _Buffer, n: int,
                parents: dict[str, np.ndarray]) -> None:
        table, columns = _KINDS[kind]
        if kind == "pacientes":
            # keep unused ids (in order of use), allocate the rest from the sequence
            ids = buf.ids[::-1] + _nextval(cur, "pacientes", n - len(buf.ids))
            id_array = np.array(ids, dtype=np.int64)
        else:
            ids = []
            id_array = np.arange(1, n + 1, dtype=np.int64)
        now = datetime.now(UTC).replace(tzinfo=None)
        rows: list[tuple] = []
        while len(rows) < n:  # update values: datagen may leave some NULL; draw again
            batch = generate_rows(table, id_array, self._rng, parents=parents, now=now)
            _make_current(kind, batch, np.datetime64(now, "us"), self._rng)
            if kind in ("update_paciente", "update_exame"):
                keep = np.ones(len(id_array), dtype=bool)
                for column in columns:
                    keep &= np.array([v is not None for v in batch[column]], dtype=bool)
                batch = {c: batch[c][keep] for c in columns}
            rows.extend(zip(*(batch[c].tolist() for c in columns), strict=True))
        buf.rows = rows[:n][::-1]
        buf.ids = ids[::-1] if kind == "pacientes" else []
        buf.made_at_s = time.monotonic()


def _nextval(cur: psycopg.Cursor, table: str, n: int) -> list[int]:
    if n <= 0:
        return []
    cur.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                "FROM generate_series(1, %s)", (table, n))
    return [int(row[0]) for row in cur.fetchall()]


def _offsets_us(rng: np.random.Generator, n: int, p_past: float, past_us: int, future_lo_us: int,
                future_hi_us: int) -> np.ndarray:
    """Signed offsets from now in µs: ``p_past`` of them in (-past_us, 0], the rest ahead."""
    is_past = rng.random(n) < p_past
    past = -rng.integers(0, past_us, n)
    future = rng.integers(future_lo_us, future_hi_us, n)
    return np.where(is_past, past, future)


def _make_current(kind: str, batch: dict[str, np.ndarray], now: np.datetime64,
                  rng: np.random.Generator) -> None:
    """Overwrite, in place, what a new row in a live hospital looks like at ``now``.

    A new consulta is agendada (a quarter already due in the last 2 h, the rest 1 h to 14 days
    ahead, on the minute); a new exame has no result (half collected in the last 6 h, half
    scheduled 1 h to 3 days ahead); a new internação is open and started in the last 6 h; a new
    paciente registers now.
    """
    n = len(next(iter(batch.values())))
    if kind == "pacientes":
        batch["data_cadastro"] = np.full(n, now, dtype="datetime64[us]")
    elif kind == "consultas":
        offsets = _offsets_us(rng, n, 0.25, 2 * _HOUR_US, _HOUR_US, 14 * _DAY_US)
        batch["data"] = _floor_minute(now + offsets.astype("timedelta64[us]"))
        batch["status"] = np.full(n, "agendada", dtype=object)
    elif kind == "exames":
        offsets = _offsets_us(rng, n, 0.5, 6 * _HOUR_US, _HOUR_US, 3 * _DAY_US)
        batch["data"] = _floor_minute(now + offsets.astype("timedelta64[us]"))
        batch["resultado"] = np.full(n, None, dtype=object)
    elif kind == "internacoes":
        offsets = -rng.integers(0, 6 * _HOUR_US, n)
        batch["data_entrada"] = _floor_minute(now + offsets.astype("timedelta64[us]"))
        batch["data_saida"] = np.full(n, None, dtype=object)


def _floor_minute(values: np.ndarray) -> np.ndarray:
    return values.astype("datetime64[m]").astype("datetime64[us]")
