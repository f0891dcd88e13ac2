"""Commands: cdc setup / status / verify / teardown / debezium-config."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from loadgen import db, scenarios
from loadgen.cdc import (
    debezium_config,
    names,
    publish_safety,
    report,
    schema_names,
    slot,
    verify_run,
)
from loadgen.cdc.results import DELIVERY_MODES
from loadgen.cli.app import app, get_dsn, get_settings
from loadgen.config import Settings
from loadgen.errors import CheckFailedError, ConfigError

cdc_app = typer.Typer(
    help="Change data capture: publication, slot and replica identity; verify what a CDC"
    " consumer captured against the ledger; Debezium connector config.",
    no_args_is_help=True,
)
app.add_typer(cdc_app, name="cdc")

PUB_HELP = (
    "Publication name: a letter or _, then letters, digits, _ or $, at most 63 bytes"
    " (default: cdc.publication, loadgen_pub; in a schema other than public"
    " loadgen_pub_<schema>)."
)
SLOT_HELP = (
    "The verifier's pgoutput slot: lowercase letters, digits and _, at most 63 characters"
    " (default: cdc.slot, loadgen_verify; in a schema other than public"
    " loadgen_verify_<schema>)."
)
JSON_HELP = "Print JSON instead of text."


def _settings(ctx: typer.Context, **cdc: object) -> Settings:
    """Settings with the cdc flags given (slot and publication names are checked by
    ``config.load`` with every other value: ConfigError, exit 2)."""
    return get_settings(ctx, {"cdc": {k: v for k, v in cdc.items() if v is not None}})


def _dump(doc: object) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


@cdc_app.command("setup")
def cdc_setup(
    ctx: typer.Context,
    publication: str | None = typer.Option(None, "--publication", help=PUB_HELP),
    slot_name: str | None = typer.Option(None, "--slot", help=SLOT_HELP),
    replica_identity: str | None = typer.Option(
        None, "--replica-identity", help="default or full (default: cdc.replica_identity)."
    ),
    all_tables: bool = typer.Option(
        False,
        "--all-tables",
        help="Publish every table of the database (FOR ALL TABLES); refused, before anything "
        "is created, when a table without a replica identity would then refuse UPDATE/DELETE.",
    ),
    with_scenarios: bool = typer.Option(
        False,
        "--with-scenarios",
        help="Also create the cdc_ scenario tables (`loadgen scenario`) and publish them.",
    ),
    via_partition_root: bool = typer.Option(
        False,
        "--via-partition-root",
        help="Create the publication with"
        " publish_via_partition_root (partitions' changes under the root table's name).",
    ),
) -> None:
    """Check the server, create the publication for the 7 tables, set replica identity, and
    create the verifier's slot. Run it BEFORE the load: a slot only sees transactions that
    commit after it exists. Names: in schema public loadgen_pub and loadgen_verify; in any
    other schema (search_path) <default>_<schema>, so two loadgen schemas of one database
    never share them (exit 2 when the schema's name makes no valid name, or when the given
    publication or slot is another loadgen schema's)."""
    s = _settings(ctx, publication=publication, slot=slot_name, replica_identity=replica_identity)
    with (
        names.database_errors("cdc setup"),
        db.connect(get_dsn(ctx), autocommit=True, retry_for_s=s.db.connect_retry_s) as conn,
    ):
        db.require_schema(conn)
        cdc = schema_names.resolve(conn, s, ("slot", "publication"))
        if all_tables:  # before anything is created
            publish_safety.require_all_tables_safe(conn, cdc.publication)
        extra: list[str] = []
        if with_scenarios:  # tables first: the publication must exist before the slot
            scenarios.ensure_tables(conn)
            extra = scenarios.table_names()
        result = slot.setup(
            conn,
            publication=cdc.publication,
            slot=cdc.slot,
            replica_identity=s.cdc.replica_identity,
            all_tables=all_tables,
            extra_tables=extra,
            keep_identity=scenarios.OWN_IDENTITY_TABLES,
            via_partition_root=via_partition_root,
        )
        hint = schema_names.legacy_hint(conn, s, after_setup=True)
        if hint and result.is_slot_created:
            result.notes.append(hint)
    print(report.setup_text(result))


@cdc_app.command("status")
def cdc_status(
    ctx: typer.Context,
    publication: str | None = typer.Option(None, "--publication", help=PUB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Slots with lag and retained WAL, the publication's tables, replica identity per table."""
    s = _settings(ctx, publication=publication)
    with (
        names.database_errors("cdc status"),
        db.connect(get_dsn(ctx), autocommit=True, retry_for_s=s.db.connect_retry_s) as conn,
    ):
        st = slot.status(conn, schema_names.resolve(conn, s, ("publication",)).publication)
    if as_json:
        _dump(report.status_dict(st))
    else:
        print(report.status_text(st))


@cdc_app.command("verify")
def cdc_verify(
    ctx: typer.Context,
    ledger: Annotated[
        list[str],
        typer.Option(
            "--ledger",
            help="Ledger directory or prefix written by `loadgen stream --ledger`; repeat it for"
            " the shards of a split run (verified as one run), or give a directory holding"
            " their ledgers (one subdirectory each, or the parts side by side).",
            show_default=False,
        ),
    ],
    slot_name: str | None = typer.Option(None, "--slot", help=SLOT_HELP),
    publication: str | None = typer.Option(None, "--publication", help=PUB_HELP),
    debezium_file: str | None = typer.Option(
        None,
        "--debezium",
        help="Verify a file of Debezium change events (one JSON document per line, as"
        " `loadgen cdc capture` or kafka-console-consumer write them) instead of the slot.",
    ),
    delivery: str | None = typer.Option(
        None,
        "--delivery",
        help="exactly-once: any change delivered twice fails `duplicated`. at-least-once: a"
        " redelivery with the first delivery's transaction, position and content is counted"
        " and reported, not failed. Default: at-least-once for --debezium (Debezium"
        " redelivers after a restart), exactly-once for the slot.",
    ),
    fail_on_limits: bool = typer.Option(
        False,
        "--fail-on-limits",
        help="Fail on values the source's encoding cannot carry (known_limits: Debezium's"
        " timetz offset, timestamps past MicroTimestamp's range, 2-D arrays); by default they"
        " are listed and counted but do not fail.",
    ),
    consume: bool = typer.Option(
        False,
        "--consume",
        help="Advance the slot past what was read"
        " (releases WAL; a second verify then sees nothing).",
    ),
    max_examples: int = typer.Option(5, "--examples", min=0, help="Examples shown per check."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check that the captured changes are exactly the ledger's: none missing, duplicated,
    unexpected, reordered per key, regrouped or altered, and that replaying them gives the
    tables' current contents (with a Debezium snapshot: that the snapshot held every row as of
    its point). Changes written after the ledger's runs had ended (a later run caught by the
    same slot or dump) are counted as excluded_after_ledger, not unexpected, when every run
    recorded its end. Exit 0 when all hold, 1 otherwise; 2 for bad input (a file that is not
    Debezium events); 3 when the slot or publication does not exist."""
    s = _settings(ctx, slot=slot_name, publication=publication)
    source = "debezium" if debezium_file else "slot"
    mode = (delivery or verify_run.DEFAULT_DELIVERY[source]).strip().lower()
    if mode not in DELIVERY_MODES:
        raise ConfigError(f"--delivery {delivery!r}: use {' or '.join(DELIVERY_MODES)}")
    if fail_on_limits and not debezium_file:
        raise ConfigError("--fail-on-limits: only with --debezium (the slot has no such limits)")
    _check_inputs(ledger, debezium_file)  # bad input: exit 2 now, before the server's retries
    with (
        names.database_errors("cdc verify"),
        db.connect(get_dsn(ctx), autocommit=True, retry_for_s=s.db.connect_retry_s) as conn,
    ):
        db.require_schema(conn)
        cdc = schema_names.resolve(conn, s, ("slot", "publication"))
        if debezium_file:
            result = verify_run.verify_debezium(
                conn,
                ledger,
                debezium_file,
                publication=cdc.publication,
                delivery=mode,
                fail_on_limits=fail_on_limits,
                max_examples=max_examples,
            )
        else:
            with schema_names.hinted(conn, s):
                result = verify_run.verify_slot(
                    conn,
                    ledger,
                    slot=cdc.slot,
                    publication=cdc.publication,
                    consume=consume,
                    delivery=mode,
                    max_examples=max_examples,
                )
    if as_json:
        _dump(result.to_dict())
    else:
        print(report.verify_text(result))
    if not result.is_ok:
        failed = [c.name for c in result.checks if not c.is_ok]
        raise CheckFailedError(f"cdc verify: {len(failed)} check(s) failed: {', '.join(failed)}")


def _check_inputs(ledger: list[str], debezium_file: str | None) -> None:
    """The files ``cdc verify`` reads are there and look right (ConfigError, exit 2)."""
    from loadgen.cdc.debezium_lines import sniff
    from loadgen.ledger.writer import part_files

    part_files(ledger)
    if debezium_file:
        sniff(debezium_file)


@cdc_app.command("teardown")
def cdc_teardown(
    ctx: typer.Context,
    slot_name: str | None = typer.Option(None, "--slot", help=SLOT_HELP),
    publication: str | None = typer.Option(None, "--publication", help=PUB_HELP),
    keep_publication: bool = typer.Option(False, "--keep-publication", help="Drop only the slot."),
) -> None:
    """Drop the verifier's slot (slots pin WAL) and the publication; warn about leftovers.
    Only a slot of this database is dropped: a slot of that name in another database is
    left alone (exit 2)."""
    s = _settings(ctx, slot=slot_name, publication=publication)
    with (
        names.database_errors("cdc teardown"),
        db.connect(get_dsn(ctx), autocommit=True, retry_for_s=s.db.connect_retry_s) as conn,
    ):
        cdc = schema_names.resolve(conn, s, ("slot", "publication"))
        result = slot.teardown(
            conn, slot=cdc.slot, publication=None if keep_publication else cdc.publication
        )
    print(f"dropped {' and '.join(result.dropped)}" if result.dropped else "nothing dropped")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)


@cdc_app.command("debezium-config")
def cdc_debezium_config(
    ctx: typer.Context,
    topic_prefix: str | None = typer.Option(
        None, "--topic-prefix", help="topic.prefix (default: cdc.topic_prefix)."
    ),
    fmt: str = typer.Option("json", "--format", help="json (Kafka Connect REST) or properties."),
    show_password: bool = typer.Option(
        False, "--show-password", help="Print the real database password."
    ),
    db_host: str | None = typer.Option(
        None,
        "--db-host",
        help="database.hostname as Kafka Connect must see it (e.g. postgres in compose).",
    ),
    db_port: int | None = typer.Option(
        None, "--db-port", min=1, max=65535, help="database.port as Kafka Connect must see it."
    ),
    db_user: str | None = typer.Option(
        None, "--db-user", help="database.user (default: the DSN's user)."
    ),
    slot_name: str | None = typer.Option(
        None,
        "--slot",
        help="Debezium's slot (default: cdc.debezium_slot, loadgen_debezium; in a schema other"
        " than public loadgen_debezium_<schema>; never the verifier's).",
    ),
    publication: str | None = typer.Option(None, "--publication", help=PUB_HELP),
    with_scenarios: bool = typer.Option(
        False,
        "--with-scenarios",
        help="Also capture the cdc_ scenario tables (as `cdc setup --with-scenarios`).",
    ),
) -> None:
    """Print a Debezium PostgreSQL connector configuration consistent with `cdc setup`.

    table.include.list names the tables as the publication sends them (its partitions
    unless it publishes via the partition root). The password is masked unless
    --show-password (a masked config does not connect: a warning says so on stderr)."""
    if fmt not in ("json", "properties"):
        raise ConfigError(f"--format {fmt!r}: use json or properties")
    s = _settings(ctx, topic_prefix=topic_prefix, debezium_slot=slot_name, publication=publication)
    dsn = get_dsn(ctx)
    with (
        names.database_errors("cdc debezium-config"),
        db.connect(dsn, retry_for_s=s.db.connect_retry_s) as conn,
    ):
        current = db.current_schema(conn)
        schema = str(current)
        cdc = schema_names.for_schema(s, current, ("publication", "debezium_slot"))
        if cdc.debezium_slot == schema_names.verifier_slot(s, schema):
            raise ConfigError(
                f"--slot {cdc.debezium_slot!r}: that is the verifier's slot; Debezium needs its own"
            )
        published = debezium_config.published_tables(conn, cdc.publication)
    extra = tuple(scenarios.table_names()) if with_scenarios else ()
    wanted = debezium_config.hospital_tables(schema, extra)
    if published is None:
        print(
            f"warning: publication {cdc.publication!r} does not exist yet (run `loadgen cdc"
            " setup` first): table.include.list names the tables, not partitions",
            file=sys.stderr,
        )
    doc = debezium_config.debezium_config(
        dsn,
        schema=schema,
        publication=cdc.publication,
        slot=cdc.debezium_slot,
        topic_prefix=s.cdc.topic_prefix,
        show_password=show_password,
        db_host=db_host,
        db_port=db_port,
        db_user=db_user,
        table_list=debezium_config.include_list(published, wanted),
    )
    if doc["config"]["database.password"] == debezium_config.MASKED_PASSWORD:
        print(
            "warning: database.password is masked; Kafka Connect cannot log in with it:"
            " pass --show-password to print the real one",
            file=sys.stderr,
        )
    if fmt == "json":
        _dump(doc)
    else:
        sys.stdout.write(debezium_config.to_properties(doc))
