"""Create the scenario tables and run scenarios: from the CLI, or one step inside a stream."""

from __future__ import annotations

import logging
import secrets
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from loadgen import db, schema
from loadgen.errors import ConfigError, RunAbortedError, SchemaMissingError
from loadgen.ledger import LedgerWriteError, LedgerWriter
from loadgen.ledger.run_end import record_run_end
from loadgen.scenarios.base import Context, Scenario, ScenarioOptions
from loadgen.scenarios.recorder import CommittedTxn, Recorder, TxnLog
from loadgen.scenarios.registry import SCENARIOS
from loadgen.scenarios.volume import small_workers_alive

logger = logging.getLogger(__name__)

SQL_FILE = "10_scenarios.sql"
# Ledger writer ids of `loadgen scenario run` (and its extra connections): far above stream
# worker ids, so a scenario run can share a ledger directory with a stream.
SCENARIO_WRITER_ID = 90_000
_LOCK_CLASS = 0x4C47  # advisory lock namespace ("LG"); second key: crc32 of the name
# Sizes for one step inside a stream: small enough to mix in at a low weight.
STREAM_STEP_OPTIONS = ScenarioOptions(
    big_txn_changes=1_000, num_concurrent_workers=0, small_txns_per_worker=0, toast_bytes=4_000
)


@dataclass
class ScenarioResult:
    """What one run of one scenario committed."""

    name: str
    num_txns: int
    num_changes: int
    elapsed_s: float
    txns: list[CommittedTxn] = field(default_factory=list)  # only with keep=True


