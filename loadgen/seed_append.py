"""The piece-by-piece load: today's path for ``--append``, ``--insert`` and tables with rows.

Each table's new id range is cut into pieces on ``datagen``'s fixed chunk grid; a piece is
generated and loaded in one transaction by whichever loader takes it, in foreign-key order
(parents committed before children: the keys stay in place and check every row). Loaders are
``spawn``-ed processes with their own connection; with one worker, or when every table fits
in one piece, the load runs in this process and spawns nothing.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from loadgen import datagen, db, db_errors, seed_recovery, tables
from loadgen.errors import RunAbortedError
from loadgen.seed_options import ProgressFn, SeedOptions, TableResult
from loadgen.seed_plan import Plan

POOL_TIMEOUT_S = 3600.0  # upper bound on one piece (generation + load), seconds


def open_loader(dsn: str, retry_for_s: float) -> psycopg.Connection:
    """A loader's connection (not autocommit), ``synchronous_commit = off``."""
    conn = db.connect(dsn, application_name="loadgen-seed", retry_for_s=retry_for_s)
    # Losing the last commits on a server crash is acceptable for a seed; waiting for each
    # piece's WAL flush is not (it serialises the workers on fsync).
    conn.execute("SET synchronous_commit = off")
    conn.commit()
    return conn


_worker_conn: psycopg.Connection | None = None


def _init_worker(dsn: str, retry_for_s: float) -> None:
    global _worker_conn
    _worker_conn = open_loader(dsn, retry_for_s)
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


def run_table(
    plan: Plan,
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
        for lo, hi in plan.pieces()
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


def load(
    dsn: str,
    plans: list[Plan],
    options: SeedOptions,
    run_seed: int,
    reference: datetime,
    num_procs: int,
    progress: ProgressFn | None,
    results: list[TableResult],
) -> int:
    """Load every plan (appending to ``results``); return the loader processes used."""
    retry_for_s = options.connect_retry_s
    local = open_loader(dsn, retry_for_s) if num_procs <= 1 else None
    try:
        if local is not None:
            datagen.build_vocab()
            for plan in plans:
                results.append(run_table(plan, options, run_seed, reference, local, None, progress))
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
                local = open_loader(dsn, retry_for_s)
                for plan in plans:
                    results.append(
                        run_table(plan, options, run_seed, reference, local, pool, progress)
                    )
            except BaseException:
                seed_recovery.stop_pool(pool)
                raise
        return num_procs
    finally:
        if local is not None:
            local.close()
