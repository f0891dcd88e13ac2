"""Workload: one worker's operations, executed in batches inside the caller's transaction.

The engine owns transactions (BEGIN/COMMIT/ROLLBACK, retries, reconnects); a ``Workload`` owns
what to do: which operations to draw (``choose``), which rows they touch, and the parameters,
pre-generated in vectorised blocks by ``loadgen.datagen``. ``execute`` returns exactly the rows
that changed, with full text after-images, for the CDC ledger. Each operation is one
``Operation`` of ``loadgen.ops.registry``: the workload dispatches through it and asks it what
it needs (``capacity``); the operations' modules (``loadgen.ops.pacientes`` ...) hold their
SQL, parameter sources and date rules.

Every operation succeeds against the constraints by construction: FK parents come from ids known
to exist (loaded at start, plus this worker's committed inserts); new paciente ids come from the
sequence in blocks and their CPF is a bijection of the id; links are owned by their paciente, so
a (paciente, convenio) pair is known to be free; rows to update or delete are owned by one
worker (``id % num_workers == worker_id`` among the rows its run owns at start — all of them,
or none when another run was live, ``owned_max_ids`` — plus rows it inserted;
``loadgen.ops.state``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.types.string import TextLoader

from loadgen.errors import ConfigError
from loadgen.ledger.changes import RowChange
from loadgen.ops.context import Context
from loadgen.ops.registry import BY_NAME, OP_NAMES, OPERATIONS
from loadgen.ops.rowgen import RowGenerator
from loadgen.ops.state import Candidates
from loadgen.ops.statements import TEXT_TYPES


@dataclass(frozen=True, slots=True)
class Executed:
    """What one ``Workload.execute`` did on the server."""

    changes: list[RowChange]  # every changed row, in execution order
    no_ops: dict[str, int]  # operation name -> operations that changed no row

    @property
    def num_no_ops(self) -> int:
        return sum(self.no_ops.values())


class Workload:
    """One worker's operations and the rows it owns. Not thread-safe: one per worker process.

    State lives in memory across reconnects (``execute`` takes the connection each time).
    Create the Workloads of one run together, all with the same ``num_workers``: ownership by
    ``id % num_workers`` is decided from the rows present when each one loads.

    Args:
        conn: a connection to load the worker's state from (any; not kept). Pinned session
            settings (``loadgen.db.connect``) are expected.
        worker_id: 0-based; ``0 <= worker_id < num_workers``.
        num_workers: workers in the run.
        seed: RNG seed (an int or one child of ``SeedSequence.spawn``).
        mix: weight per operation name (``loadgen.ops.mix.parse_mix``).
        multirow_inserts: run each group of inserts as ONE statement (``INSERT ... SELECT FROM
            unnest(arrays) ... RETURNING *``) instead of ``executemany`` of one INSERT per row;
            same rows and after-images, about a third less wall time per row and fewer
            round trips (``bench/bench_ops.py``). Updates and deletes always use executemany.
        owned_max_ids: the rows present before the run that this run may update or delete,
            per table: those with ``id <= owned_max_ids[table]`` (pacientes_convenios: whose
            ``paciente_id <= owned_max_ids["pacientes"]``); 0 = none, a table left out = none.
        shard: (index I, count N) of a split run (``loadgen.shards``): only rows with
            ``id % N == I`` are this worker's, those present and those it inserts.
            None = every row present (one run alone on the database). Rows the worker inserts
            are always its own. See ``loadgen.stream.ownership``.

    Raises:
        ConfigError: bad worker_id/num_workers, or a mix naming unknown operations.
        SchemaMissingError: hospital tables missing, or pacientes/medicos/convenios empty.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        *,
        worker_id: int,
        num_workers: int,
        seed: int | np.random.SeedSequence,
        mix: Mapping[str, float],
        multirow_inserts: bool = True,
        owned_max_ids: Mapping[str, int] | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if num_workers < 1 or not 0 <= worker_id < num_workers:
            raise ConfigError(f"worker_id {worker_id} must be in 0..{num_workers - 1}")
        unknown = sorted(set(mix) - set(OP_NAMES))
        if unknown:
            raise ConfigError(f"--mix: unknown operation(s) {', '.join(unknown)}")
        self.worker_id = worker_id
        self.num_workers = num_workers
        self.multirow_inserts = multirow_inserts
        self.set_mix(mix)
        self._rng = np.random.default_rng(seed)
        rnd = random.Random(int(self._rng.integers(2**63)))
        self._cursor: psycopg.Cursor[Any] | None = None  # text-loading cursor (execute)
        self._state = Candidates.load(
            conn,
            worker_id=worker_id,
            num_workers=num_workers,
            owned_max_ids=owned_max_ids,
            shard=shard,
        )
        gen = RowGenerator(self._rng, self._state.parent_ids)
        self._ctx = Context(self._state, gen, rnd, multirow_inserts=multirow_inserts)

    def set_mix(self, mix: Mapping[str, float]) -> None:
        """Draw by these weights from now on (a load phase's mix). Raises ConfigError."""
        weights = np.array([max(0.0, float(mix.get(n, 0.0))) for n in OP_NAMES])
        if not np.isfinite(weights).all() or weights.sum() <= 0:
            raise ConfigError("--mix: weights must be finite and not all zero")
        self._weights = weights

    # ----------------------------------------------------------------- choosing
    def counts(self) -> dict[str, int | None]:
        """Candidates left per operation; None = unlimited (inserts, repeatable updates)."""
        self._state.refresh()
        return {
            name: None if math.isinf(c) else int(c)
            for name, c in zip(OP_NAMES, self._capacities(), strict=True)
        }

    def _capacities(self) -> np.ndarray:
        state = self._state
        return np.array([op.capacity(state) for op in OPERATIONS], dtype=np.float64)

    def choose(self, n: int) -> list[str]:
        """Draw ``n`` operation names by weight, only among operations that can succeed now.

        Operations without candidate rows get weight 0 (the rest renormalised), and no
        operation is drawn more often than it has candidates. Returns fewer than ``n`` names
        (possibly none) only when every enabled operation has run out of candidates, which
        can happen only with a mix of updates/deletes alone.
        """
        self._state.refresh()
        caps = self._capacities()
        chosen: list[int] = []
        while len(chosen) < n:
            weights = np.where(caps > 0, self._weights, 0.0)
            total = weights.sum()
            if total <= 0:
                break
            draws = self._rng.choice(len(weights), size=n - len(chosen), p=weights / total)
            per_op = np.bincount(draws, minlength=len(weights))
            for op in np.flatnonzero(per_op > caps):  # keep the first caps[op] occurrences
                where = np.flatnonzero(draws == op)
                draws[where[int(caps[op]) :]] = -1
            kept = draws[draws >= 0]
            caps -= np.bincount(kept, minlength=len(weights))
            chosen.extend(kept.tolist())
        return [OP_NAMES[i] for i in chosen]

    # ----------------------------------------------------------------- executing
    def execute(self, conn: psycopg.Connection[Any], op_names: Sequence[str]) -> Executed:
        """Run the operations inside the caller's open transaction; return what the server did.

        Same-name operations run together, groups in the order each name first appears, all
        in pipeline mode: inserts as one multi-row statement (or ``executemany``, see
        ``multirow_inserts``), updates and deletes with ``executemany``. ``changes`` holds one
        RowChange per changed row, in execution order, with ``after`` the row's text
        rendering (every column; NULL as None); ``no_ops`` counts, per name, the operations
        whose statement changed no row (a row changed or deleted behind this worker's back,
        an insert that hit ON CONFLICT DO NOTHING): they are not changes.
        State changes stay tentative until ``on_commit``/``on_rollback``; several executes
        before one of them accumulate. An operation whose candidates ran out (not drawn by
        ``choose``) changes nothing and counts as a no-op. Raises psycopg errors unchanged,
        ValueError for an unknown name.
        """
        self._state.refresh()
        groups: dict[str, int] = {}
        for name in op_names:
            if name not in BY_NAME:
                raise ValueError(f"unknown operation {name!r}")
            groups[name] = groups.get(name, 0) + 1
        changes: list[RowChange] = []
        no_ops: dict[str, int] = {}
        cur = self._text_cursor(conn)
        ctx = self._ctx
        with conn.pipeline():
            for name, k in groups.items():
                op = BY_NAME[name]
                made = op.run(ctx, cur, k)
                first_table = op.first_table  # one row there per effective operation
                num_effective = sum(1 for c in made if c.table == first_table)
                if num_effective < k:
                    no_ops[name] = k - num_effective
                changes.extend(made)
        return Executed(changes, no_ops)

    def _text_cursor(self, conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
        """A cursor on ``conn`` loading every column as text (kept until the conn changes)."""
        cur = self._cursor
        if cur is None or cur.closed or cur.connection is not conn:
            cur = self._cursor = conn.cursor()
            for type_name in TEXT_TYPES:
                cur.adapters.register_loader(type_name, TextLoader)
        return cur

    def on_commit(self) -> None:
        """Confirm the tentative state of every ``execute`` since the last commit/rollback."""
        self._state.commit()

    def on_rollback(self) -> None:
        """Undo the tentative state: reserved rows become candidates again, inserts vanish."""
        self._state.rollback()