def get(name: str) -> Scenario:
    """The scenario called ``name``. Raises ConfigError listing the known names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ConfigError(
            f"scenario {name!r}: unknown; choose from {', '.join(SCENARIOS)}"
        ) from None


def table_names(names: Sequence[str] | None = None) -> list[str]:
    """The cdc_ tables the named scenarios (default: all) write, for a publication."""
    out: list[str] = []
    for name in names or list(SCENARIOS):
        out += [t for t in get(name).tables if t not in out]
    return out


def scenarios_of_table(table: str) -> list[str]:
    """Names of the scenarios that write ``table`` (a verifier names them in its report)."""
    return [s.name for s in SCENARIOS.values() if table in s.tables]


def _idle(conn: psycopg.Connection) -> None:
    """End the implicit transaction a statement opened on a non-autocommit connection."""
    if not conn.autocommit:
        conn.commit()


def ensure_tables(conn: psycopg.Connection) -> None:
    """Create the cdc_ tables (``sql/10_scenarios.sql``) if missing; idempotent, blocks.

    Serialised across processes by a transaction-level advisory lock, so stream workers may
    all call it at start.
    """
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_LOCK_CLASS,))
            conn.execute(schema.read_sql(SQL_FILE))
    except psycopg.Error as exc:
        raise SchemaMissingError(
            f"cannot create the scenario tables ({SQL_FILE}) in database {conn.info.dbname!r}: "
            f"{str(exc).strip().splitlines()[0]}"
        ) from exc
    _idle(conn)


def drop_tables(conn: psycopg.Connection) -> list[str]:
    """Drop every cdc_ scenario table (and the sequence partitioned uses); return those dropped.

    Tables named in a publication leave it with them. Blocks; serialised like ``ensure_tables``.
    """
    names = table_names()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_LOCK_CLASS,))
        present = [
            str(r[0])
            for r in conn.execute(
                "SELECT t FROM unnest(%s::text[]) AS t"
                " WHERE to_regclass(quote_ident(t)) IS NOT NULL",
                (names,),
            ).fetchall()
        ]
        if present:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                    sql.SQL(", ").join(map(sql.Identifier, present))
                )
            )
        conn.execute("DROP SEQUENCE IF EXISTS cdc_agenda_id_seq")
    _idle(conn)
    return present


@contextmanager
def _exclusive(conn: psycopg.Connection, scenario: Scenario) -> Iterator[None]:
    if not scenario.is_exclusive:
        yield
        return
    key = zlib.crc32(scenario.name.encode()) & 0x7FFFFFFF
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_CLASS, key))
    _idle(conn)
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_CLASS, key))
            _idle(conn)


def run_on(
    conn: psycopg.Connection,
    name: str,
    *,
    ledger: TxnLog | None = None,
    options: ScenarioOptions | None = None,
    dsn: str | None = None,
    ledger_path: str | None = None,
    writer_id: int = SCENARIO_WRITER_ID,
    keep: bool = False,
    run_id: str = "",
) -> ScenarioResult:
    """Run scenario ``name`` once on ``conn`` (tables must exist: ``ensure_tables``).

    Each committed transaction goes to ``ledger`` right after its COMMIT. ``conn`` must be
    idle (no transaction open); it may be autocommit or not. Blocks until done.

    Raises:
        ConfigError: unknown scenario.
        psycopg.Error: the server refused a statement (the open transaction is rolled back
            and nothing of it is recorded).
    """
    scenario = get(name)
    rec = Recorder(
        conn, scenario.name, ledger=ledger, keep=keep, track_before=scenario.track_before
    )
    ctx = Context(
        rec,
        options or ScenarioOptions(),
        dsn=dsn,
        ledger_path=ledger_path,
        writer_id=writer_id,
        run_id=run_id,
    )
    t0_ns = time.monotonic_ns()
    with _exclusive(conn, scenario):
        scenario.run(ctx)
    recorders = [rec, *ctx.extra]
    txns = sorted((x for r in recorders for x in r.txns), key=lambda x: x.txid)
    return ScenarioResult(
        scenario.name,
        sum(r.num_txns for r in recorders),
        sum(r.num_changes for r in recorders),
        (time.monotonic_ns() - t0_ns) / 1e9,
        txns,
    )


def run_step(
    conn: psycopg.Connection,
    name: str,
    *,
    ledger: TxnLog | None,
    options: ScenarioOptions = STREAM_STEP_OPTIONS,
) -> ScenarioResult:
    """Run one scenario once inside a stream worker, on the worker's connection and ledger.

    The engine's hook for ``loadgen stream --profile cdc-edge``: call ``ensure_tables(conn)``
    once when the worker starts, then ``run_step(conn, name, ledger=worker_ledger)`` when a
    scenario's turn comes. Uses small sizes and no extra connections; exclusive scenarios
    (DDL, TRUNCATE) wait for each other across workers through an advisory lock. Changes go
    to the worker's own ledger writer with op_name ``scenario:<name>``. Blocks.
    """
    return run_on(conn, name, ledger=ledger, options=options)


def run(
    dsn: str,
    names: Sequence[str],
    *,
    ledger_path: str | None = None,
    repeat: int = 1,
    options: ScenarioOptions | None = None,
    keep: bool = False,
) -> list[ScenarioResult]:
    """Run each named scenario ``repeat`` times, in order (``loadgen scenario run``).

    Creates the tables first. With ``ledger_path``, every committed change is recorded
    there (writer ``SCENARIO_WRITER_ID``, and the ids after it for extra connections).

    Raises:
        ConfigError: unknown scenario name or ``repeat`` < 1.
        DatabaseUnavailableError: the server cannot be reached.
        SchemaMissingError: the tables cannot be created.
        RunAbortedError: the server refused a scenario's statement.
    """
    scenarios = [get(n) for n in names]
    if repeat < 1:
        raise ConfigError(f"--repeat {repeat}: must be at least 1")
    results: list[ScenarioResult] = []
    run_id = secrets.token_hex(4)  # part names unique per run: runs may share a directory
    ledger = LedgerWriter(ledger_path, SCENARIO_WRITER_ID, run_id=run_id) if ledger_path else None
    try:
        with db.connect(
            dsn,
            autocommit=True,
            application_name="loadgen-scenario",
            retry_for_s=(options or ScenarioOptions()).connect_retry_s,
        ) as conn:
            ensure_tables(conn)
            for _ in range(repeat):
                for s in scenarios:
                    logger.info("scenario %s: running", s.name)
                    try:
                        results.append(
                            run_on(
                                conn,
                                s.name,
                                ledger=ledger,
                                options=options,
                                dsn=dsn,
                                ledger_path=ledger_path,
                                keep=keep,
                                run_id=run_id,
                            )
                        )
                    except psycopg.Error as exc:
                        raise RunAbortedError(
                            f"scenario {s.name}: {str(exc).strip().splitlines()[0]}; its open"
                            " transaction rolled back, committed ones are recorded"
                        ) from exc
                    except LedgerWriteError as exc:
                        raise RunAbortedError(
                            f"scenario {s.name}: {exc}; that transaction was rolled back,"
                            " every committed one is recorded"
                        ) from None
            # every scenario done and its extra connections' threads gone: the run's end
            if ledger_path and not small_workers_alive():
                record_run_end(conn, ledger_path, run_id)
    finally:
        if ledger is not None:
            ledger.close()
    return results
