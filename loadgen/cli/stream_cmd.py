"""``loadgen stream``: continuous, rate-controlled operations from N worker processes.

Start-up order (issue 11): the command's first act, once its signal handlers are in, is to
spawn the spare workers (``loadgen.stream.spares``), so their imports run on the other core
while this process imports the settings, psycopg, numpy and the coordinator; hence the imports
below the module's top are inside ``stream``.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING

import typer

from loadgen import interrupts, limits
from loadgen.cli.app import app, get_dsn, get_settings
from loadgen.errors import RunAbortedError
from loadgen.stream import early_spares, profiles
from loadgen.stream.rates import format_rate
from loadgen.stream.spares import Spares, spare_count
from loadgen.stream.stopping import StopFlag

if TYPE_CHECKING:
    from loadgen import config
    from loadgen.stream.report import RunSummary
    from loadgen.stream.run_spec import RunSpec

_PROFILE_HELP = (
    "Named profile: "
    + "; ".join(f"{p.name}: {p.description}" for p in profiles.PROFILES.values())
    + " [default: default]."
)


def _range(key: str) -> str:
    return limits.help_range("stream", key)


@app.command("stream")
def stream(
    ctx: typer.Context,
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        help="Worker processes, each with its own connection; "
        f"{_range('workers')} ({limits.WORKERS_PER_CORE} per CPU core; the server must have "
        "that many connections free) [default: 2].",
        show_default=False,
    ),
    rate: str | None = typer.Option(
        None,
        "--rate",
        "-r",
        help="Total operations for the run, all workers together: "
        "200/min, 50/s, 3/h or unlimited; from one a day to "
        f"{limits.MAX_RATE_PER_S:,.0f}/s. Without it: one operation every "
        "STREAM_INTERVAL_SECONDS (2) plus 0..MAX_JITTER_MS (400) ms.",
        show_default=False,
    ),
    arrivals: str | None = typer.Option(
        None,
        "--arrivals",
        help="Arrival schedule of a finite --rate: token-bucket, poisson or "
        "uniform [default: token-bucket].",
        show_default=False,
    ),
    burst: int | None = typer.Option(
        None,
        "--burst",
        help="Token-bucket capacity in operations, total over workers, under a finite "
        f"--rate; {_range('burst')} "
        "[default: one second of operations, at least one batch per worker].",
        show_default=False,
    ),
    duration: str | None = typer.Option(
        None,
        "--duration",
        "-d",
        help="Stop after 90, 90s, 5m, 1h; at most 365 days [default: until Ctrl-C].",
        show_default=False,
    ),
    max_ops: int | None = typer.Option(
        None,
        "--max-ops",
        help=f"Stop after exactly this many committed operations in total; {_range('max_ops')}.",
        show_default=False,
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        help="Operations due at the same moment share a transaction, "
        f"up to this many (BATCH_SIZE); {_range('batch_size')} [default: 50].",
        show_default=False,
    ),
    mix: str | None = typer.Option(
        None,
        "--mix",
        help="insert=70,update=30 by kind, or insert_consulta=20,... by "
        "operation (`loadgen ops list`) [default: the original's weights].",
        show_default=False,
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        help=f"RNG seed, {_range('seed')} (printed when drawn at random).",
        show_default=False,
    ),
    ledger: str | None = typer.Option(
        None,
        "--ledger",
        help="Record every committed row change here (for cdc verify).",
        show_default=False,
    ),
    summary_json: str | None = typer.Option(
        None,
        "--summary-json",
        help="Also write the final summary as JSON to this path.",
        show_default=False,
    ),
    progress: bool | None = typer.Option(
        None,
        "--progress/--no-progress",
        help="Live progress (rich on a terminal, one line per interval otherwise) [default: on].",
        show_default=False,
    ),
    report_interval: float | None = typer.Option(
        None,
        "--report-interval",
        help="Seconds between progress updates and worker stats deltas; "
        f"{_range('report_interval_s')} [default: 1].",
        show_default=False,
    ),
    profile: str | None = typer.Option(None, "--profile", help=_PROFILE_HELP, show_default=False),
    scenarios: str | None = typer.Option(
        None,
        "--scenarios",
        help="With a profile that mixes scenarios in: which ones, "
        "comma-separated (`loadgen scenario list`), or all [default: all].",
        show_default=False,
    ),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="Run shard I of N (0-based, e.g. 0/3; N "
        f"{limits.help_range('shard', 'count')}): 1/N of --rate, --burst and --max-ops, and "
        "the rows with id % N == I; --seed makes the N shards' run reproducible. Also "
        "JOB_COMPLETION_INDEX with LOADGEN_SHARDS (a Kubernetes Indexed Job) [default: 0/1].",
        show_default=False,
    ),
    scenario_weight: float | None = typer.Option(
        None,
        "--scenario-weight",
        help="Fraction of operations that are scenario steps, "
        "0 < F <= 1; each step is one operation (one token), counted as scenario:<name> "
        "[default: the profile's, 0.01 for cdc-edge].",
        show_default=False,
    ),
    phases: str | None = typer.Option(
        None,
        "--phases",
        help="Load phases DURATION@RATE[-RATE], comma-separated, run back to back: "
        "30s@0-100/s (a linear ramp), 60s@100/s, 10s@500/s, 30s@0 (idle); they set the rate "
        "and the duration ([[stream.phase]] tables in settings.toml can also set a mix).",
        show_default=False,
    ),
    timeseries: str | None = typer.Option(
        None,
        "--timeseries",
        help="Write one JSON line per --report-interval (ops, rows, latency, lag, errors, by "
        "when the work happened) to this file; `loadgen report` plots it.",
        show_default=False,
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        help=f"Serve Prometheus /metrics on this port during the run; {_range('metrics_port')} "
        "(needs the [metrics] extra).",
        show_default=False,
    ),
    markers: float | None = typer.Option(
        None,
        "--markers",
        help="Every this many seconds, "
        f"{_range('markers_s')}, write a logical message (pg_logical_emit_message, prefix "
        "loadgen; JSON run_id, seq, ts) so `cdc watch` measures lag even while the tables are "
        "idle [default: none].",
        show_default=False,
    ),
) -> None:
    """Stream INSERT/UPDATE/DELETE operations until --duration, --max-ops or Ctrl-C.

    SIGINT or SIGTERM at any stage (even while Python starts) stops the run gracefully: the
    summary of what was committed, exit 0.
    """
    stop = StopFlag()
    stop.install()  # first: signals from here on stop the run...
    interrupts.hand_over()  # ...and so do those received while Python started
    metrics = None
    spares = early_spares.take() or Spares()  # the entry point may have spawned them already
    try:  # every exit restores the handlers, bad input included (in-process callers)
        if not stop.count and not spares.waiting:  # as many as can start at once (a guess)
            spares.start(spare_count(workers, max_ops))
        from loadgen import capacity, config
        from loadgen.stream import coordinator
        from loadgen.stream.report import (
            StreamAbortedError,
            check_summary_json_path,
            choose_reporter,
            print_summary,
        )
        from loadgen.stream.timeseries import check_timeseries_path

        settings = get_settings(
            ctx,
            {
                "stream": {
                    "workers": workers,
                    "rate": rate,
                    "arrivals": arrivals,
                    "burst": burst,
                    "duration": duration,
                    "max_ops": max_ops,
                    "batch_size": batch_size,
                    "mix": mix,
                    "seed": seed,
                    "ledger": ledger,
                    "summary_json": summary_json,
                    "progress": progress,
                    "report_interval_s": report_interval,
                    "profile": profile,
                    "scenarios": scenarios,
                    "scenario_weight": scenario_weight,
                    "phase": phases,
                    "timeseries": timeseries,
                    "metrics_port": metrics_port,
                    "markers_s": markers,
                },
                "shard": {"spec": shard},
            },
        )
        config.check_stream(settings)  # bad input: exit 2 now, before the database
        spec = coordinator.RunSpec.from_settings(
            settings.stream,
            dsn="",
            connect_retry_s=settings.db.connect_retry_s,
            shard=settings.shard.shard,
        )
        summary_json_path = settings.stream.summary_json
        if summary_json_path:
            check_summary_json_path(summary_json_path)
        if settings.stream.timeseries:
            check_timeseries_path(settings.stream.timeseries)
        if spec.ledger:  # its directory, before the server's retries (parts: coordinator.run)
            from loadgen.stream.preflight import check_ledger_path

            check_ledger_path(spec.ledger, num_workers=0)
        spec = dataclasses.replace(spec, dsn=get_dsn(ctx))
        if not stop.count:
            capacity.require_free_connections(
                spec.dsn,
                spec.num_workers,
                f"--workers {spec.num_workers}",
                retry_for_s=settings.db.connect_retry_s,
            )
        _print_header(spec, settings)  # once the server answered: no server, one error line
        if settings.stream.metrics_port is not None:
            from loadgen.stream.metrics import StreamMetrics

            metrics = StreamMetrics(settings.stream.metrics_port)
            metrics.start()
        reporter = choose_reporter(settings.stream.progress)
        try:
            summary = coordinator.run(spec, reporter, stop=stop, metrics=metrics, spares=spares)
        except StreamAbortedError as exc:  # the partial summary, then exit 4 with one line
            print_summary(exc.summary)
            problem = _write_summary_json(summary_json_path, exc.summary)
            if problem:
                print(f"loadgen: error: {problem}", file=sys.stderr, flush=True)
            raise
    finally:
        stop.restore()
        if metrics is not None:
            metrics.close()
        spares.close()  # those no run took (bad input, a stop before the fleet): reaped
    print_summary(summary)
    problem = _write_summary_json(summary_json_path, summary)
    if problem:  # the run is over and printed; what was asked to be kept is not
        raise RunAbortedError(f"{problem} (the run finished; its summary is above)")


def _print_header(spec: RunSpec, settings: config.Settings) -> None:
    """The run's plan, one line on stderr (once the server answered, before any worker runs)."""
    from loadgen import db

    pace = (
        f"phases {spec.phases}"
        if spec.phases is not None
        else f"pace {spec.interval_s:g} s + 0..{spec.max_jitter_ms} ms"
        if spec.is_paced
        else f"rate {format_rate(spec.rate_per_s)}"
        + (f" ({spec.arrivals})" if spec.rate_per_s is not None else "")
    )
    limits_text = [f"duration {spec.duration_s:g} s"] if spec.duration_s else []
    limits_text += [f"max-ops {spec.max_ops}"] if spec.max_ops else []
    if spec.scenarios:
        limits_text.append(
            f"profile {spec.profile}: {len(spec.scenarios)} scenarios, one step "
            f"every {spec.scenario_every_ops} operations per worker"
        )
    mix_text = " ".join(str(settings.stream.mix or "default").split())
    ledger_text = f"ledger {spec.ledger}, " if spec.ledger else ""
    if spec.markers_s is not None:
        ledger_text += f"markers every {spec.markers_s:g} s, "
    shard_text = (
        ""
        if spec.shard.is_whole
        else f" (shard {spec.shard} of run seed {spec.run_seed}; rate, burst, max-ops: its share)"
    )
    print(
        f"stream: {spec.num_workers} workers, {pace}, batch {spec.batch_size}, "
        f"mix {mix_text}, {', '.join(limits_text) or 'until Ctrl-C'}, seed {spec.seed}"
        f"{shard_text}, "
        f"{ledger_text}db {db.mask_dsn(spec.dsn)}",
        file=sys.stderr,
        flush=True,
    )


def _write_summary_json(path: str | None, summary: RunSummary) -> str | None:
    """Write the JSON summary (when asked); why it could not be written, or None."""
    if not path:
        return None
    from loadgen.stream.report import write_summary_json

    try:
        write_summary_json(path, summary)
    except OSError as exc:
        return f"--summary-json {path!r}: cannot write: {exc.strerror or exc}"
    return None
