"""Seeding: scale 1 wall time, scale 50 vs the pg_restore-style ceiling and pgbench -i,
--copy vs --insert vs pgbench -i.

Targets: scale 1 in under 2 s (issue 2); scale 50 with ``--workers 2`` into empty tables at
>= 0.7x the pg_restore-style ceiling (issue 11): the same rows already encoded in memory,
COPYed by the benchmark itself into key-less tables (TRUNCATE + COPY FREEZE, one transaction
per table, 2 connections), then the same parallel build of keys, indexes and validated foreign
keys, and ANALYZE; next to ``pgbench -i`` at the same row count, with the ratios and where the
difference goes; and a side-by-side table of ``--copy``, ``--insert`` and ``pgbench -i``.

Needs a running server: ``BENCH_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each run uses its own schema ``lg_bench_*`` (dropped afterwards) and pgbench its own database.

    .venv/bin/python bench/bench_seed.py              # everything, printed as tables
    .venv/bin/python bench/bench_seed.py --sections 2 # scale 50 vs the ceiling and pgbench -i
    .venv/bin/pytest bench/bench_seed.py --benchmark-only
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen import (
    datagen,
    db,
    schema,
    seed,
    seed_append,
    seed_build,
    seed_fast,
    seed_parallel,
    seed_plan,
    tables,
)

BENCH_DSN = os.environ.get("BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _pgbench() -> str:
    """``$PGBENCH``, else the one beside the server's binaries (``pg_config --bindir``)."""
    if os.environ.get("PGBENCH"):
        return os.environ["PGBENCH"]
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return shutil.which("pgbench") or "pgbench"
    return str(Path(bindir) / "pgbench")


PGBENCH = _pgbench()
REFERENCE = datetime(2025, 3, 14, tzinfo=UTC)
SEED = 1
ROOT = Path(__file__).resolve().parent.parent


def _with_options(dsn: str, **params: str) -> str:
    kv = conninfo_to_dict(dsn)
    if "search_path" in params:
        kv["options"] = f"{kv.get('options') or ''} -c search_path={params.pop('search_path')}"
    kv.update(params)
    return make_conninfo(**kv)


@contextmanager
def fresh_schema(name: str) -> Iterator[str]:
    """A DSN on a new schema ``name`` with ``loadgen init`` done; dropped afterwards."""
    with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    dsn = _with_options(BENCH_DSN, search_path=name)
    with db.connect(dsn) as conn:
        schema.init(conn)
    try:
        yield dsn
    finally:
        with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def run_seed(scale: float, workers: int, method: str = "copy") -> seed.SeedResult:
    with fresh_schema(f"lg_bench_{method}_{workers}") as dsn:
        options = seed.SeedOptions(
            scale=scale, workers=workers, seed=SEED, method=method, reference=REFERENCE
        )
        return seed.seed(dsn, options)


def cli_seed_scale_1() -> tuple[float, float]:
    """``loadgen seed`` at scale 1 in a fresh process: (seed seconds, process wall seconds)."""
    with fresh_schema("lg_bench_cli") as dsn:
        env = {**os.environ, "LOADGEN_DSN": dsn, "LOADGEN_LOGGING_FILE": ""}
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "loadgen", "seed", "--scale", "1", "--seed", str(SEED)],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        wall_s = time.monotonic() - t0
    match = re.search(r"done in ([0-9.]+) s", out.stdout)
    assert match, out.stdout + out.stderr
    return float(match.group(1)), wall_s


def encode_all(scale: float) -> dict[str, list[bytes]]:
    """The rows ``seed --scale`` writes into empty tables, as COPY blocks (same seed, anchor)."""
    opts = seed.SeedOptions(scale=scale)
    rows = {t.name: opts.rows_for(t.name) for t in tables.TABLES if not t.is_lookup}
    convenios = np.arange(1, 13, dtype=np.int64)
    everyone = datagen.ParentIds(
        pacientes=np.arange(1, rows["pacientes"] + 1, dtype=np.int64),
        medicos=np.arange(1, rows["medicos"] + 1, dtype=np.int64),
        convenios=convenios,
    )
    links = datagen.ParentIds(pacientes=everyone.pacientes, convenios=convenios, link_base_id=1)
    out: dict[str, list[bytes]] = {}
    for table, n in rows.items():
        parents = links if table == "pacientes_convenios" else everyone
        blocks: list[bytes] = []
        for lo, hi in datagen.iter_pieces(1, n + 1):
            batch = datagen.generate_piece(
                table, SEED, lo, hi, parents=parents, now=REFERENCE, lazy=True
            )
            blocks.extend(datagen.iter_copy_blocks(batch, tables.BY_NAME[table].columns))
        out[table] = blocks
    return out


