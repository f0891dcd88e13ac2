"""Seeding: fill the hospital tables with COPY (or batched INSERT); the orchestrator.

Two paths, chosen per run:

- **empty tables** (the ``init`` -> ``seed`` path, ``--copy``): loaded as pg_restore loads a
  dump (``loadgen.seed_fast``): keys, foreign keys and secondary indexes dropped, one
  ``TRUNCATE`` + ``COPY ... FREEZE`` transaction per table on ``--workers`` connections at
  once, then primary keys, UNIQUEs, indexes and validated foreign keys built on the same
  connections in parallel (``loadgen.seed_build``): the catalog ends as ``init`` makes it;
- **tables with rows** (``--append``), and ``--insert``: piece by piece in foreign-key order,
  keys in place (``loadgen.seed_append``); into empty tables only the secondary indexes are
  dropped and rebuilt.

Either way each table's ids are reserved from its sequence first (``loadgen.seed_plan``),
row content depends only on (seed, table, the run's id range), sequences are advanced past the
loaded ids and every table is ANALYZEd. A run that does not finish removes its rows and leaves
the full schema, or says how to get back (``loadgen.seed_recovery``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from multiprocessing.connection import Connection

import psycopg
from psycopg import sql

from loadgen import (
    capacity,
    datagen,
    db,
    schema,
    seed_append,
    seed_fast,
    seed_plan,
    seed_producers,
    seed_recovery,
    tables,
)
from loadgen.seed_append import load_piece
from loadgen.seed_options import (
    DEFAULT_BLOCK_ROWS,
    METHODS,
    ProgressFn,
    SeedOptions,
    SeedResult,
    TableResult,
    validate,
)

__all__ = [
    "DEFAULT_BLOCK_ROWS",
    "METHODS",
    "ProgressFn",
    "SeedOptions",
    "SeedResult",
    "TableResult",
    "load_piece",
    "seed",
    "table_rows",
    "validate",
]


def _loaders(stack: ExitStack, dsn: str, n: int, retry_for_s: float) -> list[psycopg.Connection]:
    conns = [
        stack.enter_context(seed_append.open_loader(dsn, retry_for_s)) for _ in range(max(1, n))
    ]
    for conn in conns:
        conn.autocommit = True  # each load is one explicit transaction; builds autocommit
    return conns


def seed(dsn: str, options: SeedOptions, progress: ProgressFn | None = None) -> SeedResult:
    """Seed every table; block until done.

    Args:
        dsn: where (its ``search_path`` option, if any, selects the schema).
        options: what and how; see ``SeedOptions``.
        progress: called in this thread as rows commit (empty path: as they are sent), per table.

    Returns:
        per-table rows, seconds and rows/s, the seed used, the path taken and phase timings.

    Raises:
        ConfigError: invalid options.
        SchemaMissingError: tables missing (run ``loadgen init``).
        SeedError: tables already hold data without ``append``, or impossible counts.
        RunAbortedError: a load failed midway or SIGINT/SIGTERM (``Interrupted``) stopped it:
            this run's rows are removed again (keys restored), or the message says how.
        DatabaseRefusedError: the server refused (a privilege, a timeout...), rows undone.
        DatabaseUnavailableError: the server cannot be reached.
    """
    validate(options)
    t_start = time.monotonic()
    run_seed = options.seed if options.seed is not None else secrets.randbits(31)
    reference = options.reference or datagen.reference_day()
    with ExitStack() as stack:
        producers = _producers(stack, options)  # start-up overlaps connecting and planning
        return _seed(stack, dsn, options, progress, producers, t_start, run_seed, reference)


def _producers(stack: ExitStack, options: SeedOptions) -> list[Connection]:
    """Producer processes for a big run that will take the empty-table path (else none)."""
    loaded = [t.name for t in tables.TABLES if options.rows_for(t.name)]
    rows = sum(options.rows_for(t) for t in loaded)
    if options.append or options.method != "copy" or rows < seed_producers.PROCESS_MIN_ROWS:
        return []
    return stack.enter_context(seed_producers.started(min(options.workers, len(loaded))))


def _seed(
    stack: ExitStack,
    dsn: str,
    options: SeedOptions,
    progress: ProgressFn | None,
    producers: list[Connection],
    t_start: float,
    run_seed: int,
    reference: datetime,
) -> SeedResult:
    phases: dict[str, float] = {}
    results: list[TableResult] = []
    retry_for_s = options.connect_retry_s
    generate_cpu_s = starved_s = 0.0
    with (
        db.connect(
            dsn, autocommit=True, application_name="loadgen-seed", retry_for_s=retry_for_s
        ) as conn,
    ):
        db.require_schema(conn)
        plans, was_empty = seed_plan.plan(conn, options)
        fast = was_empty and options.method == "copy"
        if fast:
            num_procs = max(1, min(options.workers, sum(1 for p in plans if p.rows)))
            needed = 1 + num_procs  # this session and one per loader connection
        else:
            biggest = max((len(p.pieces()) for p in plans), default=0)
            num_procs = min(options.workers, biggest)
            needed = 2 + (num_procs if num_procs > 1 else 0)
        capacity.check(capacity.capacity(conn), needed, f"--workers {options.workers}")
        loaders: list[psycopg.Connection] = []
        try:
            if fast:
                loaders = _loaders(stack, dsn, num_procs, retry_for_s)
                seed_fast.prepare(conn, [p.table for p in plans])
            elif was_empty:
                schema.drop_secondary_indexes(conn)
            phases["prepare"] = time.monotonic() - t_start
            t_load = time.monotonic()
            if fast:
                datagen.build_vocab()
                loaded, (generate_cpu_s, starved_s), ends = seed_fast.run(
                    loaders, plans, options, run_seed, reference, progress, producers
                )
                results.extend(loaded)
                seed_plan.advance_sequences(conn)
                # the phases overlap (a table's build starts once it is loaded): each is the
                # time from the previous phase's last job to its own last one
                t_loaded = ends.get("load", t_load)
                t_built = max(t_loaded, ends.get("index", 0.0), ends.get("keys", 0.0))
                phases["load"] = t_loaded - t_load
                phases["index"] = t_built - t_loaded
                phases["analyze"] = max(0.0, ends.get("analyze", 0.0) - t_built)
            else:
                num_procs = seed_append.load(
                    dsn, plans, options, run_seed, reference, num_procs, progress, results
                )
                phases["load"] = time.monotonic() - t_load
                t_index = time.monotonic()
                seed_plan.advance_sequences(conn)
                if was_empty:
                    schema.create_indexes(conn)
                phases["index"] = time.monotonic() - t_index
        except (Exception, KeyboardInterrupt) as exc:  # nothing half-done stays without a word
            ranges = [seed_recovery.IdRange(p.table, p.first_id, p.rows) for p in plans]

            def keep_usable() -> None:  # rows stay: never without sequences, keys and indexes
                seed_plan.advance_sequences(conn)
                if was_empty:
                    schema.restore(conn)

            raise seed_recovery.unfinished(
                conn,
                ranges,
                exc,
                tables_were_empty=was_empty,
                reseed=options.reset_command(),
                keep_usable=keep_usable,
            ) from None
        if not fast:  # (the fast path ANALYZEd each table once it was indexed)
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
        path="empty" if fast else "append",
        generate_cpu_s=generate_cpu_s,
        starved_s=starved_s,
    )


def table_rows(result: SeedResult) -> Sequence[tuple[str, int, float, float]]:
    """``(table, rows, seconds, rows/s)`` per table then ``total``, for summaries."""
    out = [(t.table, t.rows, t.seconds, t.rows_per_s) for t in result.tables]
    out.append(("total", result.rows, result.seconds, result.rows_per_s))
    return out
