"""Commands: init, counts, check, config show, and the embedded server (db ...)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import orjson
import typer

from loadgen import config, db, embedded, schema
from loadgen.cli.app import app, confirm_destruction, dsn_source, get_dsn, get_settings
from loadgen.errors import CheckFailedError, ConfigError

if TYPE_CHECKING:
    from rich.console import Console

JSON_HELP = "Print JSON instead of a table."


def _out() -> Console:
    from rich.console import Console  # here: --json and --help need no rich

    return Console(highlight=False, soft_wrap=True)


@app.command()
def init(
    ctx: typer.Context,
    drop: bool = typer.Option(
        False, "--drop", help="Drop every loadgen table first (data lost; asks, or --yes)."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="With --drop: do not ask (needed without a terminal)."
    ),
) -> None:
    """Create the database if needed, then the schema, 9 indexes, triggers and lookup rows.

    Idempotent: running it again changes nothing. Tables that exist are checked for every
    column the workload needs (exit 3 naming what is missing). --drop recreates from scratch.
    """
    settings = get_settings(ctx)
    if yes and not drop:
        raise ConfigError("init --yes confirms --drop; pass both, or neither")
    if drop:
        confirm_destruction(ctx, "every loadgen table and its data", yes, command="init --drop")
    dsn = get_dsn(ctx)
    created = db.ensure_database(dsn, retry_for_s=settings.db.connect_retry_s)
    with db.connect(dsn, retry_for_s=settings.db.connect_retry_s) as conn:
        schema.init(conn, drop=drop)
    what = "recreated" if drop else "ready"
    print(
        f"schema {what} in database {db.database_name(dsn)!r}"
        f"{' (database created)' if created else ''} at {db.mask_dsn(dsn)}"
        f" [{dsn_source(ctx)}]"
    )


@app.command()
def counts(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)
) -> None:
    """Row count per table, in foreign-key order."""
    settings = get_settings(ctx)
    with db.connect(get_dsn(ctx), retry_for_s=settings.db.connect_retry_s) as conn:
        db.require_schema(conn)
        result = schema.counts(conn)
    if as_json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    sys.stdout.write(counts_table(result))


def counts_table(result: dict[str, int]) -> str:
    """``counts``' table as plain text: the layout rich's borderless table has off a terminal
    (one space of padding each side, left-aligned), without importing rich (~0.06 s)."""
    rows = [("table", "rows"), *((n, f"{c:,}") for n, c in result.items())]
    rows.append(("total", f"{sum(result.values()):,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "".join(f" {a.ljust(widths[0])}  {b.ljust(widths[1])} \n" for a, b in rows)


@app.command()
def check(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)
) -> None:
    """Consistency checks: FK orphans, duplicate natural keys, CPF/CNPJ check digits,
    timestamps and dates in the future, admissions that end before they start, status/date
    coherence. Exit 1 when any check fails."""
    settings = get_settings(ctx)
    with db.connect(get_dsn(ctx), retry_for_s=settings.db.connect_retry_s) as conn:
        db.require_schema(conn, need_columns=True)
        results = schema.check(conn)
    failed = [r for r in results if not r.ok]
    if as_json:
        doc = {
            "ok": not failed,
            "checks": [
                {
                    "name": r.name,
                    "ok": r.ok,
                    "failures": r.failures,
                    "description": r.description,
                    "examples": r.examples,
                }
                for r in results
            ],
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out = _out()
        for r in results:
            mark = "[green]ok[/]  " if r.ok else "[red]FAIL[/]"
            detail = "" if r.ok else f"  {r.failures} rows: {r.description}; e.g. {r.examples[0]}"
            out.print(f"{mark} {r.name}{detail}")
        out.print(f"{len(results) - len(failed)} of {len(results)} checks passed")
    if failed:
        raise CheckFailedError(
            f"{len(failed)} check(s) failed: " + ", ".join(r.name for r in failed)
        )


config_app = typer.Typer(help="Show the merged configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)
) -> None:
    """Every setting, its value and its source (default, file, env, flag). Secrets masked."""
    settings = get_settings(ctx)
    values = config.as_dict(settings)
    if as_json:
        sys.stdout.write(orjson.dumps(values, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from rich.table import Table

    table = Table("setting", "value", "source", box=None)
    for section, body in values.items():
        for key, value in body.items():
            source = settings.sources.get(f"{section}.{key}", "default")
            table.add_row(f"{section}.{key}", repr(value), source)
    _out().print(table)


db_app = typer.Typer(
    help="The embedded PostgreSQL server used when no database is configured.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@db_app.command("start")
def db_start(ctx: typer.Context) -> None:
    """Start the embedded server (initialising it on first use) and print its URL."""
    settings = get_settings(ctx)
    print(embedded.start(settings.db.embedded_dir, settings.db.database))


@db_app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded server (its data stays under .loadgen/)."""
    settings = get_settings(ctx)
    stopped = embedded.stop(settings.db.embedded_dir)
    print("embedded server stopped" if stopped else "embedded server was not running")


@db_app.command("status")
def db_status(ctx: typer.Context) -> None:
    """Whether the embedded server runs, its pid and data directory. Exit 1 when stopped."""
    settings = get_settings(ctx)
    state = embedded.status(settings.db.embedded_dir)
    if state.is_running:
        tcp = f", tcp {state.tcp_host}:{state.port}" if state.tcp_host else ", no tcp"
        print(f"running: pid {state.pid}, data {state.pgdata}, socket {state.socket_dir}{tcp}")
        print(embedded.url(settings.db.embedded_dir, settings.db.database))
        tcp_url = embedded.tcp_url(settings.db.embedded_dir, settings.db.database)
        if tcp_url:
            print(tcp_url)
    else:
        print(f"stopped: data {state.pgdata}")
        raise typer.Exit(1)


@db_app.command("url")
def db_url(
    ctx: typer.Context,
    tcp: bool = typer.Option(
        False, "--tcp", help="The loopback TCP address instead (JDBC clients, e.g. Debezium)."
    ),
) -> None:
    """Print a DSN for the embedded server that psql accepts: psql "$(loadgen db url)".

    The server listens on a Unix socket (this URL) and on a loopback TCP port chosen on its
    first start and kept across restarts (--tcp; also shown on stderr)."""
    settings = get_settings(ctx)
    socket_url = embedded.url(settings.db.embedded_dir, settings.db.database)
    tcp_url = embedded.tcp_url(settings.db.embedded_dir, settings.db.database)
    if tcp:
        if tcp_url is None:
            raise ConfigError(
                "the embedded server listens on a Unix socket only; restart it"
                " (`loadgen db stop && loadgen db start`) to add TCP"
            )
        print(tcp_url)
        return
    print(socket_url)
    if tcp_url:
        print(f"also on TCP: {tcp_url}", file=sys.stderr)
