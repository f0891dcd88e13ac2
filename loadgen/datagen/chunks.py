"""Seeding entry point: deterministic per-chunk generators over a fixed grid of ids.

Ids are grouped in chunks of ``CHUNK_IDS`` (chunk ``c`` holds ids ``c*CHUNK_IDS+1 ..
(c+1)*CHUNK_IDS``). A run splits its id range at chunk boundaries into *pieces*; each piece
gets its own ``np.random.Generator`` seeded by ``SeedSequence([seed, table_index, chunk,
piece_first_id])``. Workers take whole pieces, so row content depends only on (seed, table,
id range of the run), never on how many workers there are or which one wrote a piece.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import numpy as np

from loadgen import tables
from loadgen.datagen.rows import Batch, LazyBatch, ParentIds, generate_lazy, generate_rows

CHUNK_IDS = 16_384  # fixed: changing it changes the data a --seed produces
TABLE_INDEX: dict[str, int] = {name: i for i, name in enumerate(tables.TABLE_NAMES)}


def chunk_rng(seed: int, table: str, first_id: int) -> np.random.Generator:
    """Return the generator of the piece starting at ``first_id`` (same in every process)."""
    chunk = (first_id - 1) // CHUNK_IDS
    seq = np.random.SeedSequence([seed, TABLE_INDEX[table], chunk, first_id])
    return np.random.Generator(np.random.PCG64(seq))


def iter_pieces(first_id: int, stop_id: int) -> Iterator[tuple[int, int]]:
    """Split ids ``[first_id, stop_id)`` at chunk boundaries: yields ``(lo, hi)`` half-open."""
    lo = first_id
    while lo < stop_id:
        hi = min(stop_id, ((lo - 1) // CHUNK_IDS + 1) * CHUNK_IDS + 1)
        yield lo, hi
        lo = hi


def generate_piece(
    table: str,
    seed: int,
    lo: int,
    hi: int,
    *,
    parents: ParentIds,
    now: datetime,
    lazy: bool = False,
) -> Batch | LazyBatch:
    """Generate rows with ids ``[lo, hi)`` (one piece from ``iter_pieces``) for the seeder.

    Args:
        table: table name.
        seed: the run's ``--seed`` (non-negative int).
        lo: first id (inclusive); hi: last id + 1; the range must not cross a chunk boundary.
        parents: parent ids for foreign keys (for ``pacientes_convenios``: the run's new
            pacientes, with ``link_base_id`` = the run's first link id).
        now: the run's reference instant (see ``dates.reference_day``).
        lazy: keep text columns as ``Text`` (what the COPY encoder wants; same values).

    Returns:
        a batch as ``generate_rows`` documents it, ``hi - lo`` rows.

    Raises:
        ValueError: the range crosses a chunk boundary (or ``generate_rows`` refuses).
    """
    if (lo - 1) // CHUNK_IDS != (hi - 2) // CHUNK_IDS:
        raise ValueError(f"piece {lo}..{hi - 1} crosses a chunk boundary")
    ids = np.arange(lo, hi, dtype=np.int64)
    rng = chunk_rng(seed, table, lo)
    if lazy:
        return generate_lazy(table, ids, rng, parents=parents, now=now)
    return generate_rows(table, ids, rng, parents=parents, now=now)
