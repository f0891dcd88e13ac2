"""Seeding: fill the hospital tables in foreign-key order with COPY (or batched INSERT).

Each table's new id range is cut into pieces on ``datagen``'s fixed chunk grid; a piece is
generated and loaded in one transaction by whichever worker takes it. Piece content depends
only on (seed, table, the run's id range), so ``--workers`` changes speed, never data.
Into empty tables, the 9 secondary indexes are dropped first and built after the load (as
``pgbench -i`` does); sequences are advanced past the loaded ids and everything is ANALYZEd.

Workers are ``spawn``-ed processes with their own connection; with one worker, or when every
table fits in one piece (scale <= ~8), the load runs in this process and spawns nothing.
"""

from __future__ import annotations

import logging
import multiprocessing
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from loadgen import (
    capacity,
    datagen,
    db,
    db_errors,
    limits,
    schema,
    seed_recovery,
    tables,
)
from loadgen.config import SeedConfig
from loadgen.errors import ConfigError, RunAbortedError, SeedError

logger = logging.getLogger(__name__)

METHODS = ("copy", "insert")
DEFAULT_BLOCK_ROWS = 10_000  # rows per COPY write / executemany batch
POOL_TIMEOUT_S = 3600.0  # upper bound on one piece (generation + load), seconds

Int64Array = npt.NDArray[np.int64]
# progress(table, rows_done, rows_total, elapsed_s); called in the coordinating process
ProgressFn = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class SeedOptions:
    """What to seed and how (``SeedConfig`` resolved into one object)."""

    scale: float = 1.0  # multiplies every non-lookup table's rows at scale 1
    workers: int = 2  # loader processes (1 = in this process)
    seed: int | None = None  # RNG seed; None draws one (reported in the result)
    method: str = "copy"  # "copy" (COPY FROM STDIN) or "insert" (batched executemany)
    block_rows: int = DEFAULT_BLOCK_ROWS  # rows per COPY write / executemany batch
    append: bool = False  # allow seeding tables that already hold rows
    counts: dict[str, int] = field(default_factory=dict)  # rows at scale 1 (SEED_*)
    reference: datetime | None = None  # data anchor; None = today 00:00 UTC
    connect_retry_s: float = db.DEFAULT_RETRY_FOR_S  # [db] connect_retry_s, every connection

    @classmethod
    def from_config(cls, cfg: SeedConfig, **overrides: Any) -> SeedOptions:
        """Build options from the ``[seed]`` settings section, then apply ``overrides``."""
        counts = {t.name: int(getattr(cfg, t.name)) for t in tables.TABLES if not t.is_lookup}
        opts = cls(
            scale=cfg.scale,
            workers=cfg.workers,
            seed=cfg.seed,
            method=cfg.method,
            block_rows=cfg.block_rows,
            append=cfg.append,
            counts=counts,
        )
        return _replace(opts, **overrides)

    def reset_command(self) -> str:
        """The ``loadgen reset --yes ...`` that recreates the tables and seeds like this."""
        flags = [f"--scale {self.scale:g}", f"--workers {self.workers}"]
        flags += [f"--seed {self.seed}"] if self.seed is not None else []
        flags += ["--insert"] if self.method == "insert" else []
        return " ".join(["loadgen reset --yes", *flags])

    def rows_for(self, table: str) -> int:
        """Rows this run adds to ``table`` (0 for lookup tables)."""
        spec = tables.BY_NAME[table]
        if spec.is_lookup:
            return 0
        return int(round(self.counts.get(table, spec.seed_rows) * self.scale))


