"""``loadgen seed`` and ``loadgen reset``: fill the tables with COPY, or recreate and fill."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from loadgen import db, limits, schema, tables
from loadgen import seed as seeder
from loadgen.cli.app import app, confirm_destruction, get_dsn, get_settings
from loadgen.config import Settings
from loadgen.seed_shards import shard_options
from loadgen.shards import Shard
from loadgen.stream.ownership import SEED_SHARD_CLASS, schema_key

PLAIN_PROGRESS_EVERY_S = 1.0  # at most one plain progress line per table per second


def _seed_settings(
    ctx: typer.Context,
    copy: bool | None,
    extra: dict[str, dict[str, Any]] | None = None,
    **flags: Any,
) -> Settings:
    """Settings with the seed flags the user gave (``--copy/--insert`` becomes ``method``);
    ``extra``: other sections' flags (``--shard``)."""
    flags["method"] = None if copy is None else ("copy" if copy else "insert")
    return get_settings(
        ctx, {"seed": {k: v for k, v in flags.items() if v is not None}, **(extra or {})}
    )


class _PlainProgress:
    """pgbench-style stderr lines: ``rows N of M (P%) of <table>, elapsed X s, remaining Y s``."""

    def __init__(self) -> None:
        self._last_s: dict[str, float] = {}

    def __call__(self, table: str, done: int, total: int, elapsed_s: float) -> None:
        now_s = time.monotonic()
        is_last = done >= total
        if done == 0 and total:
            return
        if not is_last and now_s - self._last_s.get(table, -1e9) < PLAIN_PROGRESS_EVERY_S:
            return
        self._last_s[table] = now_s
        pct = 100.0 * done / total if total else 100.0
        remaining_s = elapsed_s * (total - done) / done if done else 0.0
        print(
            f"rows {done} of {total} ({pct:.0f}%) of {table}, elapsed {elapsed_s:.1f} s, "
            f"remaining {remaining_s:.1f} s",
            file=sys.stderr,
            flush=True,
        )


