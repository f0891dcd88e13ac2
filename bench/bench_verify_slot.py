"""`cdc verify` of a real slot after an unlimited-rate stream, against the raw cost of reading
the same slot: wall time, the server's decoding included.

One stream (``loadgen stream --rate unlimited``) fills the verifier's slot; then, in the same
run and on the same changes:

- raw read: ``pg_logical_slot_get_binary_changes`` of a copy of the slot (the same options as
  the verifier, 50,000 changes per call), every row fetched to the client and dropped: the
  server's decoding plus the transfer, the floor for any consumer of this slot;
- ``verify_slot``: the same read (prefetched on a reader thread), the ledger load, the batch
  decoder, matching, every check and the final-state comparison.

    .venv/bin/python bench/bench_verify_slot.py [NUM_OPS]     # default 100000 operations

Needs BENCH_DSN (default postgresql://postgres@127.0.0.1:5432/test, wal_level=logical).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from bench_capture import BENCH_DSN, _dsn, _run  # noqa: E402

from loadgen import db  # noqa: E402
from loadgen.cdc.slot import DEFAULT_BATCH_CHANGES  # noqa: E402
from loadgen.cdc.verify_run import verify_slot  # noqa: E402


def raw_read(conn: psycopg.Connection, slot: str, publication: str) -> tuple[int, float]:
    """(messages, seconds) to read a copy of ``slot`` to the end, rows fetched and dropped."""
    copy = f"{slot[:40]}_raw"
    conn.execute("SELECT pg_copy_logical_replication_slot(%s, %s, true)", (slot, copy))
    options = sql.SQL(", ").join(
        sql.Literal(o) for o in ("proto_version", "1", "publication_names", publication)
    )
    query = sql.SQL(
        "SELECT lsn, xid, data FROM pg_logical_slot_get_binary_changes(%s, NULL, %s, {})"
    ).format(options)
    n = 0
    t0 = time.perf_counter()
    with conn.cursor(binary=True) as cur:
        while rows := cur.execute(query, (copy, DEFAULT_BATCH_CHANGES)).fetchall():
            n += len(rows)
    elapsed = time.perf_counter() - t0
    conn.execute("SELECT pg_drop_replication_slot(%s)", (copy,))
    return n, elapsed


def main(num_ops: int) -> None:
    tag = uuid.uuid4().hex[:8]
    schema, pub, slot = f"bench_vs_{tag}", f"bench_vs_pub_{tag}", f"bench_vs_slot_{tag}"
    dsn = _dsn(schema)
    with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    work = Path(tempfile.mkdtemp(prefix="bench-verify-slot-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
    env.update({"LOADGEN_DSN": dsn, "LOADGEN_CDC_PUBLICATION": pub, "LOADGEN_CDC_SLOT": slot,
                "LOADGEN_LOGGING_FILE": str(work / "app.log")})  # fmt: skip
    ledger = work / "ledger"
    try:
        for args in (("init",), ("seed", "--scale", "0.2", "--seed", "1"), ("cdc", "setup")):
            _run(env, work, *args)
        stream = ["stream", "--rate", "unlimited", "--workers", "2", "--max-ops", str(num_ops)]
        _run(env, work, *stream, "--seed", "1", "--ledger", str(ledger))
        with db.connect(dsn, autocommit=True) as conn:
            msgs, raw_s = raw_read(conn, slot, pub)
            profile = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
            t0 = time.perf_counter()
            if profile is not None:
                profile.enable()
            report = verify_slot(conn, str(ledger), slot=slot, publication=pub)
            verify_s = time.perf_counter() - t0
            if profile is not None:  # BENCH_PROFILE=1: where verify's time goes
                profile.disable()
                pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
            msgs2, raw2_s = raw_read(conn, slot, pub)  # again: the server's caches warm both
        raw_s = min(raw_s, raw2_s)
        n = int(report.counts.get("captured_changes", 0))
        print(f"verify-slot bench: {num_ops:,} operations, {n:,} captured changes"
              f" ({msgs:,} slot messages), server {BENCH_DSN}")  # fmt: skip
        print(f"{'path':<52} {'seconds':>8} {'changes/s':>10} {'ratio':>6}")
        raw_rate, verify_rate = n / raw_s, n / verify_s
        for name, secs, rate in (
            ("raw read (pg_logical_slot_get_binary_changes)", raw_s, raw_rate),
            ("cdc verify (read + ledger + decode + checks)", verify_s, verify_rate),
        ):
            print(f"{name:<52} {secs:>8.2f} {rate:>10,.0f} {rate / raw_rate:>6.2f}")
        met = "met" if verify_rate >= 60_000 else "not met"
        print(f"verify ok={report.is_ok}; target ≥ 60,000 changes/s wall: {met}"
              f" ({msgs2:,} messages re-read)")  # fmt: skip
    finally:
        with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name LIKE %s AND NOT active",
                (f"bench_vs_slot_{tag}%",),
            )
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(pub)))
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
