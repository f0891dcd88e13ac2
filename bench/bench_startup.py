"""Start-up benchmarks (issue 11): how long commands take before (and including) their work.

Every figure is the median wall time of ``--repeat`` runs of a real CLI subprocess against one
seeded scale-50 database; pgbench runs one transaction against the same database in the same
invocation, so the stream figures are ratios (machines are noisy). The breakdown says where a
``stream --max-ops 1`` goes: interpreter start, the coordinator's imports, a worker's imports,
and a worker loading its candidates (``Workload``) for 1 and 2 workers. The console entry point
spawns ``stream``'s spare workers after its first imports (``entry_imports_to_spawn_s``,
``loadgen.stream.early_spares``), so a worker's imports overlap the coordinator's.

The package is byte-compiled first (``compileall``), as a wheel install leaves it: a checkout
run with ``PYTHONDONTWRITEBYTECODE=1`` recompiles loadgen's modules on every start (a few
hundredths of a second more per process tree); ``bytecode`` in the output says so.

    .venv/bin/python bench/bench_startup.py [--repeat 5] [--scale 50]

``LOADGEN_BENCH_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``) is the server: a
fresh schema is created, seeded at ``--scale`` and dropped after. ``LOADGEN_BENCH_SEEDED_DSN``
names an already seeded database to use instead (nothing is created or dropped).
``PGBENCH`` (default ``/usr/lib/postgresql/15/bin/pgbench``) is the reference binary.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

PGBENCH = os.environ.get("PGBENCH", "/usr/lib/postgresql/15/bin/pgbench")
PY = sys.executable

# A worker's candidates, loaded as a worker does (stdout: seconds).
_LOAD_WORKLOAD = """
import sys, time
from loadgen import db
from loadgen.ops.mix import default_mix
from loadgen.ops.workload import Workload
dsn, n = sys.argv[1], int(sys.argv[2])
with db.connect(dsn) as conn:
    t = time.perf_counter()
    Workload(conn, worker_id=0, num_workers=n, seed=1, mix=default_mix(), owned_max_ids=None)
    print(time.perf_counter() - t)
