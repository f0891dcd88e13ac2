"""What the ledger's durability costs: fsync per intent vs the OS cache vs no ledger (not CI).

Unlimited-rate runs of the streaming engine (2 workers, ``coordinator.run`` in this process,
the workers are real processes) on a fresh schema seeded at scale 1, for batch sizes 1 and 50,
each mode run ``ROUNDS`` times interleaved (machines are noisy); prints ops/s and commit
latency per mode and the ratio to the run without a ledger.

    .venv/bin/python -m bench.bench_ledger [seconds=10] [rounds=2]

``LOADGEN_BENCH_DSN`` chooses the server (default the system PostgreSQL 15).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from typing import Any

from bench.bench_stream import bench_schema
from loadgen.ops.mix import parse_mix
from loadgen.stream import coordinator

MODES = ("no ledger", "ledger, OS cache only", "ledger, fdatasync per intent")


def one_run(dsn: str, seconds: float, batch: int, mode: str) -> dict[str, float]:
    ledger = tempfile.mkdtemp(prefix="lg_bench_ledger_") if mode != MODES[0] else None
    spec = coordinator.RunSpec(
        dsn=dsn,
        num_workers=2,
        rate_per_s=None,
        is_paced=False,
        arrivals="token-bucket",
        burst=None,
        duration_s=seconds,
        max_ops=None,
        batch_size=batch,
        mix=parse_mix(None),
        seed=1,
        report_interval_s=1.0,
        interval_s=2.0,
        max_jitter_ms=0,
        ledger=ledger,
        ledger_fsync=mode == MODES[2],
    )
    try:
        summary = coordinator.run(spec)
    finally:
        if ledger:
            shutil.rmtree(ledger, ignore_errors=True)
    data = summary.to_json()
    return {
        "ops_per_s": data["ops_per_s"],
        "txns_per_s": data["committed_txns"] / data["elapsed_s"],
        "lat_p50_ms": data["latency_ms"]["p50"],
        "lat_p99_ms": data["latency_ms"]["p99"],
    }


def main(seconds: float = 10.0, rounds: int = 2) -> dict[str, Any]:
    results: dict[tuple[int, str], list[dict[str, float]]] = {}
    with bench_schema(1.0) as dsn:
        for _ in range(rounds):
            for batch in (1, 50):
                for mode in MODES:
                    results.setdefault((batch, mode), []).append(one_run(dsn, seconds, batch, mode))
    out: dict[str, Any] = {}
    for batch in (1, 50):
        base = statistics.mean(r["ops_per_s"] for r in results[(batch, MODES[0])])
        for mode in MODES:
            runs = results[(batch, mode)]
            ops = statistics.mean(r["ops_per_s"] for r in runs)
            row = {
                "ops_per_s": round(ops, 1),
                "txns_per_s": round(statistics.mean(r["txns_per_s"] for r in runs), 1),
                "lat_p50_ms": round(statistics.mean(r["lat_p50_ms"] for r in runs), 3),
                "lat_p99_ms": round(statistics.mean(r["lat_p99_ms"] for r in runs), 3),
                "vs_no_ledger": round(ops / base, 3) if base else 0.0,
            }
            out[f"batch {batch}, {mode}"] = row
            print(f"batch {batch:>2}, {mode:<30} {row}", flush=True)
    return out


if __name__ == "__main__":
    main(*(float(a) for a in sys.argv[1:2]), *(int(a) for a in sys.argv[2:3]))