def _replace(opts: SeedOptions, **changes: Any) -> SeedOptions:
    from dataclasses import replace

    return replace(opts, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class TableResult:
    table: str
    rows: int  # rows added
    seconds: float  # wall time of this table's load, seconds
    first_id: int  # first id loaded (0 when no rows)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SeedResult:
    tables: list[TableResult]
    seed: int  # the RNG seed used (pass it as --seed to reproduce)
    method: str
    workers: int  # loader processes actually used
    reference: datetime  # data anchor
    seconds: float  # total wall time, seconds
    phases_s: dict[str, float]  # prepare, load, index, analyze (seconds)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Plan:
    table: str
    first_id: int
    rows: int
    parents: datagen.ParentIds


def validate(options: SeedOptions) -> None:
    """Raise ConfigError naming the bad option, its value and its range (``loadgen.limits``).

    ``config.load`` checked each setting already; options built in code get the same checks,
    plus the one across settings: each table's rows (count at scale 1 x scale).
    """
    if options.method not in METHODS:
        raise ConfigError(f"seed method {options.method!r} is invalid; use copy or insert")
    for flag, key, value in (
        ("--scale", "scale", options.scale),
        ("--workers", "workers", options.workers),
        ("seed.block_rows", "block_rows", options.block_rows),
        ("--seed", "seed", options.seed),
    ):
        bounds = limits.range_of("seed", key)
        problem = bounds.problem(value) if bounds is not None and value is not None else None
        if problem:
            raise ConfigError(f"{flag} = {value!r} {problem}")
    for table in options.counts or {t.name: t.seed_rows for t in tables.TABLES}:
        rows = options.rows_for(table)
        if rows > limits.MAX_SEED_ROWS:
            raise ConfigError(
                f"--scale {options.scale:g} gives {rows:,} {table} rows; at most"
                f" {limits.MAX_SEED_ROWS:,} per table in one seed (run several seeds with"
                " --append, or lower --scale / SEED_*)"
            )


def _ids(conn: psycopg.Connection, table: str) -> Int64Array:
    rows = conn.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier(table)))
    return np.array([r[0] for r in rows.fetchall()], dtype=np.int64)


def _reserve_ids(conn: psycopg.Connection, table: str, num_rows: int) -> int:
    """Reserve ``num_rows`` consecutive ids of ``table`` from its sequence; return the first.

    The range starts after both max(id) and the sequence's position, and the sequence is moved
    past it while concurrent ``nextval`` calls wait (a stream inserting meanwhile never gets
    one of these ids): ``ALTER SEQUENCE`` (a no-op: the same increment) takes the lock
    ``nextval`` needs, for this short transaction. Needs the sequence's ownership.
    """
    seq = _sequence(conn, table)
    seq_id = sql.Identifier(*seq.split("."))
    with conn.transaction():
        row = conn.execute(
            "SELECT seqincrement FROM pg_sequence WHERE seqrelid = %s::regclass", (seq,)
        ).fetchone()
        conn.execute(
            sql.SQL("ALTER SEQUENCE {} INCREMENT BY {}").format(
                seq_id, sql.Literal(int(row[0]) if row else 1)
            )
        )
        row = conn.execute(
            sql.SQL(
                "SELECT greatest((SELECT coalesce(max(id), 0) FROM {t}),"
                " (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {s}))"
            ).format(t=sql.Identifier(table), s=seq_id)
        ).fetchone()
        first = int(row[0]) + 1 if row else 1
        if num_rows > 0:
            conn.execute("SELECT setval(%s::regclass, %s)", (seq, first + num_rows - 1))
    return first


def _sequence(conn: psycopg.Connection, table: str) -> str:
    row = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
    if not row or not row[0]:
        raise SeedError(f"table {table} has no id sequence; run `loadgen init --drop`")
    return str(row[0]).replace('"', "")


