"""Capture throughput: Debezium through `loadgen cdc capture` vs loadgen's own slot read.

One stream writes the WAL once; two slots created before it see the same changes:

- Debezium's (`cdc capture --until-caught-up`: the embedded engine, JSON conversion, the
  fsynced event file), timed from its first to its last written line (the JVM's start-up,
  reported apart, is a one-off);
- the verifier's, read by `cdc verify`'s pgoutput path (`pg_logical_slot_peek_binary_changes`
  through a temporary copy of the slot, loadgen's decoder, matching and checks).

Both rates are changes per second of wall time on the same machine, so read the ratio.

    .venv/bin/python bench/bench_capture.py [NUM_OPS]     # default 20000 operations

Needs BENCH_DSN (default postgresql://postgres@127.0.0.1:5432/test, wal_level=logical), the
debezium extra and Java 17+.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen import db
from loadgen.cdc.verify_run import verify_slot

BENCH_DSN = os.environ.get("BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _dsn(schema: str) -> str:
    params = conninfo_to_dict(BENCH_DSN)
    params["options"] = f"{params.get('options') or ''} -c search_path={schema}".strip()
    return make_conninfo(**params)


def _run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "loadgen", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode not in (0, 1):
        raise SystemExit(f"loadgen {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def main(num_ops: int) -> None:
    tag = uuid.uuid4().hex[:8]
    schema, pub = f"bench_cap_{tag}", f"bench_cap_pub_{tag}"
    slot, dbz_slot = f"bench_cap_verify_{tag}", f"bench_cap_dbz_{tag}"
    dsn = _dsn(schema)
    with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
    env.update(
        {
            "LOADGEN_DSN": dsn,
            "LOADGEN_CDC_PUBLICATION": pub,
            "LOADGEN_CDC_SLOT": slot,
            "LOADGEN_CDC_DEBEZIUM_SLOT": dbz_slot,
            "LOADGEN_LOGGING_FILE": str(work / "app.log"),
        }
    )
    events, ledger = work / "events.jsonl", work / "ledger"
    try:
        for args in (("init",), ("seed", "--scale", "0.2", "--seed", "1"), ("cdc", "setup")):
            _run(env, work, *args)
        with psycopg.connect(dsn, autocommit=True) as conn:  # both slots before the load
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (dbz_slot,))
        stream = ["stream", "--rate", "unlimited", "--workers", "2", "--max-ops", str(num_ops)]
        _run(env, work, *stream, "--batch-size", "10", "--seed", "1", "--ledger", str(ledger))
        t0 = time.perf_counter()
        _run(env, work, "cdc", "capture", "--out", str(events), "--until-caught-up",
             "--summary-json", str(work / "capture.json"))  # fmt: skip
        capture_wall_s = time.perf_counter() - t0
        summary = orjson.loads((work / "capture.json").read_bytes())
        with db.connect(dsn, autocommit=True) as conn:
            t0 = time.perf_counter()
            report = verify_slot(conn, str(ledger), slot=slot, publication=pub)
            slot_s = time.perf_counter() - t0
        slot_changes = int(report.counts.get("captured_changes", 0))
        dbz_changes = sum(v for k, v in summary["events_by_op"].items() if k in "cudt")
        span = float(summary["write_span_s"] or 0.0)
        dbz_rate = dbz_changes / span if span > 0 else float("nan")
        slot_rate = slot_changes / slot_s if slot_s > 0 else float("nan")
        print(f"capture bench: {num_ops:,} operations, {report.counts.get('ledger_changes', 0):,}"
              f" ledger changes, server {BENCH_DSN}")  # fmt: skip
        print(f"{'path':<44} {'changes':>9} {'seconds':>8} {'changes/s':>10} {'ratio':>6}")
        rows = [
            ("loadgen slot read (cdc verify, pgoutput)", slot_changes, slot_s, slot_rate),
            ("Debezium via cdc capture (first..last line)", dbz_changes, span, dbz_rate),
        ]
        for name, n, secs, rate in rows:
            print(f"{name:<44} {n:>9,} {secs:>8.2f} {rate:>10,.0f} {rate / slot_rate:>6.2f}")
        start_s = capture_wall_s - span
        print(
            f"cdc capture wall time {capture_wall_s:.1f} s, of which JVM start, connect and"
            f" caught-up marker {start_s:.1f} s; {summary['tombstones']:,} tombstones and"
            f" {summary['lines']:,} lines written in {summary['batches']:,} batches; loadgen's"
            f" consumer (convert, write, fsync) took {summary['consumer_s']:.2f} s of the"
            f" {span:.2f} s; verify ok={report.is_ok}"
        )
    finally:
        with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
            for s in (slot, dbz_slot):
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = %s AND NOT active",
                    (s,),
                )
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(pub)))
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
