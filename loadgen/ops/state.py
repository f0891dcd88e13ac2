"""One worker's candidates: the rows it may update or delete, and the parents it may reference.

Loaded once from the server when the worker starts (``Candidates.load``), then kept in memory
across reconnects. Ownership: rows present at load with ``id % num_workers == worker_id``
(pacientes_convenios: by ``paciente_id``) among those the run may claim (``owned_max_ids``),
plus the rows the worker inserts itself. Changes made while a transaction is open are
tentative (``commit`` confirms, ``rollback`` undoes; see ``loadgen.ops.pools``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from loadgen import tables
from loadgen.errors import SchemaMissingError
from loadgen.ops.pools import DatedPool, IdPool, LinkState

logger = logging.getLogger(__name__)

_NO_LIMIT = 2**62  # owned_max_ids=None: every pre-existing row may be claimed
DUE_MARGIN_S = 2.0  # a row counts as due this long after its date (clock skew to the server)
PARENT_TABLES = ("pacientes", "medicos", "convenios")


@dataclass
class Candidates:
    """The pools the operations draw from and feed (one worker, one thread)."""

    parents: dict[str, np.ndarray]  # table -> int64 ids known to exist (committed)
    column_types: dict[str, dict[str, str]]  # table -> column -> SQL type (multi-row inserts)
    pacientes: IdPool  # owned pacientes (update_paciente samples; never deleted)
    links: LinkState  # owned pacientes' convenio links
    agendadas: DatedPool  # consultas to close, by their date
    canceladas: IdPool  # cancelled consultas (deletable)
    pendentes: DatedPool  # exames without a result, by their date
    abertas: IdPool  # open internações (dischargeable)
    new_pacientes: list[int] = field(default_factory=list)  # inserted in the open transaction
    _committed_pacientes: list[int] = field(default_factory=list)  # not yet in ``parents``

    @classmethod
    def load(
        cls,
        conn: psycopg.Connection[Any],
        *,
        worker_id: int,
        num_workers: int,
        owned_max_ids: Mapping[str, int] | None,
    ) -> Candidates:
        """Read one worker's candidates in one transaction on ``conn``.

        ``owned_max_ids``: per table, the highest pre-existing id this run may claim (0 or a
        table left out = none); None = every row present.

        Raises:
            SchemaMissingError: hospital tables missing, or pacientes/medicos/convenios empty.
        """
        from loadgen.db import require_schema

        w, n = worker_id, num_workers

        def upto(table: str) -> int:
            return _NO_LIMIT if owned_max_ids is None else int(owned_max_ids.get(table, 0))

        with conn.transaction():
            require_schema(conn)
            parents = {}
            for table in PARENT_TABLES:
                ids = _ids(
                    conn, sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier(table))
                )
                if not len(ids):
                    raise SchemaMissingError(
                        f"table {table} is empty; run `loadgen init` and `loadgen seed` first"
                    )
                parents[table] = ids
            owned_pacientes = _ids(
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
            canceladas = _ids(
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
            abertas = _ids(
                conn,
                "SELECT id FROM internacoes WHERE data_saida IS NULL AND id %% %s = %s"
                " AND id <= %s",
                (n, w, upto("internacoes")),
            )
        column_types: dict[str, dict[str, str]] = {}
        for table, column, type_name in types:
            column_types.setdefault(table, {})[column] = type_name
        link_state = LinkState(parents["convenios"].tolist())
        for pid in owned_pacientes.tolist():
            link_state.load_paciente(pid)
        for link_id, pid, cid in links:
            link_state.load_link(link_id, pid, cid)
        state = cls(
            parents=parents,
            column_types=column_types,
            pacientes=IdPool(owned_pacientes.tolist()),
            links=link_state,
            agendadas=DatedPool(agendadas),
            canceladas=IdPool(canceladas.tolist()),
            pendentes=DatedPool(pendentes),
            abertas=IdPool(abertas.tolist()),
        )
        state.refresh()
        logger.debug(
            "worker %d loaded %d owned pacientes, %d links, %d agendadas, %d pendentes, %d abertas",
            worker_id,
            len(state.pacientes),
            len(state.links.links),
            len(state.agendadas),
            len(state.pendentes),
            len(state.abertas),
        )
        return state

    @property
    def _pools(self) -> tuple[IdPool | DatedPool | LinkState, ...]:
        return (
            self.pacientes,
            self.links,
            self.agendadas,
            self.canceladas,
            self.pendentes,
            self.abertas,
        )

    def refresh(self) -> None:
        """Move dated rows whose time has come (less ``DUE_MARGIN_S``) into their ``due`` pool."""
        now = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=DUE_MARGIN_S)
        self.agendadas.refresh(now)
        self.pendentes.refresh(now)

    def commit(self) -> None:
        """Confirm every tentative change since the last commit/rollback."""
        for pool in self._pools:
            pool.commit()
        self._committed_pacientes.extend(self.new_pacientes)
        self.new_pacientes.clear()

    def rollback(self) -> None:
        """Undo the tentative changes: reserved rows become candidates again, inserts vanish."""
        for pool in self._pools:
            pool.rollback()
        self.new_pacientes.clear()

    def parent_ids(self) -> dict[str, np.ndarray]:
        """Parent ids known to exist, for datagen (merged lazily: only when a block refills)."""
        if self._committed_pacientes:
            self.parents["pacientes"] = np.concatenate(
                (self.parents["pacientes"], np.array(self._committed_pacientes, np.int64))
            )
            self._committed_pacientes.clear()
        return self.parents


def _ids(
    conn: psycopg.Connection[Any],
    query: str | sql.Composed,
    params: tuple[int, ...] | None = None,
) -> np.ndarray:
    cur = conn.execute(query, params)
    return np.fromiter((row[0] for row in cur), dtype=np.int64)
