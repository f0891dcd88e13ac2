"""Streaming engine benchmarks: rate accuracy, capacity vs pgbench, RSS flatness (not CI).

Every figure comes from real ``loadgen stream`` runs (CLI subprocesses, 2 workers) against one
server, in a fresh schema seeded at scale 1; pgbench runs against the same schema in the same
invocation, so the capacity figure is a ratio (machines are noisy).

    .venv/bin/python bench/bench_stream.py rate-low  [seconds=300]   # 200/min, target ±1 %
    .venv/bin/python bench/bench_stream.py rate-high [seconds=60]    # 5,000/s; lag vs pgbench -R
    .venv/bin/python bench/bench_stream.py capacity  [seconds=20]    # unlimited vs pgbench
    .venv/bin/python bench/bench_stream.py capacity4 [seconds=20]    # the same, 4 workers
    .venv/bin/python bench/bench_stream.py rss       [seconds=600]   # RSS growth per process

``LOADGEN_BENCH_DSN`` (default the system PostgreSQL 15 ``postgresql://postgres@127.0.0.1:5432/test``)
and ``PGBENCH`` (default ``/usr/lib/postgresql/15/bin/pgbench``) choose the server and binary.
Under pytest (``make bench``) each case runs once, shortened, through ``benchmark.pedantic``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen import db, schema, seed
from loadgen.stream.rates import parse_rate

BASE_DSN = os.environ.get("LOADGEN_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PGBENCH = os.environ.get("PGBENCH", "/usr/lib/postgresql/15/bin/pgbench")
WORKERS = 2
BATCH = 50


@contextmanager
def bench_schema(scale: float = 1.0) -> Iterator[str]:
    """A fresh schema with ``init`` + ``seed`` at ``scale``; yields its DSN; dropped after."""
    name = f"lg_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(BASE_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(BASE_DSN)
    params["options"] = f"{params.get('options') or ''} -c search_path={name}".strip()
    dsn = make_conninfo(**params)
    try:
        with db.connect(dsn) as conn:
            schema.init(conn)
        seed.seed(dsn, seed.SeedOptions(scale=scale, workers=2, seed=1))
        yield dsn
    finally:
        with psycopg.connect(BASE_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def stream(dsn: str, *args: str, timeout_s: float = 3600, workers: int = WORKERS) -> dict[str, Any]:
    """Run ``loadgen stream`` with ``args`` on ``workers`` workers; return its summary JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        cmd = [
            sys.executable,
            "-m",
            "loadgen",
            "--dsn",
            dsn,
            "stream",
            "--workers",
            str(workers),
            "--no-progress",
            "--summary-json",
            str(out),
            *args,
        ]
        subprocess.run(cmd, check=True, timeout=timeout_s, stdout=subprocess.DEVNULL)
        return dict(json.loads(out.read_text()))


