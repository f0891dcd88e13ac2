"""``loadgen scenario list/run``: the named CDC edge cases."""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated

import typer

from loadgen import db, limits, scenarios
from loadgen.cdc.names import database_errors
from loadgen.cli.app import app, confirm_destruction, get_dsn, get_settings
from loadgen.errors import ConfigError

scenario_app = typer.Typer(
    name="scenario",
    help="CDC edge cases on demand: TOAST, replica identity, PK updates, tombstones, TRUNCATE, "
    "big transactions, rollbacks, extreme values, DDL, partitions, unicode. Each writes "
    "only its own cdc_ tables.",
    no_args_is_help=True,
)
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("list")
def list_scenarios() -> None:
    """List the scenarios: what each exercises and what a correct CDC stream shows."""
    width = max(len(n) for n in scenarios.SCENARIOS)
    for s in scenarios.SCENARIOS.values():
        print(f"{s.name:<{width}}  {s.summary}")
        print(f"{'':<{width}}  correct stream: {s.expect}")
        print(f"{'':<{width}}  tables: {', '.join(s.tables)}")


@scenario_app.command("run")
def run_scenarios(
    ctx: typer.Context,
    names: Annotated[
        list[str],
        typer.Argument(
            help="Scenario names (see `loadgen scenario list`), or `all`.", show_default=False
        ),
    ],
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="Record every committed change here (for cdc verify).",
            show_default=False,
        ),
    ] = None,
    repeat: Annotated[
        int,
        typer.Option("--repeat", help=f"Run the list this many times, 1..{limits.MAX_REPEAT:,}."),
    ] = 1,
    big_txn_changes: Annotated[
        int | None,
        typer.Option(
            "--big-txn-changes",
            help="Rows changed by big-transaction's one transaction, "
            f"{limits.MIN_BIG_TXN_CHANGES}..{limits.MAX_BIG_TXN_CHANGES:,} "
            f"[default: {scenarios.ScenarioOptions().big_txn_changes:,}].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run scenarios against the current database (creates the cdc_ tables first)."""
    settings = get_settings(ctx)
    chosen = list(scenarios.SCENARIOS) if names == ["all"] else names
    for n in chosen:
        scenarios.get(n)  # unknown name: exit 2 before connecting
    if not 1 <= repeat <= limits.MAX_REPEAT:
        raise ConfigError(f"--repeat {repeat}: must be 1..{limits.MAX_REPEAT:,}")
    options = scenarios.ScenarioOptions(connect_retry_s=settings.db.connect_retry_s)
    if big_txn_changes is not None:
        if not limits.MIN_BIG_TXN_CHANGES <= big_txn_changes <= limits.MAX_BIG_TXN_CHANGES:
            raise ConfigError(
                f"--big-txn-changes {big_txn_changes}: must be "
                f"{limits.MIN_BIG_TXN_CHANGES}..{limits.MAX_BIG_TXN_CHANGES:,}"
            )
        options = dataclasses.replace(options, big_txn_changes=big_txn_changes)
    dsn = get_dsn(ctx)
    db.wait_for_server(dsn, retry_for_s=options.connect_retry_s)  # no server: one line
    print(
        f"scenario: {', '.join(chosen)} x{repeat}, db {db.mask_dsn(dsn)}"
        + (f", ledger {ledger}" if ledger else ""),
        file=sys.stderr,
        flush=True,
    )
    with database_errors("scenario run"):
        results = scenarios.run(dsn, chosen, ledger_path=ledger, repeat=repeat, options=options)
    for r in results:
        print(f"{r.name}: {r.num_txns} transactions, {r.num_changes} changes, {r.elapsed_s:.2f} s")
    total = sum(r.num_changes for r in results)
    print(
        f"done: {len(results)} runs, {total} changes committed"
        + (f", recorded in {ledger}" if ledger else "")
    )


@scenario_app.command("drop")
def drop_scenario_tables(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Drop every cdc_ scenario table (the 7 hospital tables are never touched)."""
    s = get_settings(ctx)
    confirm_destruction(ctx, "the cdc_ scenario tables", yes, command="scenario drop")
    dsn = get_dsn(ctx)
    with (
        database_errors("scenario drop"),
        db.connect(dsn, autocommit=True, retry_for_s=s.db.connect_retry_s) as conn,
    ):
        dropped = scenarios.drop_tables(conn)
    print(
        f"dropped {len(dropped)} scenario tables" + (f": {', '.join(dropped)}" if dropped else "")
    )
