"""Commands: cdc capture (Debezium's PostgreSQL connector in-process), capture stop/status."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orjson
import typer

from loadgen import interrupts
from loadgen.capture.sink import CapturePaths, check_out, read_json
from loadgen.capture.stop import StopPolicy
from loadgen.cdc import debezium_config, names, schema_names
from loadgen.cli.app import _state, get_dsn, get_settings
from loadgen.cli.cdc_cmd import PUB_HELP, cdc_app
from loadgen.errors import ConfigError, LoadgenError
from loadgen.stream.rates import parse_duration
from loadgen.stream.report import check_summary_json_path

START_TIMEOUT_S = 180.0  # a background capture must stream within this
MAX_IDLE_S = 7 * 86400.0
_CHILD_ENV = "LOADGEN_CAPTURE_CHILD"

capture_app = typer.Typer(
    help="Run Debezium's PostgreSQL connector in-process (no Kafka) and write its change events"
    " to a file that `cdc verify --debezium` reads.\n\n"
    "\b\n"
    "  loadgen cdc setup\n"
    "  loadgen cdc capture --out events.jsonl --background   # returns once streaming\n"
    "  loadgen stream --rate 100/s --duration 1m --ledger run1/\n"
    "  loadgen cdc capture stop --out events.jsonl --until-caught-up\n"
    "  loadgen cdc verify --ledger run1/ --debezium events.jsonl\n\n"
    "Needs the debezium extra (pip install 'loadgen[debezium]') and a Java 17+ runtime."
    " Debezium gets its own slot (created when missing). Offsets are kept in OUT.offsets:"
    " running again with the same --out resumes and appends. Each batch is fsynced before"
    " its offsets may be committed: at least once, never a gap.\n\n"
    "Exit 0 when stopped by Ctrl-C/SIGTERM, --idle or --until-caught-up; 2 bad input; 3 a"
    " server, slot or Java problem; 4 the engine failed after it streamed.",
    invoke_without_command=True,
    no_args_is_help=False,
)
cdc_app.add_typer(capture_app, name="capture")

OUT_HELP = "Event file (one JSON document per line); OUT.offsets, OUT.pid, OUT.log beside it."


def _parse_sets(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (a Debezium property)")
        out[key.strip()] = value
    return out


def _tables(spec: str | None) -> list[str] | None:
    if spec is None:
        return None
    items = [t.strip() for t in spec.split(",") if t.strip()]
    if not items:
        raise ConfigError("--tables: give table names, e.g. --tables pacientes,consultas")
    return items


@capture_app.callback()
def capture(
    ctx: typer.Context,
    out: str | None = typer.Option(
        None, "--out", metavar="FILE", help=OUT_HELP, show_default=False
    ),
    slot_name: str | None = typer.Option(
        None,
        "--slot",
        help="Debezium's slot (default: cdc.debezium_slot, loadgen_debezium, in a schema other"
        " than public loadgen_debezium_<schema>; created when missing; never the verifier's).",
    ),
    publication: str | None = typer.Option(None, "--publication", help=PUB_HELP),
    topic_prefix: str | None = typer.Option(
        None, "--topic-prefix", help="topic.prefix (default: cdc.topic_prefix, hospital)."
    ),
    tables: str | None = typer.Option(
        None,
        "--tables",
        help="Comma-separated tables to capture (table or schema.table; a partitioned table"
        " means its partitions). Default: every table the publication holds.",
        show_default=False,
    ),
    snapshot: str = typer.Option(
        "no_data",
        "--snapshot",
        help="no_data: stream changes only; initial: Debezium first reads the tables"
        " (op r events), then streams.",
    ),
    with_key: bool = typer.Option(False, "--key", help="Write KEY<TAB>VALUE lines."),
    schemas: bool = typer.Option(
        False, "--schemas", help="JsonConverter schema envelope ({schema, payload})."
    ),
    transactions: bool = typer.Option(
        False, "--transactions", help="Transaction metadata (BEGIN/END events, `transaction`)."
    ),
    sets: list[str] = typer.Option(  # noqa: B008 - Typer's idiom
        [],
        "--set",
        metavar="KEY=VALUE",
        help="A Debezium property overriding loadgen's (repeatable).",
    ),
    idle: str | None = typer.Option(
        None,
        "--idle",
        metavar="DURATION",
        help="Stop after this long without events (e.g. 30s, 5m; max 7 days).",
    ),
    until_caught_up: bool = typer.Option(
        False,
        "--until-caught-up",
        help="Stop once every change committed before now has been written.",
    ),
    background: bool = typer.Option(
        False,
        "--background",
        help="Run detached; return once the connector streams (pid in OUT.pid, output in"
        " OUT.log). Stop it with `cdc capture stop --out OUT`.",
    ),
    summary_json: str | None = typer.Option(
        None, "--summary-json", help="Also write the summary as JSON to this file."
    ),
) -> None:
    """Capture change events with Debezium into --out (runs in the CLI's main thread)."""
    if ctx.invoked_subcommand is not None:
        return
    from loadgen.capture.stop import StopRequests

    requests = StopRequests()
    requests.install()  # before anything slow: a signal during start-up stops cleanly
    interrupts.hand_over()  # and so does one received while Python started
    try:
        _capture(ctx, locals(), requests)
    finally:
        requests.restore()


def _capture(ctx: typer.Context, a: dict[str, Any], requests: Any) -> None:
    if not a["out"]:
        raise ConfigError("cdc capture: --out FILE is required (where the events go)")
    if a["snapshot"] not in debezium_config.SNAPSHOT_MODES:
        raise ConfigError(
            f"--snapshot {a['snapshot']!r}: use {' or '.join(debezium_config.SNAPSHOT_MODES)}"
        )
    idle_s = None if a["idle"] is None else parse_duration(a["idle"], flag="--idle")
    if idle_s is not None and idle_s > MAX_IDLE_S:
        raise ConfigError(f"--idle {a['idle']!r}: at most 7 days")
    overrides = _parse_sets(a["sets"])
    if a["summary_json"]:
        check_summary_json_path(a["summary_json"])
    cdc = {
        "publication": a["publication"],
        "debezium_slot": a["slot_name"],
        "topic_prefix": a["topic_prefix"],
    }
    s = get_settings(ctx, {"cdc": {k: v for k, v in cdc.items() if v is not None}})
    names.check_slot(s.cdc.debezium_slot, "--slot" if a["slot_name"] else "cdc.debezium_slot")
    names.check_publication(
        s.cdc.publication, "--publication" if a["publication"] else "cdc.publication"
    )
    paths = CapturePaths.for_out(a["out"])
    check_out(paths)
    from loadgen.capture import java

    java.require_extra()
    dsn = get_dsn(ctx)
    schema = _current_schema(dsn, s.db.connect_retry_s)
    own = schema_names.for_schema(s, schema, ("publication", "debezium_slot"))
    table_list = _qualify(_tables(a["tables"]), schema)
    if a["background"]:
        _start_background(ctx, a, paths, dsn, requests)
        return
    from loadgen.capture import runner

    opts = runner.CaptureOptions(
        out=paths.out,
        publication=own.publication,
        slot=own.debezium_slot,
        verifier_slot=schema_names.verifier_slot(s, schema) or "",
        topic_prefix=s.cdc.topic_prefix,
        tables=table_list,
        snapshot_mode=a["snapshot"],
        with_key=a["with_key"],
        schemas=a["schemas"],
        transactions=a["transactions"],
        overrides=overrides,
        stop=StopPolicy(idle_s=idle_s, until_caught_up=a["until_caught_up"]),
        progress=sys.stderr.isatty() and os.environ.get(_CHILD_ENV) != "1",
        connect_retry_s=s.db.connect_retry_s,
    )
    summary, code = runner.run(dsn, opts, requests)
    summary["exit_code"] = code
    from loadgen.capture.sink import write_json_atomic

    write_json_atomic(paths.status, summary)
    if opts.progress:
        sys.stderr.write("\n")
    print(summary_text(summary))
    _write_summary(a["summary_json"], summary)
    if code:
        if summary.get("error"):
            print(f"loadgen: error: cdc capture: {summary['error']}", file=sys.stderr)
        raise typer.Exit(code)


def _current_schema(dsn: str, retry_s: float) -> str:
    from loadgen import db

    with db.connect(dsn, autocommit=True, retry_for_s=retry_s) as conn:
        schema = db.current_schema(conn)
    if schema is None:
        raise ConfigError("no current schema: search_path names no existing schema")
    return schema


def _qualify(items: list[str] | None, schema: str | None) -> list[str] | None:
    if items is None:
        return None
    return [t if "." in t else f"{schema}.{t}" for t in items]


def _start_background(
    ctx: typer.Context, a: dict[str, Any], paths: CapturePaths, dsn: str, requests: Any
) -> None:
    from loadgen.capture import background

    state = _state(ctx)
    args: list[str] = []
    if state.config_path:
        args += ["--config", state.config_path]
    if state.log_level:
        args += ["--log-level", state.log_level]
    args += ["cdc", "capture", "--out", str(paths.out)]
    for flag, key in (
        ("--slot", "slot_name"),
        ("--publication", "publication"),
        ("--topic-prefix", "topic_prefix"),
        ("--tables", "tables"),
        ("--idle", "idle"),
        ("--summary-json", "summary_json"),
    ):
        if a[key] is not None:
            args += [flag, str(a[key])]
    args += ["--snapshot", a["snapshot"]]
    for flag, key in (
        ("--key", "with_key"),
        ("--schemas", "schemas"),
        ("--transactions", "transactions"),
        ("--until-caught-up", "until_caught_up"),
    ):
        if a[key]:
            args.append(flag)
    for item in a["sets"]:
        args += ["--set", item]
    env = dict(os.environ)
    env["LOADGEN_DSN"] = dsn  # resolved once here (embedded server included); not in argv
    env[_CHILD_ENV] = "1"
    try:
        status = background.start(
            paths, args, env, START_TIMEOUT_S, should_stop=lambda: bool(requests.now)
        )
    except background.ChildFailed as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    if status.get("phase") == "interrupted":
        print(f"capture stopped before it streamed ({requests.now}); nothing left running")
        return
    print(
        f"capture {status.get('phase')}: pid {status.get('pid')}, slot {status.get('slot')},"
        f" writing {paths.out} (log {paths.log}); stop with:"
        f" loadgen cdc capture stop --out {paths.out}"
    )


@capture_app.command("stop")
def capture_stop(
    out: str = typer.Option(..., "--out", help="The --out of the capture to stop."),
    until_caught_up: bool = typer.Option(
        False,
        "--until-caught-up",
        help="Let it first write every change committed before now, then stop.",
    ),
    timeout: str = typer.Option(
        "120s", "--timeout", help="Wait at most this long (then SIGTERM it; exit 4)."
    ),
    summary_json: str | None = typer.Option(
        None, "--summary-json", help="Also write its summary as JSON to this file."
    ),
) -> None:
    """Stop a background capture (offsets flushed) and print its summary."""
    from loadgen.capture import background

    timeout_s = parse_duration(timeout, flag="--timeout")
    if summary_json:
        check_summary_json_path(summary_json)
    summary = background.stop(
        CapturePaths.for_out(out), until_caught_up=until_caught_up, timeout_s=timeout_s
    )
    print(summary_text(summary))
    _write_summary(summary_json, summary)
    code = int(summary.get("exit_code") or 0)
    if code:
        raise typer.Exit(code)


@capture_app.command("status")
def capture_status(
    out: str = typer.Option(..., "--out", help="The --out of a capture."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """A capture's progress (running) or summary (stopped). Exit 1 when none is running."""
    from loadgen.capture.runner import FINAL_PHASES, running_pid

    paths = CapturePaths.for_out(out)
    doc = read_json(paths.status)
    if doc is None:
        raise ConfigError(f"no capture status for {str(paths.out)!r} ({paths.status} missing)")
    pid = running_pid(paths.pid)
    doc["running"] = pid is not None
    died = pid is None and doc.get("phase") not in FINAL_PHASES
    doc["died_without_summary"] = died
    if as_json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif pid is not None:
        print(running_text(doc))
    else:
        print(died_text(doc) if died else summary_text(doc))
        if not died and doc.get("error"):
            print(f"  error: {doc['error']}")
    if pid is None:
        raise typer.Exit(1)


def died_text(doc: dict[str, Any]) -> str:
    """A capture whose process is gone but whose status file is not final (SIGKILL, OOM,
    power loss): what its last status update said, without a summary's figures."""
    return (
        f"capture not running: pid {doc.get('pid', '?')} is not alive and died without a"
        f" summary (last status: {doc.get('phase', '?')}, {doc.get('lines', 0):,} lines,"
        f" last LSN {doc.get('last_lsn') or '-'}); the events it wrote are in {doc.get('out')};"
        " start the capture again to resume from its offsets"
    )


def running_text(doc: dict[str, Any]) -> str:
    lag = doc.get("slot_lag_bytes")
    return (
        f"capture {doc.get('phase')} (pid {doc.get('pid')}): {doc.get('lines', 0):,} lines,"
        f" {doc.get('lines_per_s', 0):,.0f}/s, slot {doc.get('slot')} lag"
        f" {'?' if lag is None else f'{lag:,} B'}, last LSN {doc.get('last_lsn') or '-'}"
    )


def summary_text(doc: dict[str, Any]) -> str:
    """The end-of-capture summary for people (a few lines); fields the status lacks are left
    out or shown as "-", never as a Python None, and no rate is shown without a duration."""
    ops = doc.get("events_by_op") or {}
    op_text = "  ".join(f"{k} {v:,}" for k, v in ops.items()) or "none"
    lag = doc.get("slot_lag_bytes")
    reason = doc.get("stop_reason") or ("failed" if doc.get("phase") == "failed" else "")
    reason = reason or "reason unknown"
    elapsed = doc.get("elapsed_s")
    timing = (
        f" in {elapsed:.1f} s ({doc.get('lines_per_s') or 0:,.0f}/s)"
        if isinstance(elapsed, int | float) and elapsed > 0
        else ""
    )
    offsets = doc.get("offsets")
    lines = [
        f"capture stopped ({reason}): {doc.get('lines') or 0:,} lines{timing}"
        f" -> {doc.get('out') or '-'}"
        + (f" (resumed after {doc.get('lines_before', 0):,} lines)" if doc.get("resumed") else ""),
        f"  events by op: {op_text}; tombstones {doc.get('tombstones') or 0:,};"
        f" transaction events {doc.get('transaction_events') or 0:,}",
        f"  LSN {doc.get('first_lsn') or '-'} .. {doc.get('last_lsn') or '-'}; slot"
        f" {doc.get('slot') or '-'} lag {'?' if lag is None else f'{lag:,} B'}"
        + (f"; offsets {offsets}" if offsets else ""),
    ]
    return "\n".join(lines)


def _write_summary(path: str | None, summary: dict[str, Any]) -> None:
    if not path:
        return
    try:
        Path(path).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise LoadgenError(f"--summary-json {path!r}: {exc.strerror}") from None