def _plan(conn: psycopg.Connection, options: SeedOptions) -> tuple[list[_Plan], bool]:
    """Decide id ranges and parents per table. Returns (plans, tables_were_empty)."""
    counts = schema.counts(conn)
    busy = [t for t, n in counts.items() if n and not tables.BY_NAME[t].is_lookup]
    if busy and not options.append:
        raise SeedError(
            f"tables already hold data ({', '.join(f'{t}={counts[t]}' for t in busy)}); "
            "use --append or `loadgen reset --yes`"
        )
    convenios = _ids(conn, "convenios")
    if convenios.size == 0:
        raise SeedError("table convenios is empty (lookup rows); run `loadgen init`")
    rows = {t: options.rows_for(t) for t in tables.TABLE_NAMES if not tables.BY_NAME[t].is_lookup}
    # ids reserved from the sequences: a stream running meanwhile cannot take them
    first = {t: _reserve_ids(conn, t, n) for t, n in rows.items()}

    def with_new(table: str) -> Int64Array:
        old = _ids(conn, table) if options.append else np.empty(0, dtype=np.int64)
        return np.concatenate((old, np.arange(first[table], first[table] + rows[table])))

    pacientes, medicos = with_new("pacientes"), with_new("medicos")
    new_pacientes = np.arange(first["pacientes"], first["pacientes"] + rows["pacientes"])
    max_links = len(new_pacientes) * len(convenios)
    if rows["pacientes_convenios"] > max_links:
        raise SeedError(
            f"{rows['pacientes_convenios']} pacientes_convenios need at least "
            f"{-(-rows['pacientes_convenios'] // len(convenios))} new pacientes "
            f"(links go to this run's pacientes, <= {len(convenios)} each); "
            "raise SEED_PACIENTES or lower SEED_PACIENTES_CONVENIOS"
        )
    for child in ("consultas", "exames", "internacoes"):
        if rows[child] and pacientes.size == 0:
            raise SeedError(f"cannot seed {child}: no pacientes; raise SEED_PACIENTES")
    if rows["consultas"] and medicos.size == 0:
        raise SeedError("cannot seed consultas: no medicos; raise SEED_MEDICOS")
    everyone = datagen.ParentIds(pacientes=pacientes, medicos=medicos, convenios=convenios)
    plans = []
    for spec in tables.TABLES:
        if spec.is_lookup:
            continue
        parents = everyone
        if spec.name == "pacientes_convenios":
            parents = datagen.ParentIds(
                pacientes=new_pacientes, convenios=convenios, link_base_id=first[spec.name]
            )
        plans.append(_Plan(spec.name, first[spec.name], rows[spec.name], parents))
    return plans, not busy


# --- loading one piece (any process) -------------------------------------------------------

_worker_conn: psycopg.Connection | None = None


def _open_loader(dsn: str, retry_for_s: float) -> psycopg.Connection:
    conn = db.connect(dsn, application_name="loadgen-seed", retry_for_s=retry_for_s)
    # Losing the last commits on a server crash is acceptable for a seed; waiting for each
    # piece's WAL flush is not (it serialises the workers on fsync).
    conn.execute("SET synchronous_commit = off")
    conn.commit()
    return conn


def _init_worker(dsn: str, retry_for_s: float) -> None:
    global _worker_conn
    _worker_conn = _open_loader(dsn, retry_for_s)
    datagen.build_vocab()


def load_piece(
    conn: psycopg.Connection,
    table: str,
    seed: int,
    lo: int,
    hi: int,
    parents: datagen.ParentIds,
    now: datetime,
    method: str,
    block_rows: int,
) -> int:
    """Generate ids ``[lo, hi)`` of ``table`` and load them in one transaction; return rows.

    Blocks until committed. ``method`` is ``copy`` (``copy.write`` of COPY text blocks) or
    ``insert`` (``executemany`` in batches of ``block_rows``).
    """
    batch = datagen.generate_piece(
        table, seed, lo, hi, parents=parents, now=now, lazy=(method == "copy")
    )
    columns = tables.BY_NAME[table].columns
    target = sql.SQL("{} ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.transaction(), conn.cursor() as cur:
        if method == "copy":
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(target)) as copy:
                for block in datagen.iter_copy_blocks(batch, columns, block_rows):
                    copy.write(block)
        else:
            stmt = sql.SQL("INSERT INTO {} VALUES ({})").format(
                target, sql.SQL(", ").join(sql.Placeholder() * len(columns))
            )
            values = [_python_values(batch[c]) for c in columns]
            rows = list(zip(*values, strict=True))
            for i in range(0, len(rows), block_rows):
                cur.executemany(stmt, rows[i : i + block_rows])
    return hi - lo


