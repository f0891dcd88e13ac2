"""Seeding: scale 1 wall time, scale 100 vs the raw COPY ceiling, --copy vs --insert vs pgbench -i.

Targets (issue 2): scale 1 in under 2 s; scale 100 with ``--workers 2`` at >= 0.8x the raw
COPY ceiling, i.e. the rate at which the same server ingests the same rows already encoded
in memory (COPYed here by the benchmark itself, over 1 and over 2 connections, into the same
tables, secondary indexes built after, then ANALYZE, as the seeder does); and a side-by-side
table of ``--copy``, ``--insert`` and ``pgbench -i`` rows/s on the same server.

Needs a running server: ``BENCH_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each run uses its own schema ``lg_bench_*`` (dropped afterwards) and pgbench its own database.

    .venv/bin/python bench/bench_seed.py              # everything, printed as tables
    .venv/bin/python bench/bench_seed.py --scale 10   # smaller "scale 100" step
    .venv/bin/pytest bench/bench_seed.py --benchmark-only
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from loadgen import datagen, db, schema, seed, tables

BENCH_DSN = os.environ.get("BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PGBENCH = os.environ.get("PGBENCH", "/usr/lib/postgresql/15/bin/pgbench")
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


def _copy_blocks(dsn: str, table: str, blocks: list[bytes]) -> None:
    columns = tables.BY_NAME[table].columns
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with db.connect(dsn) as conn:
        conn.execute("SET synchronous_commit = off")
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            for block in blocks:
                copy.write(block)
        conn.commit()


def raw_copy(encoded: dict[str, list[bytes]], connections: int) -> dict[str, float]:
    """COPY the pre-encoded rows like the seeder would (FK order, indexes after, ANALYZE).

    Returns seconds per phase: load, index, analyze, total.
    """
    with (
        fresh_schema(f"lg_bench_raw_{connections}") as dsn,
        db.connect(dsn, autocommit=True) as conn,
    ):
        schema.drop_secondary_indexes(conn)
        t0 = time.monotonic()
        for table, blocks in encoded.items():
            parts = [blocks[i::connections] for i in range(connections)]
            threads = [
                threading.Thread(target=_copy_blocks, args=(dsn, table, p)) for p in parts if p
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        t1 = time.monotonic()
        seed._advance_sequences(conn)
        schema.create_indexes(conn)
        t2 = time.monotonic()
        for spec in tables.TABLES:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(spec.name)))
        t3 = time.monotonic()
    return {"load": t1 - t0, "index": t2 - t1, "analyze": t3 - t2, "total": t3 - t0}


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
    parser.add_argument("--scale", type=float, default=100.0, help="the big step (default 100)")
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
        scale_n_vs_raw(args.scale)
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


def scale_n_vs_raw(scale: float) -> None:
    print(f"\n2. scale {scale:g}: seed --workers 2 vs the raw COPY ceiling")
    print(HEADER)
    ours = run_seed(scale, 2)
    encoded = encode_all(scale)
    raw = {n: raw_copy(encoded, n) for n in (1, 2)}
    del encoded
    rows = ours.rows
    print(_row("seed --copy --workers 2 (end to end)", rows, ours.seconds))
    print(_row("  of which load", rows, ours.phases_s["load"]))
    for n, phases in raw.items():
        print(_row(f"raw COPY, {n} connection(s) (end to end)", rows, phases["total"]))
        print(_row("  of which load", rows, phases["load"]))
    ceiling_s = min(p["total"] for p in raw.values())
    ceiling_load_s = min(p["load"] for p in raw.values())
    print(
        f"ratio seed / ceiling: end to end {ceiling_s / ours.seconds:.2f}x, "
        f"load only {ceiling_load_s / ours.phases_s['load']:.2f}x (target >= 0.8x)"
    )


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