"""


# What loadgen.__main__ imports before it spawns a stream's spares (loadgen.stream.early_spares).
_ENTRY_IMPORTS = "import loadgen.interrupts, loadgen.stream.early_spares"

# Everything the coordinator imports before its checks (the spares import meanwhile).
_COORDINATOR_IMPORTS = (
    "import loadgen.cli.stream_cmd, loadgen.capacity, loadgen.config, loadgen.stream.coordinator"
)


def links_load_cpu_s(repeat: int, scale: float) -> float:
    """Median CPU seconds of ``LinkState.load_many`` for scale ``scale``'s pacientes (2,000 a
    unit of scale) and links (2,500 a unit, distinct pairs of 10 convenios), in this process."""
    import numpy as np

    from loadgen.ops.pools import LinkState

    rng = np.random.default_rng(1)
    pacientes = np.arange(1, round(2_000 * scale) + 1, dtype=np.int64)
    drawn = np.stack(
        [rng.choice(pacientes, round(2_500 * scale)), rng.integers(1, 11, round(2_500 * scale))], 1
    )
    pairs = np.unique(drawn, axis=0)
    table = np.column_stack([np.arange(1, len(pairs) + 1), pairs]).astype(np.int64)
    times = []
    for _ in range(repeat):
        state = LinkState(list(range(1, 11)))
        t = time.process_time()
        state.load_many(pacientes, table)
        times.append(time.process_time() - t)
    return statistics.median(times)


@contextmanager
def seeded(scale: float) -> Iterator[str]:
    """A DSN of a database seeded at ``scale`` (``LOADGEN_BENCH_SEEDED_DSN``, or a fresh
    schema dropped afterwards)."""
    given = os.environ.get("LOADGEN_BENCH_SEEDED_DSN")
    if given:
        yield given
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_stream import bench_schema

    with bench_schema(scale) as dsn:
        yield dsn


_CPU: dict[str, float] = {}  # the last _wall's CPU seconds (user + system, all descendants)


def _wall(cmd: list[str], env: dict[str, str] | None = None, **kw: Any) -> float:
    """Wall seconds of ``cmd``; its CPU seconds (with its children's) go to ``_CPU``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, timeout=600, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _CPU["last"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall


def _median(repeat: int, measure: Any, cpu: dict[str, float] | None = None, key: str = "") -> float:
    """Median wall time of ``repeat`` calls; with ``cpu``, the median CPU time goes to
    ``cpu[key]`` (CPU time barely depends on what else the machine runs; wall time does)."""
    walls, cpus = [], []
    for _ in range(repeat):
        walls.append(measure())
        cpus.append(_CPU.get("last", 0.0))
    if cpu is not None:
        cpu[key] = statistics.median(cpus)
    return statistics.median(walls)


def _pgbench_one(dsn: str, clients: int, tmp: Path) -> float:
    """Wall seconds of pgbench running ONE transaction per client (``-t 1``) of the single-row
    INSERT that ``insert_consulta`` sends, connection set-up included."""
    script = tmp / "one.sql"
    script.write_text(
        "INSERT INTO consultas (paciente_id, medico_id, data, motivo, status) VALUES "
        "(1, 1, now() + interval '3 days', 'Consulta de rotina', 'agendada');\n"
    )
    params = conninfo_to_dict(dsn)
    env = {**os.environ, "PGOPTIONS": str(params.pop("options", ""))}
    cmd = [PGBENCH, "-n", "-c", str(clients), "-j", str(clients), "-t", "1", "-f", str(script)]
    return _wall([*cmd, make_conninfo(**params)], env=env)


def run(repeat: int, scale: float) -> dict[str, Any]:
    """Every figure of the start-up table, medians of ``repeat`` runs each (the package
    byte-compiled first)."""
    import loadgen

    compiled = compileall.compile_dir(Path(loadgen.__file__).parent, quiet=1)
    with seeded(scale) as dsn, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        env = {**os.environ, "LOADGEN_DSN": dsn, "LOADGEN_LOGGING_FILE": str(tmp / "log")}
        cli = [PY, "-m", "loadgen"]

        def stream(workers: int) -> float:
            args = ["stream", "--workers", str(workers), "--max-ops", "1", "--rate", "unlimited"]
            return _wall([*cli, *args, "--no-progress"], env=env, stderr=subprocess.DEVNULL)

        def workload_load(workers: int) -> float:
            out = subprocess.run(
                [PY, "-c", _LOAD_WORKLOAD, dsn, str(workers)],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            )
            return float(out.stdout)

        cpu: dict[str, float] = {}
        figures: dict[str, Any] = {
            "python_bare_s": _median(repeat, lambda: _wall([PY, "-c", "pass"]), cpu, "bare"),
            "help_s": _median(repeat, lambda: _wall([*cli, "--help"], env=env), cpu, "help"),
            "counts_s": _median(repeat, lambda: _wall([*cli, "counts"], env=env), cpu, "counts"),
            "counts_json_s": _median(
                repeat, lambda: _wall([*cli, "counts", "--json"], env=env), cpu, "counts_json"
            ),
            "check_help_s": _median(
                repeat, lambda: _wall([*cli, "check", "--help"], env=env), cpu, "check_help"
            ),
            "stream_max_ops_1_w1_s": _median(repeat, lambda: stream(1), cpu, "stream_w1"),
            "stream_max_ops_1_w2_s": _median(repeat, lambda: stream(2), cpu, "stream_w2"),
            "pgbench_t1_c1_s": _median(repeat, lambda: _pgbench_one(dsn, 1, tmp), cpu, "pgb1"),
            "pgbench_t1_c2_s": _median(repeat, lambda: _pgbench_one(dsn, 2, tmp), cpu, "pgb2"),
            "breakdown": {
                # what the entry point imports before it spawns `stream`'s spare workers...
                "entry_imports_to_spawn_s": _median(
                    repeat, lambda: _wall([PY, "-c", _ENTRY_IMPORTS])
                ),
                # ...and before its checks, while the spares import (the other core)
                "coordinator_imports_s": _median(
                    repeat, lambda: _wall([PY, "-c", _COORDINATOR_IMPORTS])
                ),
                "worker_imports_s": _median(
                    repeat,
                    lambda: _wall([PY, "-c", "import loadgen.stream.worker, loadgen.ops.workload"]),
                ),
                "workload_load_w1_s": _median(repeat, lambda: workload_load(1)),
                "workload_load_w2_s": _median(repeat, lambda: workload_load(2)),
                # its links' part, CPU in this process (LinkState.load_many, synthetic links)
                "links_load_many_cpu_s": links_load_cpu_s(repeat, scale),
            },
        }
        figures["cpu_s"] = cpu
        figures["bytecode"] = "compiled (compileall)" if compiled else "compileall failed"
    cpu = figures["cpu_s"]
    bare = figures["python_bare_s"]
    figures["ratios"] = {
        "stream_w1_vs_pgbench_c1": round(
            figures["stream_max_ops_1_w1_s"] / figures["pgbench_t1_c1_s"], 1
        ),
        "stream_w2_vs_pgbench_c2": round(
            figures["stream_max_ops_1_w2_s"] / figures["pgbench_t1_c2_s"], 1
        ),
        "help_vs_bare_python": round(figures["help_s"] / bare, 1),
        "help_cpu_vs_bare_python": round(cpu["help"] / cpu["bare"], 1),
    }
    figures["breakdown"]["entry_imports_to_spawn_s"] -= bare
    figures["breakdown"]["coordinator_imports_s"] -= bare
    figures["breakdown"]["worker_imports_s"] -= bare
    return {k: _round(v) for k, v in figures.items()}


def _round(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return round(value, 3) if isinstance(value, float) else value


def test_startup(benchmark: Any) -> None:
    result = benchmark.pedantic(run, args=(1, 1.0), rounds=1, iterations=1)
    print(json.dumps(result, indent=2))
    assert result["help_s"] < result["stream_max_ops_1_w1_s"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=float, default=50.0)
    options = parser.parse_args()
    print(json.dumps({"startup": run(options.repeat, options.scale)}, indent=2))
