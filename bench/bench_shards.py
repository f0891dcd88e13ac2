"""Shards on one machine: throughput of N shard processes vs one stream with N workers, and
what merging M shard ledgers and summaries costs (not CI).

    .venv/bin/python -m bench.bench_shards throughput [seconds=10] [rounds=2]
    .venv/bin/python -m bench.bench_shards merge      [changes=200000] [rounds=3]

``throughput``: unlimited-rate runs (no ledger, batch 50, the default mix) on one fresh schema
seeded at scale 1; for N = 1, 2, 3 it runs ``loadgen stream --workers N`` (one coordinator) and
N ``loadgen stream --shard I/N --workers 1`` processes at once (N coordinators), rounds
interleaved (which goes first alternates); the shards' total is their merged summary
(``loadgen.stream.summary_merge``).
Prints ops/s of each and the ratio shards / one stream; the machine's cores bound both.

``merge``: the same number of ledger changes written as 1 ledger or as M = 2, 3, 8, 32 shard
ledgers (``LedgerWriter``, one writer each), then read as one by the verifier's reader
(``ledger_index.load`` of the M paths), the M values round-robin over the rounds (best of
each); and M summaries merged exactly. Prints seconds and the
ratio to one ledger.

``LOADGEN_BENCH_DSN`` chooses the server (default the system PostgreSQL 15).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.bench_stream import bench_schema
from loadgen.cdc import ledger_index
from loadgen.ledger import LedgerWriter
from loadgen.ledger.changes import RowChange
from loadgen.shards import Shard
from loadgen.stream.stats import IntervalStats
from loadgen.stream.summary import RunSummary
from loadgen.stream.summary_merge import merge_files

COUNTS = (1, 2, 3)


def _stream(dsn: str, seconds: float, workers: int, shard: str | None, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "loadgen",
        "--dsn",
        dsn,
        "stream",
        "--workers",
        str(workers),
        "--rate",
        "unlimited",
        "--duration",
        f"{seconds}s",
        "--no-progress",
        "--summary-json",
        str(out),
        *(["--shard", shard] if shard else []),
    ]


def _run_all(cmds: list[list[str]]) -> None:
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in cmds]
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode:
            raise RuntimeError(err.decode(errors="replace")[-2000:])


def throughput(seconds: float = 10.0, rounds: int = 2) -> dict[str, Any]:
    results: dict[str, list[float]] = {}
    with bench_schema(1.0) as dsn, tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for n in COUNTS:
                one = Path(tmp) / f"one-{n}-{r}.json"
                shard_dir = Path(tmp) / f"shards-{n}-{r}"
                shard_dir.mkdir()
                one_cmd = [_stream(dsn, seconds, n, None, one)]
                shard_cmds = [
                    _stream(dsn, seconds, 1, f"{i}/{n}", shard_dir / f"s{i}.json") for i in range(n)
                ]
                for cmds in (one_cmd, shard_cmds) if r % 2 == 0 else (shard_cmds, one_cmd):
                    _run_all(cmds)  # the order alternates by round: neither always goes first
                summary = orjson.loads(one.read_bytes())
                results.setdefault(f"one stream, {n} workers", []).append(summary["ops_per_s"])
                merged = merge_files([shard_dir])
                results.setdefault(f"{n} shards, 1 worker each", []).append(merged["ops_per_s"])
    out = {k: statistics.median(v) for k, v in results.items()}
    print(f"throughput, unlimited rate, {seconds:g} s runs, median of {rounds} rounds:")
    for n in COUNTS:
        one, shards = out[f"one stream, {n} workers"], out[f"{n} shards, 1 worker each"]
        print(
            f"  N={n}: one stream {one:9,.0f} ops/s   {n} shards {shards:9,.0f} ops/s   "
            f"ratio shards/one {shards / one:5.2f}"
        )
    return out


def _write_ledgers(root: Path, num_changes: int, num_ledgers: int) -> list[str]:
    rng = np.random.default_rng(1)
    paths = []
    per = num_changes // num_ledgers
    txid = 1000
    for m in range(num_ledgers):
        path = root / f"shard-{m}"
        with LedgerWriter(str(path), 0, run_id=f"r{m}", fsync=False) as writer:
            for start in range(0, per, 5):
                changes = [
                    RowChange(
                        "consultas",
                        "c",
                        int(pk),
                        {"id": str(pk), "status": "agendada", "motivo": "Rotina"},
                        "insert_consulta",
                    )
                    for pk in rng.integers(1, 10**9, min(5, per - start))
                ]
                txid += 1
                writer.write_txn(txid, "2026-01-01 00:00:00+00", changes)
        paths.append(str(path))
    return paths


def _summary(i: int, m: int) -> dict[str, Any]:
    stats = IntervalStats()
    rng = np.random.default_rng(i)
    stats.latency_ns.record_many(rng.exponential(2e6, 20_000).astype(np.int64))
    stats.lag_ns.record_many(rng.exponential(2e5, 20_000).astype(np.int64))
    stats.ops_by_name["insert_consulta"] = 20_000
    return RunSummary(
        stats, 10.0, 2, 100.0, 1, "duration", run_id=f"r{i}", shard=Shard(i, m)
    ).to_json()


def merge(num_changes: int = 200_000, rounds: int = 3) -> dict[str, Any]:
    out: dict[str, Any] = {}
    counts = (1, 2, 3, 8, 32)
    print(f"merging: {num_changes:,} ledger changes as M ledgers, read as one run")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {m: _write_ledgers(Path(tmp) / f"m{m}", num_changes, m) for m in counts}
        times: dict[int, list[float]] = {m: [] for m in counts}
        for r in range(rounds):  # round-robin, the order reversed every other round: load drifts
            for m in counts if r % 2 == 0 else counts[::-1]:
                t0 = time.perf_counter()
                index = ledger_index.load(paths[m] if m > 1 else paths[m][0])
                times[m].append(time.perf_counter() - t0)
                assert index.num_changes == num_changes // m * m
        base = min(times[1])
        for m in counts:
            best = min(times[m])
            out[f"ledgers M={m}"] = best
            print(
                f"  M={m:3d}: read {best:6.3f} s ({num_changes / best:10,.0f} changes/s)"
                f"   ratio to one ledger {best / base:5.2f}"
            )
            summaries = Path(tmp) / f"summaries-{m}"
            summaries.mkdir()
            for i in range(m):
                (summaries / f"s{i}.json").write_bytes(orjson.dumps(_summary(i, m)))
            t0 = time.perf_counter()
            merge_files([summaries])
            out[f"summaries M={m}"] = time.perf_counter() - t0
            print(f"         summary merge of {m} summaries: {out[f'summaries M={m}']:.4f} s")
    return out


def test_merge(benchmark: Any) -> None:
    benchmark.pedantic(merge, args=(20_000,), rounds=1, iterations=1)


def test_throughput(benchmark: Any) -> None:
    benchmark.pedantic(throughput, args=(3.0, 1), rounds=1, iterations=1)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "merge"
    args = [float(a) for a in sys.argv[2:]]
    if what == "throughput":
        throughput(args[0] if args else 10.0, int(args[1]) if len(args) > 1 else 2)
    elif what == "merge":
        merge(int(args[0]) if args else 200_000, int(args[1]) if len(args) > 1 else 3)
    else:
        raise SystemExit(f"unknown benchmark {what!r}: throughput or merge")
