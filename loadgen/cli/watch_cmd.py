"""Command: cdc watch (live verification beside a running stream; loadgen.cdc.watch_run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import typer

from loadgen import db, interrupts, limits
from loadgen.cdc import names, report, schema_names, verify_run, watch_report, watch_run
from loadgen.cdc.results import DELIVERY_MODES
from loadgen.cli.app import get_dsn, get_settings
from loadgen.cli.cdc_cmd import JSON_HELP, PUB_HELP, SLOT_HELP, cdc_app
from loadgen.errors import CheckFailedError, ConfigError
from loadgen.limits import Range
from loadgen.stream.summary import check_summary_json_path

GRACE_RANGE = Range(0, 86_400, unit="s")
INTERVAL_RANGE = Range(0.1, 3_600, unit="s")
DURATION_RANGE = Range(0, 365 * 86_400.0, low_open=True, unit="s")
PORT_RANGE = limits.RANGES[("stream", "metrics_port")]
LINGER_RANGE = Range(0, 3_600, unit="s")


def _check(flag: str, value: float | None, rng: Range) -> None:
    if value is None:
        return
    problem = rng.problem(value)
    if problem:
        raise ConfigError(f"{flag} {value:g}: {problem}")


@cdc_app.command("watch")
def cdc_watch(
    ctx: typer.Context,
    ledger: str = typer.Option(
        ...,
        "--ledger",
        help="Ledger directory or prefix `loadgen stream --ledger` writes (it"
        " may not exist yet: watch waits for it).",
    ),
    slot_name: str | None = typer.Option(None, "--slot", help=SLOT_HELP),
    publication: str | None = typer.Option(None, "--publication", help=PUB_HELP),
    debezium_file: str | None = typer.Option(
        None,
        "--debezium",
        help="Tail this Debezium event file (as `cdc capture --out` or a"
        " Kafka console consumer append to it; truncation and rotation are followed) instead"
        " of streaming the slot.",
    ),
    delivery: str | None = typer.Option(
        None,
        "--delivery",
        help="exactly-once (default for the slot) or at-least-once, as for `cdc verify`.",
    ),
    grace: float = typer.Option(
        watch_run.DEFAULT_GRACE_S,
        "--grace",
        help="A committed change not captured after this"
        f" many seconds is reported missing ({GRACE_RANGE.text()}).",
    ),
    interval: float = typer.Option(
        watch_run.DEFAULT_INTERVAL_S,
        "--interval",
        help=f"Seconds between progress records and missing sweeps ({INTERVAL_RANGE.text()}).",
    ),
    until_caught_up: bool = typer.Option(
        False,
        "--until-caught-up",
        help="Stop once the stream has finished (its writers are"
        " gone, every intent has its outcome) and every change is matched or reported.",
    ),
    duration: float | None = typer.Option(
        None, "--duration", help=f"Stop after this many seconds ({DURATION_RANGE.text()})."
    ),
    max_examples: int = typer.Option(5, "--examples", min=0, help="Examples shown per check."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help=JSON_HELP + " One line per interval and per missing change,"
        " then the report (type final).",
    ),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", help="A progress line per interval on stderr."
    ),
    summary_json: str | None = typer.Option(
        None, "--summary-json", help="Also write the final report and lag figures to this file."
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        help=f"Serve Prometheus /metrics on this port ({PORT_RANGE.text()}; the [metrics]"
        " extra): the figures of the last interval, then the final report's (docs/watch.md).",
    ),
    metrics_linger: float = typer.Option(
        0.0,
        "--metrics-linger",
        help="With --metrics-port: keep serving the final figures this many seconds after"
        f" the report ({LINGER_RANGE.text()}; SIGINT/SIGTERM end it), so a scrape sees them.",
    ),
) -> None:
    """Verify live: follow the ledger and the slot as they grow, report missing changes as
    they happen (pending longer than --grace), duplicates, order and value failures, and the
    end-to-end lag (capture minus commit time) per interval and per table. Stop with Ctrl-C
    or SIGTERM (or --until-caught-up): the same report and exit code as `cdc verify`."""
    from loadgen.capture.stop import StopRequests

    requests = StopRequests()
    requests.install()
    interrupts.hand_over()
    try:
        _watch(ctx, locals(), requests)
    finally:
        requests.restore()


def _emit_json(rec: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(rec, default=str).decode() + "\n")
    sys.stdout.flush()


def _watch(ctx: typer.Context, a: dict[str, Any], requests: Any) -> None:
    _check("--grace", a["grace"], GRACE_RANGE)
    _check("--interval", a["interval"], INTERVAL_RANGE)
    _check("--duration", a["duration"], DURATION_RANGE)
    source = "debezium" if a["debezium_file"] else "slot"
    mode = (a["delivery"] or verify_run.DEFAULT_DELIVERY[source]).strip().lower()
    if mode not in DELIVERY_MODES:
        raise ConfigError(f"--delivery {a['delivery']!r}: use {' or '.join(DELIVERY_MODES)}")
    if a["metrics_port"] is not None:
        _check("--metrics-port", a["metrics_port"], PORT_RANGE)
    _check("--metrics-linger", a["metrics_linger"], LINGER_RANGE)
    if a["summary_json"]:
        check_summary_json_path(a["summary_json"])
    overrides = {"slot": a["slot_name"], "publication": a["publication"]}
    s = get_settings(ctx, {"cdc": {k: v for k, v in overrides.items() if v is not None}})
    opts = watch_run.WatchOptions(
        ledger=a["ledger"],
        slot=s.cdc.slot,
        publication=s.cdc.publication,
        delivery=mode,
        grace_s=a["grace"],
        interval_s=a["interval"],
        until_caught_up=a["until_caught_up"],
        max_examples=a["max_examples"],
        max_duration_s=a["duration"],
    )
    as_json, show = a["as_json"], a["progress"]

    def emit(rec: dict[str, Any]) -> None:
        if as_json:
            _emit_json(rec)
            return
        if rec.get("type") == "missing":
            print(watch_report.missing_text(rec), file=sys.stderr, flush=True)
        elif rec.get("type") == "draining":
            print(
                f"stopping: reading the slot up to LSN {rec['to_lsn']} first (at most"
                f" {rec['up_to_s']:g} s; Ctrl-C again stops at once)",
                file=sys.stderr,
                flush=True,
            )
        elif show:
            print(watch_report.progress_text(rec), file=sys.stderr, flush=True)

    def stop() -> str | None:
        if requests.caught_up_requested:
            opts.until_caught_up = True
        if requests.count > 1:  # a second signal: stop at once (no drain of the slot)
            return f"{requests.now} (again)"
        return requests.now  # type: ignore[no-any-return]

    from loadgen.malloc_tuning import fix_mmap_threshold

    fix_mmap_threshold()  # flat RSS in long runs (docs/watch.md, Memory)
    dsn = get_dsn(ctx)
    metrics = None
    if a["metrics_port"] is not None:  # before the database: a port in use is exit 2 at once
        from loadgen.cdc.watch_metrics import WatchMetrics

        metrics = WatchMetrics(a["metrics_port"])
        metrics.start()
    try:
        result = _run(dsn, s, opts, a["debezium_file"], emit, stop, metrics)
        try:
            _finish(a, result)
        finally:  # the report is out (whatever its verdict): serve its figures a while
            if metrics is not None:
                _linger(a["metrics_linger"], requests)
    finally:
        if metrics is not None:
            metrics.close()


def _linger(seconds: float, requests: Any) -> None:
    """Keep serving /metrics ``seconds`` (or until SIGINT/SIGTERM)."""
    import time

    end = time.monotonic() + seconds
    while requests.now is None and time.monotonic() < end:
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))


def _run(
    dsn: str, s: Any, opts: Any, debezium_file: str | None, emit: Any, stop: Any, metrics: Any
) -> Any:
    with (
        names.database_errors("cdc watch"),
        db.connect(dsn, autocommit=True, retry_for_s=s.db.connect_retry_s) as conn,
    ):
        db.require_schema(conn)
        cdc = schema_names.resolve(conn, s, ("slot", "publication"))
        opts.slot, opts.publication = cdc.slot, cdc.publication
        w: Any
        if debezium_file:
            from loadgen.cdc.watch_debezium import DebeziumWatch

            w = DebeziumWatch(conn, opts, debezium_file, emit, stop)
        else:
            w = watch_run.Watch(conn, dsn, opts, emit, stop)
        w.metrics = metrics
        with schema_names.hinted(conn, s):
            return w.run()


def _finish(a: dict[str, Any], result: Any) -> None:
    as_json = a["as_json"]
    doc = {"type": "final", **result.report.to_dict(), "lag_ms": result.lag_ms}
    doc["intervals"] = result.intervals
    doc.update(result.extra)
    if a["summary_json"]:
        Path(a["summary_json"]).write_bytes(
            orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str) + b"\n"
        )
    if as_json:
        _emit_json(doc)
    else:
        print(report.verify_text(result.report))
        print(watch_report.lag_text(result.lag_ms, result.extra.get("markers")))
    if not result.report.is_ok:
        failed = [c.name for c in result.report.checks if not c.is_ok]
        raise CheckFailedError(f"cdc watch: {len(failed)} check(s) failed: {', '.join(failed)}")