class _RichProgress:
    """One bar per table on a terminal (stderr)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            TextColumn("{task.completed:>10,.0f} / {task.total:,.0f} rows"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, table: str, done: int, total: int, elapsed_s: float) -> None:
        if table not in self._tasks:
            self._tasks[table] = self.progress.add_task(table, total=max(total, 1))
        self.progress.update(self._tasks[table], completed=done if total else 1)


def _print_summary(result: seeder.SeedResult) -> None:
    table = Table("table", "rows", "seconds", "rows/s", box=None)
    for name, rows, seconds, rate in seeder.table_rows(result):
        style = "bold" if name == "total" else None
        table.add_row(name, f"{rows:,}", f"{seconds:.2f}", f"{rate:,.0f}", style=style)
    out = Console(highlight=False, soft_wrap=True)
    out.print(table)
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in result.phases_s.items())
    out.print(
        f"done in {result.seconds:.2f} s ({phases}); method {result.method}"
        f"{' into key-less tables, keys built after' if result.path == 'empty' else ''}, "
        f"{result.workers} worker(s), seed {result.seed} (pass --seed {result.seed} to "
        f"reproduce), reference {result.reference:%Y-%m-%d %H:%M} UTC"
    )


@contextlib.contextmanager
def _shard_turn(dsn: str, shard: Shard, retry_for_s: float) -> Iterator[None]:
    """Let seed shards started at once run side by side, but for the first one.

    A seed into empty tables drops and rebuilds the secondary indexes, which two seeds must not
    do at once; so a shard takes a session advisory lock (per schema) and keeps it for its
    whole seed when the tables are empty; when they already hold rows it lets go at once and
    appends alongside the others. The whole seed (0/1) takes no lock.
    """
    if shard.is_whole:
        yield
        return
    with db.connect(
        dsn, autocommit=True, application_name="loadgen-seed", retry_for_s=retry_for_s
    ) as conn:
        key = (SEED_SHARD_CLASS, schema_key(conn))
        conn.execute("SELECT pg_advisory_lock(%s, %s)", key)
        db.require_schema(conn)
        if any(n for t, n in schema.counts(conn).items() if not tables.BY_NAME[t].is_lookup):
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        yield  # the lock, if kept, goes with the connection


def _run_seed(
    ctx: typer.Context, settings: Settings, *, is_sharded: bool = True, **overrides: Any
) -> seeder.SeedResult:
    options = seeder.SeedOptions.from_config(
        settings.seed, connect_retry_s=settings.db.connect_retry_s, **overrides
    )
    seeder.validate(options)  # bad input: exit 2 before connecting
    shard = settings.shard.shard if is_sharded else Shard()
    options = shard_options(options, shard)
    dsn = get_dsn(ctx)
    db.wait_for_server(dsn, retry_for_s=options.connect_retry_s)  # no server: one line
    shard_text = "" if shard.is_whole else f", shard {shard} ({sum(options.counts.values())} rows)"
    print(
        f"seed: scale {options.scale:g}, {options.workers} worker(s), method {options.method}"
        f"{', append' if options.append else ''}{shard_text}, db {db.mask_dsn(dsn)}",
        file=sys.stderr,
        flush=True,
    )
    with _shard_turn(dsn, shard, options.connect_retry_s):
        if sys.stderr.isatty():
            rich_progress = _RichProgress(Console(stderr=True))
            with rich_progress.progress:
                result = seeder.seed(dsn, options, rich_progress)
        else:
            result = seeder.seed(dsn, options, _PlainProgress())
    _print_summary(result)
    return result


_COPY_HELP = "COPY FROM STDIN (default) or batched INSERT (executemany, for comparison)."
_SCALE_HELP = (
    "Multiply every table's rows (SEED_*) but the 12 convenios; "
    f"{limits.help_range('seed', 'scale')}, at most {limits.MAX_SEED_ROWS:,} rows of a table "
    "[default: 1]."
)
_WORKERS_HELP = (
    "Loader processes, each with its own connection and key ranges; "
    f"{limits.help_range('seed', 'workers')} ({limits.WORKERS_PER_CORE} per CPU core) "
    "[default: 2]."
)
_SEED_HELP = (
    "RNG seed: same seed and scale give identical rows whatever --workers is; "
    f"{limits.help_range('seed', 'seed')}."
)


# The options `seed` and `reset` share, declared once.
CopyOption = Annotated[
    bool | None, typer.Option("--copy/--insert", help=_COPY_HELP, show_default=False)
]
ScaleOption = Annotated[float | None, typer.Option("--scale", help=_SCALE_HELP, show_default=False)]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", "-w", help=_WORKERS_HELP, show_default=False)
]
SeedOption = Annotated[int | None, typer.Option("--seed", help=_SEED_HELP, show_default=False)]
_SHARD_HELP = (
    "Seed shard I of N (0-based, e.g. 1/3): its exact 1/N of every table's rows, appended "
    "(implies --append), with a seed derived from --seed; also JOB_COMPLETION_INDEX with "
    "LOADGEN_SHARDS [default: 0/1]."
)


@app.command("seed")
def seed_command(
    ctx: typer.Context,
    copy: CopyOption = None,
    scale: ScaleOption = None,
    workers: WorkersOption = None,
    seed: SeedOption = None,
    append: bool | None = typer.Option(
        None,
        "--append",
        help="Add rows to tables that already hold data (keys continue after the existing ones).",
        show_default=False,
    ),
    shard: str | None = typer.Option(None, "--shard", help=_SHARD_HELP, show_default=False),
) -> None:
    """Populate the 7 tables in foreign-key order (COPY by default), then index and ANALYZE.

    Refuses tables that already hold rows unless --append. Data is anchored to today 00:00 UTC.
    A seed that does not finish (Ctrl-C, SIGTERM, an error) removes the rows it committed, or
    says exactly how to.
    """
    settings = _seed_settings(
        ctx,
        copy,
        {"shard": {"spec": shard}},
        scale=scale,
        workers=workers,
        seed=seed,
        append=append,
    )
    _run_seed(ctx, settings)


@app.command("reset")
def reset_command(
    ctx: typer.Context,
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="Confirm: every loadgen table and its data is dropped (needed without a terminal).",
    ),
    copy: CopyOption = None,
    scale: ScaleOption = None,
    workers: WorkersOption = None,
    seed: SeedOption = None,
) -> None:
    """Drop every loadgen table, recreate the schema, and seed it (asks, or --yes)."""
    settings = _seed_settings(ctx, copy, scale=scale, workers=workers, seed=seed)
    seeder.validate(seeder.SeedOptions.from_config(settings.seed))
    confirm_destruction(ctx, "every loadgen table and its data", yes, command="reset")
    dsn = get_dsn(ctx)
    db.ensure_database(dsn, retry_for_s=settings.db.connect_retry_s)
    with db.connect(dsn, retry_for_s=settings.db.connect_retry_s) as conn:
        schema.init(conn, drop=True)
    print(
        f"schema recreated in database {db.database_name(dsn)!r} at {db.mask_dsn(dsn)}",
        file=sys.stderr,
        flush=True,
    )
    _run_seed(ctx, settings, is_sharded=False, append=False)  # a reset seeds the whole run