def _python_values(col: Any) -> list[Any]:
    return (col.to_objects() if isinstance(col, datagen.Text) else col).tolist()  # type: ignore[no-any-return]


def _worker_load(args: tuple[Any, ...]) -> tuple[str, int]:
    """Pool task (worker process): load one piece. A process boundary: every failure leaves
    as a picklable error naming the piece (DatabaseRefusedError when the server refused)."""
    table, _seed, lo, hi = args[:4]
    try:
        assert _worker_conn is not None, "worker not initialised"
        return table, load_piece(_worker_conn, *args)
    except psycopg.Error as exc:
        raise db_errors.refused(exc, f"loading {table} ids {lo}..{hi - 1}") from None
    except Exception as exc:  # noqa: BLE001 - process boundary
        raise RunAbortedError(
            f"loading {table} ids {lo}..{hi - 1} failed: {type(exc).__name__}: {exc}"
        ) from None


# --- coordination --------------------------------------------------------------------------


def _pieces(plan: _Plan) -> list[tuple[int, int]]:
    return list(datagen.iter_pieces(plan.first_id, plan.first_id + plan.rows))


def _run_table(
    plan: _Plan,
    options: SeedOptions,
    seed: int,
    reference: datetime,
    local: psycopg.Connection | None,
    pool: Any,
    progress: ProgressFn | None,
) -> TableResult:
    t0 = time.monotonic()
    done = 0
    if progress:
        progress(plan.table, 0, plan.rows, 0.0)
    tasks = [
        (plan.table, seed, lo, hi, plan.parents, reference, options.method, options.block_rows)
        for lo, hi in _pieces(plan)
    ]
    results: Iterator[int]
    if pool is None or len(tasks) <= 1:
        assert local is not None
        results = (load_piece(local, *task) for task in tasks)
    else:
        with seed_recovery.children_ignore_sigint():  # a submit may start a worker process
            futures = [pool.submit(_worker_load, task) for task in tasks]
        results = (f.result()[1] for f in as_completed(futures, timeout=POOL_TIMEOUT_S))
    try:
        for n in results:
            done += n
            if progress:
                progress(plan.table, done, plan.rows, time.monotonic() - t0)
    except psycopg.Error as exc:
        raise db_errors.refused(
            exc, f"loading {plan.table} failed after {done} of {plan.rows} rows"
        ) from None
    except (OSError, BrokenProcessPool, TimeoutError) as exc:
        raise RunAbortedError(
            f"loading {plan.table} failed after {done} of {plan.rows} rows: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return TableResult(
        plan.table, plan.rows, time.monotonic() - t0, plan.first_id if plan.rows else 0
    )


def _advance_sequences(conn: psycopg.Connection) -> None:
    for spec in tables.TABLES:
        conn.execute(
            sql.SQL(  # forward only: never hand out again an id a stream may hold
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), m) "
                "FROM (SELECT max(id) AS m FROM {}) x WHERE m IS NOT NULL AND m > "
                "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {})"
            ).format(
                sql.Identifier(spec.name), sql.Identifier(*_sequence(conn, spec.name).split("."))
            ),
            (spec.name,),
        )


def _load(
    dsn: str,
    plans: list[_Plan],
    options: SeedOptions,
    run_seed: int,
    reference: datetime,
    num_procs: int,
    progress: ProgressFn | None,
    results: list[TableResult],
) -> int:
    """Load every plan (appending to ``results``); return the loader processes used."""
    retry_for_s = options.connect_retry_s
    local = _open_loader(dsn, retry_for_s) if num_procs <= 1 else None
    try:
        if local is not None:
            datagen.build_vocab()
            for plan in plans:
                results.append(
                    _run_table(plan, options, run_seed, reference, local, None, progress)
                )
            return 1
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            num_procs,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(dsn, retry_for_s),
        ) as pool:
            try:
                with seed_recovery.children_ignore_sigint():
                    pool.submit(int)  # start the workers now: spawn + connect overlap our work
                local = _open_loader(dsn, retry_for_s)
                for plan in plans:
                    results.append(
                        _run_table(plan, options, run_seed, reference, local, pool, progress)
                    )
            except BaseException:
                seed_recovery.stop_pool(pool)
                raise
        return num_procs
    finally:
        if local is not None:
            local.close()