def restore_ceiling(encoded: dict[str, list[bytes]], connections: int = 2) -> dict[str, float]:
    """The pg_restore-style ceiling: the same rows, already encoded, loaded the way the seeder's
    empty-table path loads them, minus generation: keys, foreign keys and secondary indexes
    dropped, one TRUNCATE + COPY FREEZE transaction per table on ``connections`` connections
    (largest first), the same key/index/foreign-key build and ANALYZE, each table's starting
    once it is loaded (``seed_build.jobs``, as pg_restore -j does).

    Returns seconds per phase (each from the previous one's last job): load, index, analyze,
    total.
    """
    weight = {t: float(sum(map(len, blocks))) for t, blocks in encoded.items()}
    with ExitStack() as stack:
        dsn = stack.enter_context(fresh_schema(f"lg_bench_ceiling_{connections}"))
        conn = stack.enter_context(db.connect(dsn, autocommit=True))
        conns = [stack.enter_context(seed_append.open_loader(dsn, 0)) for _ in range(connections)]
        for c in conns:
            c.autocommit = True
        seed_fast.prepare(conn, list(encoded))
        t0 = time.monotonic()

        def task(table: str) -> seed_parallel.Task:
            def run(c: psycopg.Connection, ctx: seed_parallel.Context) -> None:
                seed_fast.copy_frozen(c, table, ((b, 0) for b in encoded[table]), ctx)

            return run

        loads = {t: task(t) for t in encoded}
        jobs = seed_build.jobs(conns[0], loads, weight)
        ends = seed_parallel.run_all(conns, jobs, seed_parallel.Context())
        seed_plan.advance_sequences(conn)
        t_end = time.monotonic()
    t_loaded = ends["load"]
    t_built = max(t_loaded, ends.get("index", 0.0), ends.get("keys", 0.0))
    return {
        "load": t_loaded - t0,
        "index": t_built - t_loaded,
        "analyze": max(0.0, ends.get("analyze", 0.0) - t_built),
        "total": t_end - t0,
    }


def pgbench_init(scale: int) -> tuple[int, float]:
    """``pgbench -i -s scale`` into its own database: (rows, wall seconds)."""
    if not shutil.which(PGBENCH):
        raise FileNotFoundError(f"pgbench not found at {PGBENCH} (set PGBENCH)")
    name = "lg_bench_pgbench"
    with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        dsn = _with_options(BENCH_DSN, dbname=name)
        t0 = time.monotonic()
        subprocess.run([PGBENCH, "-i", "-q", "-s", str(scale), dsn], check=True,
                       capture_output=True, timeout=600)  # fmt: skip
        wall_s = time.monotonic() - t0
    finally:
        with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    return 100_000 * scale + 10 * scale + scale, wall_s


# --- pytest-benchmark entry points (one round each: these are minutes, not microseconds) ---


def test_seed_scale_1(benchmark: Any) -> None:
    result = benchmark.pedantic(run_seed, args=(1.0, 2), rounds=3)
    benchmark.extra_info["rows_per_s"] = result.rows_per_s


def test_seed_scale_10_copy(benchmark: Any) -> None:
    result = benchmark.pedantic(run_seed, args=(10.0, 2), rounds=1)
    benchmark.extra_info["rows_per_s"] = result.rows_per_s


def test_seed_scale_10_insert(benchmark: Any) -> None:
    result = benchmark.pedantic(run_seed, args=(10.0, 1, "insert"), rounds=1)
    benchmark.extra_info["rows_per_s"] = result.rows_per_s


# --- the side-by-side report ----------------------------------------------------------------