def rate_accuracy(rate: str, seconds: float, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Achieved ÷ target rate and schedule lag for one run of ``seconds`` at ``rate``, next
    to pgbench ``-R`` at the same statement rate (``pgbench_at_rate``, same clients, same
    run)."""
    with bench_schema() as dsn:
        # pgbench first: its parents come from max(id), gapless only before loadgen inserts
        reference = pgbench_at_rate(dsn, parse_rate(rate) or 0.0, seconds)
        summary = stream(dsn, "--rate", rate, "--duration", f"{seconds:g}", *extra)
        target = summary["target_rate_per_s"]
    achieved = summary["total_ops"] / seconds
    return {
        "rate": rate,
        "seconds": seconds,
        "total_ops": summary["total_ops"],
        "target_per_s": target,
        "achieved_per_s": round(achieved, 3),
        "error_pct": round(100 * (achieved / target - 1), 3),
        "lag_ms": summary["schedule_lag_ms"],
        "latency_ms": summary["latency_ms"],
        "errors": summary["errors"],
        "pgbench_R": reference,
        "lag_p99_vs_pgbench": round(
            summary["schedule_lag_ms"]["p99"] / max(reference["lag_ms"]["p99"], 0.001), 2
        ),
    }


def _percentiles_ms(values_us: list[float]) -> dict[str, float]:
    if not values_us:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values_us)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 3)

    return {"p50": at(0.50), "p99": at(0.99), "max": round(ordered[-1] / 1000, 3)}


def pgbench_at_rate(
    dsn: str, rate_per_s: float, seconds: float, clients: int = WORKERS
) -> dict[str, Any]:
    """pgbench ``-R`` at ``rate_per_s`` statements/s: the 50-INSERT transaction of
    ``capacity`` (``BATCH`` single-row INSERTs, loadgen's batch size) at ``rate_per_s / BATCH``
    transactions/s, simple protocol, ``clients`` clients; schedule lag and latency percentiles
    per transaction from its log (``-l``). One INSERT per transaction would measure the
    server's commit rate (fsync) rather than scheduling."""
    params = conninfo_to_dict(dsn)
    env = {**os.environ, "PGOPTIONS": str(params.pop("options", ""))}
    with psycopg.connect(dsn) as conn:
        n_p = conn.execute("SELECT max(id) FROM pacientes").fetchone()[0]  # type: ignore[index]
        n_m = conn.execute("SELECT max(id) FROM medicos").fetchone()[0]  # type: ignore[index]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "insert50.sql"
        _pgbench_script(script, n_p, n_m, pipeline=False)
        prefix = Path(tmp) / "tx"
        cmd = [PGBENCH, "-n", "-c", str(clients), "-j", str(clients), "-M", "simple"]
        cmd += ["-R", f"{rate_per_s / BATCH:g}", "-T", f"{seconds:g}", "-f", str(script)]
        cmd += ["-l", "--log-prefix", str(prefix), make_conninfo(**params)]
        subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        lags, latencies, num = [], [], 0
        for log in Path(tmp).glob("tx.*"):
            for line in log.read_text().splitlines():
                fields = line.split()  # client tx time_us script epoch epoch_us [lag_us]
                num += 1
                latencies.append(float(fields[2]))
                lags.append(float(fields[6]) if len(fields) > 6 else 0.0)
    return {
        "transactions": num,
        "achieved_statements_per_s": round(num * BATCH / seconds, 1),
        "lag_ms": _percentiles_ms(lags),
        "latency_ms": _percentiles_ms(latencies),
    }


def _pgbench_script(path: Path, num_pacientes: int, num_medicos: int, pipeline: bool) -> None:
    """50 INSERTs per transaction, the same statement the insert_consulta operation sends."""
    lines = [
        f"\\set p{i} random(1, {num_pacientes})\n\\set m{i} random(1, {num_medicos})"
        for i in range(BATCH)
    ]
    lines.append("BEGIN;")
    if pipeline:
        lines.append("\\startpipeline")
    lines += [
        "INSERT INTO consultas (paciente_id, medico_id, data, motivo, status) VALUES "
        f"(:p{i}, :m{i}, now() + interval '3 days', 'Consulta de rotina', 'agendada') "
        "RETURNING *;"
        for i in range(BATCH)
    ]
    if pipeline:
        lines.append("\\endpipeline")
    lines.append("END;")
    path.write_text("\n".join(lines) + "\n")


def pgbench_rows_per_s(dsn: str, seconds: float, pipeline: bool, clients: int = WORKERS) -> float:
    """Rows/s of pgbench (``clients`` clients) running the 50-INSERT script: the simple
    protocol as loadgen sends it, or (``pipeline``) prepared statements in pipeline mode,
    which pgbench allows only with the extended protocol."""
    with psycopg.connect(dsn) as conn:
        n_p = conn.execute("SELECT max(id) FROM pacientes").fetchone()[0]  # type: ignore[index]
        n_m = conn.execute("SELECT max(id) FROM medicos").fetchone()[0]  # type: ignore[index]
    params = conninfo_to_dict(dsn)
    env = {**os.environ, "PGOPTIONS": str(params.pop("options", ""))}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "insert50.sql"
        _pgbench_script(script, n_p, n_m, pipeline)
        done = subprocess.run(
            [
                PGBENCH,
                "-n",
                "-c",
                str(clients),
                "-j",
                str(clients),
                "-M",
                "prepared" if pipeline else "simple",
                "-T",
                f"{seconds:g}",
                "-f",
                str(script),
                make_conninfo(**params),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    tps = next(
        float(line.split("=")[1].split()[0])
        for line in done.stdout.splitlines()
        if line.startswith("tps =")
    )
    return tps * BATCH


def capacity(seconds: float, workers: int = WORKERS) -> dict[str, Any]:
    """``--rate unlimited --workers N --batch-size 50`` vs pgbench with N clients, same
    schema, same run: ours before and after pgbench (averaged), pgbench simple protocol and
    pipeline mode, and the default mix."""
    insert_only = ("--rate", "unlimited", "--batch-size", str(BATCH), "--mix", "insert_consulta=1")
    with bench_schema() as dsn:
        ours = stream(dsn, *insert_only, "--duration", f"{seconds:g}", workers=workers)
        plain = pgbench_rows_per_s(dsn, seconds, pipeline=False, clients=workers)
        piped = pgbench_rows_per_s(dsn, seconds, pipeline=True, clients=workers)
        ours_again = stream(dsn, *insert_only, "--duration", f"{seconds:g}", workers=workers)
        mixed = stream(
            dsn,
            "--rate",
            "unlimited",
            "--batch-size",
            str(BATCH),
            "--duration",
            f"{seconds:g}",
            workers=workers,
        )
    ops = (ours["ops_per_s"] + ours_again["ops_per_s"]) / 2  # before and after pgbench
    return {
        "seconds": seconds,
        "workers": workers,
        "loadgen_ops_per_s": round(ops, 1),
        "loadgen_runs": [ours["ops_per_s"], ours_again["ops_per_s"]],
        "pgbench_simple_rows_per_s": round(plain, 1),
        "pgbench_pipeline_rows_per_s": round(piped, 1),
        "ratio_vs_pgbench": round(ops / plain, 3),
        "ratio_vs_pgbench_pipeline": round(ops / piped, 3),
        "loadgen_default_mix_ops_per_s": mixed["ops_per_s"],
    }


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _children(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
    return sorted(pids)


def rss(seconds: float, rate: str = "1000/s") -> dict[str, Any]:
    """RSS of the coordinator and each worker, sampled every 5 s; growth after warm-up."""
    with bench_schema() as dsn:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadgen",
                "--dsn",
                dsn,
                "stream",
                "--workers",
                str(WORKERS),
                "--rate",
                rate,
                "--duration",
                f"{seconds:g}",
                "--no-progress",
            ],
            stdout=subprocess.DEVNULL,
        )
        samples: dict[str, list[int]] = {}
        time.sleep(min(60.0, seconds / 10))  # warm-up (10 %): pools and buffers filled
        while proc.poll() is None:
            try:
                pids = {
                    "coordinator": proc.pid,
                    **{f"worker {i}": pid for i, pid in enumerate(_children(proc.pid))},
                }
                for name, pid in pids.items():
                    samples.setdefault(name, []).append(_rss_kb(pid))
            except (OSError, ValueError):
                pass
            time.sleep(5)
        assert proc.returncode == 0
    return {
        name: {
            "first_mb": round(s[0] / 1024, 1),
            "last_mb": round(s[-2] / 1024, 1),
            "max_mb": round(max(s) / 1024, 1),
            "growth_pct": round(100 * (s[-2] / s[0] - 1), 1),
            "every_60_s_mb": [round(v / 1024, 1) for v in s[::12]],
        }
        for name, s in samples.items()
        if len(s) >= 3
    }


CASES = {
    "rate-low": (lambda s: rate_accuracy("200/min", s), 300.0),
    "rate-high": (lambda s: rate_accuracy("5000/s", s), 60.0),
    "capacity": (capacity, 20.0),
    "capacity4": (lambda s: capacity(s, workers=4), 20.0),
    "rss": (rss, 600.0),
}


def test_rate_low(benchmark: Any) -> None:
    result = benchmark.pedantic(rate_accuracy, args=("200/min", 60.0), rounds=1, iterations=1)
    assert abs(result["error_pct"]) < 2


def test_rate_high(benchmark: Any) -> None:
    result = benchmark.pedantic(rate_accuracy, args=("5000/s", 20.0), rounds=1, iterations=1)
    assert abs(result["error_pct"]) < 5


def test_capacity(benchmark: Any) -> None:
    result = benchmark.pedantic(capacity, args=(10.0,), rounds=1, iterations=1)
    assert result["ratio_vs_pgbench"] > 0


if __name__ == "__main__":
    case = sys.argv[1] if len(sys.argv) > 1 else "capacity"
    func, default_s = CASES[case]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else default_s
    print(json.dumps({case: func(seconds)}, indent=2))