def seed(dsn: str, options: SeedOptions, progress: ProgressFn | None = None) -> SeedResult:
    """Seed every table in foreign-key order; block until done.

    Args:
        dsn: where (its ``search_path`` option, if any, selects the schema).
        options: what and how; see ``SeedOptions``.
        progress: called in this process after each loaded piece, per table.

    Returns:
        per-table rows, seconds and rows/s, the seed used and phase timings.

    Raises:
        ConfigError: invalid options.
        SchemaMissingError: tables missing (run ``loadgen init``).
        SeedError: tables already hold data without ``append``, or impossible counts.
        RunAbortedError: a load failed midway or SIGINT/SIGTERM (``Interrupted``) stopped it:
            this run's rows are removed again, or the message says how to remove them.
        DatabaseRefusedError: the server refused (a privilege, a timeout...), rows undone.
        DatabaseUnavailableError: the server cannot be reached.
    """
    validate(options)
    t_start = time.monotonic()
    run_seed = options.seed if options.seed is not None else secrets.randbits(31)
    reference = options.reference or datagen.reference_day()
    phases: dict[str, float] = {}
    results: list[TableResult] = []
    retry_for_s = options.connect_retry_s
    with db.connect(
        dsn, autocommit=True, application_name="loadgen-seed", retry_for_s=retry_for_s
    ) as conn:
        db.require_schema(conn)
        plans, was_empty = _plan(conn, options)
        biggest = max((len(_pieces(p)) for p in plans), default=0)
        num_procs = min(options.workers, biggest)
        # sessions: this one, this process's loader, one per worker process
        needed = 2 + (num_procs if num_procs > 1 else 0)
        capacity.check(capacity.capacity(conn), needed, f"--workers {options.workers}")
        if was_empty:
            schema.drop_secondary_indexes(conn)
        phases["prepare"] = time.monotonic() - t_start
        t_load = time.monotonic()
        try:
            num_procs = _load(
                dsn, plans, options, run_seed, reference, num_procs, progress, results
            )
            phases["load"] = time.monotonic() - t_load
            t_index = time.monotonic()
            _advance_sequences(conn)
            if was_empty:
                schema.create_indexes(conn)
            phases["index"] = time.monotonic() - t_index
        except (Exception, KeyboardInterrupt) as exc:  # nothing half-done stays without a word
            ranges = [seed_recovery.IdRange(p.table, p.first_id, p.rows) for p in plans]

            def keep_usable() -> None:  # rows stay: never without sequences and indexes
                _advance_sequences(conn)
                if was_empty:
                    schema.create_indexes(conn)

            raise seed_recovery.unfinished(
                conn,
                ranges,
                exc,
                tables_were_empty=was_empty,
                reseed=options.reset_command(),
                keep_usable=keep_usable,
            ) from None
        t_analyze = time.monotonic()
        try:
            for spec in tables.TABLES:
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(spec.name)))
        except KeyboardInterrupt as exc:
            raise seed_recovery.interrupted_in_analyze(exc) from None
        phases["analyze"] = time.monotonic() - t_analyze
    return SeedResult(
        tables=results,
        seed=run_seed,
        method=options.method,
        workers=num_procs,
        reference=reference,
        seconds=time.monotonic() - t_start,
        phases_s=phases,
    )


def table_rows(result: SeedResult) -> Sequence[tuple[str, int, float, float]]:
    """``(table, rows, seconds, rows/s)`` per table then ``total``, for summaries."""
    out = [(t.table, t.rows, t.seconds, t.rows_per_s) for t in result.tables]
    out.append(("total", result.rows, result.seconds, result.rows_per_s))
    return out