def _row(name: str, rows: int, seconds: float) -> str:
    return f"{name:<44}{rows:>11,}{seconds:>9.2f}{rows / seconds:>12,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=50.0, help="the big step (default 50)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the big step")
    parser.add_argument(
        "--compare-scale", type=float, default=10.0, help="copy/insert/pgbench scale (default 10)"
    )
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--sections", default="1,2,3", help="which parts to run (default 1,2,3)")
    args = parser.parse_args()
    sections = set(args.sections.split(","))

    print(f"server: {db.mask_dsn(BENCH_DSN)}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    if "1" in sections:
        scale_1()
    if "2" in sections:
        scale_n_vs_ceiling(args.scale, args.rounds)
    if "3" in sections:
        copy_insert_pgbench(args.compare_scale, args.pgbench_scale)


HEADER = f"{'':<44}{'rows':>11}{'seconds':>9}{'rows/s':>12}"


def scale_1() -> None:
    print("1. scale 1 (13,400 rows)")
    print(HEADER)
    runs = [run_seed(1.0, 2) for _ in range(3)]
    best = min(runs, key=lambda r: r.seconds)
    print(_row("seed() in process, best of 3", best.rows, best.seconds))
    cli = [cli_seed_scale_1() for _ in range(3)]
    seed_s, wall_s = min(cli)
    print(_row("`loadgen seed` (done in ...), best of 3", best.rows, seed_s))
    print(_row("`loadgen seed` process wall incl. startup", best.rows, wall_s))


def scale_n_vs_ceiling(scale: float, rounds: int) -> None:
    print(f"\n2. scale {scale:g}: seed --workers 2 into empty tables vs the pg_restore-style"
          " ceiling vs pgbench -i at the same row count")  # fmt: skip
    print(HEADER)
    encoded = encode_all(scale)
    ours: list[tuple[seed.SeedResult, float]] = []
    ceilings: list[dict[str, float]] = []
    for _ in range(rounds):  # alternated: both see the same machine load
        cpu0 = time.process_time()
        result = run_seed(scale, 2)
        ours.append((result, time.process_time() - cpu0))
        ceilings.append(restore_ceiling(encoded, 2))
    del encoded
    best, client_cpu_s = min(ours, key=lambda r: r[0].seconds)
    ceiling = min(ceilings, key=lambda p: p["total"])
    rows = best.rows
    pg_scale = max(1, round(rows / 100_000))
    pg_rows, pg_s = pgbench_init(pg_scale)
    print(_row(f"seed --copy --workers 2, best of {rounds}", rows, best.seconds))
    for phase in ("load", "index", "analyze"):
        print(_row(f"  of which {phase}", rows, best.phases_s[phase]))
    print(_row(f"pg_restore-style ceiling (2 conns), best of {rounds}", rows, ceiling["total"]))
    for phase in ("load", "index", "analyze"):
        print(_row(f"  of which {phase}", rows, ceiling[phase]))
    print(_row(f"pgbench -i -s {pg_scale}", pg_rows, pg_s))
    ratio = ceiling["total"] / best.seconds
    print(f"ratio seed / ceiling: end to end {ratio:.2f}x (target >= 0.7x), load only "
          f"{ceiling['load'] / best.phases_s['load']:.2f}x, keys+indexes "
          f"{ceiling['index'] / best.phases_s['index']:.2f}x")  # fmt: skip
    print(f"ratio seed / pgbench -i (rows/s): {best.rows_per_s / (pg_rows / pg_s):.2f}x")
    extra = best.seconds - ceiling["total"]
    print(f"where the rest goes: seed takes {extra:+.2f} s more than the ceiling; this process"
          f" spent {client_cpu_s:.2f} CPU s, its producers (processes at this size) generating"
          f" and encoding {best.generate_cpu_s:.2f} CPU s, on {os.cpu_count()} cores shared"
          " with the server;"
          f" its loaders waited {best.starved_s:.2f} s in all for generated rows (the rest of"
          " their time the server was consuming rows, or the socket was full)")  # fmt: skip


def copy_insert_pgbench(compare_scale: float, pgbench_scale: int) -> None:
    print(
        f"\n3. --copy vs --insert vs pgbench -i (loadgen scale {compare_scale:g}, "
        f"pgbench scale {pgbench_scale})"
    )
    print(HEADER)
    for label, workers, method in (("seed --copy --workers 1", 1, "copy"),
                                   ("seed --copy --workers 2", 2, "copy"),
                                   ("seed --insert --workers 1", 1, "insert"),
                                   ("seed --insert --workers 2", 2, "insert")):  # fmt: skip
        result = run_seed(compare_scale, workers, method)
        print(_row(label, result.rows, result.seconds))
    pg_rows, pg_s = pgbench_init(pgbench_scale)
    print(_row(f"pgbench -i -s {pgbench_scale}", pg_rows, pg_s))


if __name__ == "__main__":
    main()
