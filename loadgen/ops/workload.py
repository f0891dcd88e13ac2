"""Workload: one worker's operations, executed in batches inside the caller's transaction.

The engine owns transactions (BEGIN/COMMIT/ROLLBACK, retries, reconnects); a ``Workload`` owns
what to do: which operations to draw (``choose``), which rows they touch, and the parameters,
pre-generated in vectorised blocks by ``loadgen.datagen``. ``execute`` returns exactly the rows
that changed, with full text after-images, for the CDC ledger.

Every operation succeeds against the constraints by construction: FK parents come from ids known
to exist (loaded at start, plus this worker's committed inserts); new paciente ids come from the
sequence in blocks and their CPF is a bijection of the id; links are owned by their paciente, so
a (paciente, convenio) pair is known to be free; rows to update or delete are owned by one
worker (``id % num_workers == worker_id`` among the rows its run owns at start — all of them,
or none when another run was live, ``owned_max_ids`` — plus rows it inserted).

Date coherence follows ``loadgen.schema.CHECKS``. A consulta is closed due-first (its time has
passed); when none is due, the next upcoming one is closed, and if it becomes realizada or
faltou its ``data`` moves to now (the appointment happened now), a cancellation keeps its date.
Likewise an exam result is recorded for a due exam first, else for the next scheduled one,
whose ``data`` becomes now (performed now). A discharge happens at
``GREATEST(data_entrada, now)``. The SQL applies these rules itself, with the server's clock.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

from loadgen import tables
from loadgen.errors import ConfigError, SchemaMissingError
from loadgen.ledger.changes import RowChange
from loadgen.ops import rowgen
from loadgen.ops.pools import DatedPool, IdPool, LinkState
from loadgen.ops.registry import BY_NAME, OP_NAMES
from loadgen.ops.statements import (
    DELETE_CONSULTA,
    DELETE_LINK,
    TEXT_TYPES,
    UPDATE_CONSULTA,
    UPDATE_EXAME,
    UPDATE_INTERNACAO,
    UPDATE_PACIENTE,
    insert_sql,
    insert_unnest_sql,
)

logger = logging.getLogger(__name__)

_NO_LIMIT = 2**62  # owned_max_ids=None: every pre-existing row may be claimed
DUE_MARGIN_S = 2.0  # a row counts as due this long after its date (clock skew to the server)


@dataclass(frozen=True, slots=True)
class Executed:
    """What one ``Workload.execute`` did on the server."""

    changes: list[RowChange]  # every changed row, in execution order
    no_ops: dict[str, int]  # operation name -> operations that changed no row

    @property
    def num_no_ops(self) -> int:
        return sum(self.no_ops.values())


def _link_of(change: RowChange) -> tuple[int, int]:
    after = change.after or {}
    return int(after["paciente_id"] or 0), int(after["convenio_id"] or 0)


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
            None = every row present (one run alone on the database). Rows the worker inserts
            are always its own. See ``loadgen.stream.ownership``.

    Raises:
        ConfigError: bad worker_id/num_workers, or a mix naming unknown operations.
        SchemaMissingError: hospital tables missing, or pacientes/medicos/convenios empty.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        worker_id: int,
        num_workers: int,
        seed: int | np.random.SeedSequence,
        mix: dict[str, float],
        multirow_inserts: bool = True,
        owned_max_ids: Mapping[str, int] | None = None,
    ) -> None:
        if num_workers < 1 or not 0 <= worker_id < num_workers:
            raise ConfigError(f"worker_id {worker_id} must be in 0..{num_workers - 1}")
        unknown = sorted(set(mix) - set(OP_NAMES))
        if unknown:
            raise ConfigError(f"--mix: unknown operation(s) {', '.join(unknown)}")
        self.worker_id = worker_id
        self.num_workers = num_workers
        self.multirow_inserts = multirow_inserts
        self._weights = np.array([max(0.0, float(mix.get(n, 0.0))) for n in OP_NAMES])
        if not np.isfinite(self._weights).all() or self._weights.sum() <= 0:
            raise ConfigError("--mix: weights must be finite and not all zero")
        self._rng = np.random.default_rng(seed)
        self._rnd = random.Random(int(self._rng.integers(2**63)))
        self._gen = rowgen.RowGenerator(self._rng, self._parent_ids)
        self._runners = {name: getattr(self, f"_run_{name}") for name in OP_NAMES}
        self._cursor: psycopg.Cursor[Any] | None = None  # text-loading cursor (execute)
        self._rendered: dict[tuple[str, tuple[str, ...]], bytes] = {}  # insert statements
        self._owned_max_ids = owned_max_ids
        self._load(conn)

    # ----------------------------------------------------------------- loading
    def _load(self, conn: psycopg.Connection) -> None:
        from loadgen.db import require_schema

        w, n = self.worker_id, self.num_workers
        limits = self._owned_max_ids

        def upto(table: str) -> int:  # highest pre-existing id this run may claim
            return _NO_LIMIT if limits is None else int(limits.get(table, 0))

        with conn.transaction():
            require_schema(conn)
            parents = {}
            for table in ("pacientes", "medicos", "convenios"):
                ids = self._ids(
                    conn, sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier(table))
                )
                if not len(ids):
                    raise SchemaMissingError(
                        f"table {table} is empty; run `loadgen init` and `loadgen seed` first"
                    )
                parents[table] = ids
            owned_pacientes = self._ids(
                conn,
                "SELECT id FROM pacientes WHERE id %% %s = %s AND id <= %s",
                (n, w, upto("pacientes")),
            )
            links = conn.execute(
                "SELECT id, paciente_id, convenio_id FROM pacientes_convenios "
                "WHERE paciente_id %% %s = %s AND paciente_id <= %s",
                (n, w, upto("pacientes")),
            ).fetchall()
            agendadas = conn.execute(
                "SELECT data, id FROM consultas WHERE status = 'agendada' AND id %% %s = %s"
                " AND id <= %s",
                (n, w, upto("consultas")),
            ).fetchall()
            canceladas = self._ids(
                conn,
                "SELECT id FROM consultas WHERE status = 'cancelada' AND id %% %s = %s"
                " AND id <= %s",
                (n, w, upto("consultas")),
            )
            pendentes = conn.execute(
                "SELECT data, id FROM exames WHERE resultado IS NULL AND id %% %s = %s"
                " AND id <= %s",
                (n, w, upto("exames")),
            ).fetchall()
            types = conn.execute(
                "SELECT attrelid::regclass::text, attname, format_type(atttypid, NULL) "
                "FROM pg_attribute WHERE attrelid = ANY(%s::regclass[]) AND attnum > 0 "
                "AND NOT attisdropped",
                (list(tables.TABLE_NAMES),),
            ).fetchall()
            abertas = self._ids(
                conn,
                "SELECT id FROM internacoes WHERE data_saida IS NULL AND id %% %s = %s"
                " AND id <= %s",
                (n, w, upto("internacoes")),
            )
        self._parents = parents  # table -> int64 ids known to exist (committed)
        self._column_types: dict[str, dict[str, str]] = {}  # table -> column -> SQL type
        for table, column, type_name in types:
            self._column_types.setdefault(table, {})[column] = type_name
        self._committed_pacientes: list[int] = []  # committed, not yet in _parents
        self._new_pacientes: list[int] = []  # inserted in the open transaction
        self._pacientes = IdPool(owned_pacientes.tolist())  # update_paciente (sampled)
        self._links = LinkState(parents["convenios"].tolist())
        for pid in owned_pacientes.tolist():
            self._links.load_paciente(pid)
        for link_id, pid, cid in links:
            self._links.load_link(link_id, pid, cid)
        self._agendadas = DatedPool(agendadas)
        self._canceladas = IdPool(canceladas.tolist())
        self._pendentes = DatedPool(pendentes)
        self._abertas = IdPool(abertas.tolist())
        self._pools = (
            self._pacientes,
            self._links,
            self._agendadas,
            self._canceladas,
            self._pendentes,
            self._abertas,
        )
        self._refresh()
        logger.debug(
            "worker %d loaded %d owned pacientes, %d links, %d agendadas, %d pendentes, %d abertas",
            self.worker_id,
            len(self._pacientes),
            len(self._links.links),
            len(self._agendadas),
            len(self._pendentes),
            len(self._abertas),
        )

    @staticmethod
    def _ids(
        conn: psycopg.Connection, query: str | sql.Composed, params: tuple[int, ...] | None = None
    ) -> np.ndarray:
        cur = conn.execute(query, params)
        return np.fromiter((row[0] for row in cur), dtype=np.int64)

    def _refresh(self) -> None:
        now = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=DUE_MARGIN_S)
        self._agendadas.refresh(now)
        self._pendentes.refresh(now)

    # ----------------------------------------------------------------- choosing
    def counts(self) -> dict[str, int | None]:
        """Candidates left per operation; None = unlimited (inserts, repeatable updates)."""
        self._refresh()
        caps = self._capacities()
        return {
            name: None if math.isinf(c) else int(c) for name, c in zip(OP_NAMES, caps, strict=True)
        }

    def _capacities(self) -> np.ndarray:
        inf = math.inf
        cap = {
            "update_paciente": inf if len(self._pacientes) else 0,
            "update_consulta": len(self._agendadas),
            "update_exame": len(self._pendentes),
            "update_internacao": len(self._abertas),
            "insert_paciente_convenio": self._links.num_free,
            "delete_paciente_convenio": len(self._links.links),
            "delete_consulta": len(self._canceladas),
        }
        return np.array([cap.get(name, inf) for name in OP_NAMES], dtype=np.float64)

    def choose(self, n: int) -> list[str]:
        """Draw ``n`` operation names by weight, only among operations that can succeed now.

        Operations without candidate rows get weight 0 (the rest renormalised), and no
        operation is drawn more often than it has candidates. Returns fewer than ``n`` names
        (possibly none) only when every enabled operation has run out of candidates, which
        can happen only with a mix of updates/deletes alone.
        """
        self._refresh()
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
    def execute(self, conn: psycopg.Connection, op_names: Sequence[str]) -> Executed:
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
        ``choose``) changes nothing and counts as a no-op. Raises psycopg errors unchanged.
        """
        self._refresh()
        groups: dict[str, int] = {}
        for name in op_names:
            if name not in BY_NAME:
                raise ValueError(f"unknown operation {name!r}")
            groups[name] = groups.get(name, 0) + 1
        changes: list[RowChange] = []
        no_ops: dict[str, int] = {}
        cur = self._text_cursor(conn)
        with conn.pipeline():
            for name, k in groups.items():
                made = self._runners[name](cur, k)
                first_table = BY_NAME[name].tables[0]  # one row there per effective operation
                num_effective = sum(1 for c in made if c.table == first_table)
                if num_effective < k:
                    no_ops[name] = k - num_effective
                changes.extend(made)
        return Executed(changes, no_ops)

    def _text_cursor(self, conn: psycopg.Connection) -> psycopg.Cursor[Any]:
        """A cursor on ``conn`` loading every column as text (kept until the conn changes)."""
        cur = self._cursor
        if cur is None or cur.closed or cur.connection is not conn:
            cur = self._cursor = conn.cursor()
            for type_name in TEXT_TYPES:
                cur.adapters.register_loader(type_name, TextLoader)
        return cur

    def on_commit(self) -> None:
        """Confirm the tentative state of every ``execute`` since the last commit/rollback."""
        for pool in self._pools:
            pool.commit()
        self._committed_pacientes.extend(self._new_pacientes)
        self._new_pacientes.clear()

    def on_rollback(self) -> None:
        """Undo the tentative state: reserved rows become candidates again, inserts vanish."""
        for pool in self._pools:
            pool.rollback()
        self._new_pacientes.clear()

    def _parent_ids(self) -> dict[str, np.ndarray]:
        """Parent ids known to exist, for datagen (merged lazily: only when a block refills)."""
        if self._committed_pacientes:
            self._parents["pacientes"] = np.concatenate(
                (self._parents["pacientes"], np.array(self._committed_pacientes, np.int64))
            )
            self._committed_pacientes.clear()
        return self._parents

    # ----------------------------------------------------------------- helpers
    def _many(
        self,
        cur: psycopg.Cursor,
        table: str,
        op: str,
        op_name: str,
        query: str | sql.Composed,
        params: Sequence[Any],
    ) -> list[RowChange]:
        if not params:
            return []
        cur.executemany(query, params, returning=True)
        out: list[RowChange] = []
        names: list[str] | None = None  # one statement: every result has the same columns
        while True:
            if cur.pgresult is not None and cur.pgresult.nfields:
                if names is None:
                    names = [col.name for col in cur.description or ()]
                for row in cur.fetchall():
                    after = dict(zip(names, row, strict=True))
                    out.append(
                        RowChange(
                            table, op, int(after["id"]), None if op == "d" else after, op_name
                        )
                    )
            if not cur.nextset():
                return out

    def _insert(
        self,
        cur: psycopg.Cursor,
        table: str,
        op_name: str,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
    ) -> list[RowChange]:
        if not rows:
            return []
        if not self.multirow_inserts:
            return self._many(cur, table, "c", op_name, insert_sql(table, columns), rows)
        types = tuple(self._column_types[table][c] for c in columns)
        arrays = [list(column) for column in zip(*rows, strict=True)]
        query = self._rendered.get((table, columns))
        if query is None:  # render once: a Composed query is rendered on every execute
            query = self._rendered[table, columns] = insert_unnest_sql(
                table, columns, types
            ).as_bytes(cur)
        cur.execute(query, arrays)
        returned = cur.fetchall()  # in pipeline mode, description exists after the fetch
        names = [col.name for col in cur.description or ()]
        out: list[RowChange] = []
        for row in returned:
            after = dict(zip(names, row, strict=True))
            out.append(RowChange(table, "c", int(after["id"]), after, op_name))
        return out

    def _insert_pacientes(self, cur: psycopg.Cursor, k: int, op_name: str) -> list[RowChange]:
        rows = self._gen.take(cur, "pacientes", k)
        changes = self._insert(cur, "pacientes", op_name, tables.PACIENTES.columns, rows)
        for change in changes:
            self._new_pacientes.append(change.pk)
            self._pacientes.add(change.pk)
            self._links.add_paciente(change.pk)
        return changes

    # ----------------------------------------------------------------- operations
    def _run_insert_paciente(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        return self._insert_pacientes(cur, k, "insert_paciente")

    def _run_insert_consulta(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        rows = self._gen.take(cur, "consultas", k)
        changes = self._insert(
            cur, "consultas", "insert_consulta", rowgen.COLUMNS["consultas"], rows
        )
        for change, row in zip(changes, rows, strict=True):
            self._agendadas.add(row[2], change.pk)
        return changes

    def _run_insert_exame(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        rows = self._gen.take(cur, "exames", k)
        changes = self._insert(cur, "exames", "insert_exame", rowgen.COLUMNS["exames"], rows)
        for change, row in zip(changes, rows, strict=True):
            self._pendentes.add(row[2], change.pk)
        return changes

    def _run_insert_internacao(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        rows = self._gen.take(cur, "internacoes", k)
        changes = self._insert(
            cur, "internacoes", "insert_internacao", rowgen.COLUMNS["internacoes"], rows
        )
        for change in changes:
            self._abertas.add(change.pk)
        return changes

    def _run_update_paciente(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        if not len(self._pacientes):
            return []
        values = self._gen.take(cur, "update_paciente", k)
        params = [(*v, self._pacientes.sample(self._rnd)) for v in values]
        return self._many(cur, "pacientes", "u", "update_paciente", UPDATE_PACIENTE, params)

    @staticmethod
    def _take_due_first(pool: DatedPool, rnd: random.Random) -> int:
        return pool.due.take(rnd) if len(pool.due) else pool.take_soonest_future()[1]

    def _run_update_consulta(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        k = min(k, len(self._agendadas))
        outcomes = self._gen.take(cur, "update_consulta", k)
        params = [
            {"status": o[0], "id": self._take_due_first(self._agendadas, self._rnd)}
            for o in outcomes
        ]
        changes = self._many(cur, "consultas", "u", "update_consulta", UPDATE_CONSULTA, params)
        for change in changes:
            if change.after is not None and change.after["status"] == "cancelada":
                self._canceladas.add(change.pk)
        return changes

    def _run_update_exame(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        k = min(k, len(self._pendentes))
        results = self._gen.take(cur, "update_exame", k)
        params = [
            {"resultado": r[0], "id": self._take_due_first(self._pendentes, self._rnd)}
            for r in results
        ]
        return self._many(cur, "exames", "u", "update_exame", UPDATE_EXAME, params)

    def _run_update_internacao(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        params = [(self._abertas.take(self._rnd),) for _ in range(min(k, len(self._abertas)))]
        return self._many(cur, "internacoes", "u", "update_internacao", UPDATE_INTERNACAO, params)

    def _run_insert_paciente_convenio(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        pairs = [self._links.pick_new_pair(self._rnd) for _ in range(min(k, self._links.num_free))]
        extra = self._gen.take(cur, "pacientes_convenios", len(pairs))
        rows = [(*pair, *rest) for pair, rest in zip(pairs, extra, strict=True)]
        changes = self._insert(
            cur,
            "pacientes_convenios",
            "insert_paciente_convenio",
            rowgen.COLUMNS["pacientes_convenios"],
            rows,
        )
        for change in changes:
            self._links.link_inserted(change.pk, *_link_of(change))
        return changes

    def _run_delete_paciente_convenio(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        links = self._links.links
        params = [(links.take(self._rnd),) for _ in range(min(k, len(links)))]
        return self._many(
            cur, "pacientes_convenios", "d", "delete_paciente_convenio", DELETE_LINK, params
        )

    def _run_delete_consulta(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        params = [(self._canceladas.take(self._rnd),) for _ in range(min(k, len(self._canceladas)))]
        return self._many(cur, "consultas", "d", "delete_consulta", DELETE_CONSULTA, params)

    def _run_admit_paciente(self, cur: psycopg.Cursor, k: int) -> list[RowChange]:
        changes = self._insert_pacientes(cur, k, "admit_paciente")
        pids = [c.pk for c in changes]
        convenios = self._links.convenio_ids
        link_cids = [convenios[self._rnd.randrange(len(convenios))] for _ in pids]
        extra = self._gen.take(cur, "pacientes_convenios", len(pids))
        link_rows = [
            (pid, cid, *rest) for pid, cid, rest in zip(pids, link_cids, extra, strict=True)
        ]
        links = self._insert(
            cur,
            "pacientes_convenios",
            "admit_paciente",
            rowgen.COLUMNS["pacientes_convenios"],
            link_rows,
        )
        for change in links:
            self._links.link_inserted(change.pk, *_link_of(change))
        adm = self._gen.take(cur, "internacoes", len(pids))
        adm_rows = [(pid, *row[1:]) for pid, row in zip(pids, adm, strict=True)]
        admissions = self._insert(
            cur, "internacoes", "admit_paciente", rowgen.COLUMNS["internacoes"], adm_rows
        )
        for change in admissions:
            self._abertas.add(change.pk)
        return changes + links + admissions
