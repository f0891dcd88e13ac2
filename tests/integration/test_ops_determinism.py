"""The same seed gives the same workload: same operations, rows and values, in any process.

``loadgen stream`` prints its seed "so a run can be repeated": a worker's workload must then
draw the same operations, pick the same rows and generate the same values. Two processes with
different hash seeds (``PYTHONHASHSEED``: set and dict-of-str order) run the same fixed-seed
workload on identically seeded tables; their ledgers must be equal (dates apart: they follow
the clock), and a different seed must give a different one.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import psycopg
import pytest

from loadgen import db, schema
from loadgen.ops.mix import parse_mix
from loadgen.ops.workload import Workload
from tests.integration.test_ops_workload import run_batches, seed_small

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[2]
MIX = "insert=1,update=1,delete=1,insert_paciente_convenio=1,admit_paciente=1"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def ledger_fingerprint(dsn: str, seed: int) -> dict[str, object]:
    """Re-create and seed the tables, run a fixed-seed workload; a digest of what it changed.

    Worker 1 of 2 (ownership by id), a rolled-back batch retried, 12 batches of 25. Values that
    are dates or timestamps are left out of the digest (they depend on the clock).
    """
    with db.connect(dsn, autocommit=True) as conn:
        schema.init(conn, drop=True)
        seed_small(conn)
        work = Workload(conn, worker_id=1, num_workers=2, seed=seed, mix=parse_mix(MIX))
        names = work.choose(25)
        with conn.transaction() as tx:
            work.execute(conn, names)
            raise psycopg.Rollback(tx)
        work.on_rollback()
        changes = run_batches(conn, work, batches=12, size=25)
    digest = hashlib.sha256()
    for c in changes:
        after = sorted(
            (k, None if v is not None and _DATE.match(v) else v) for k, v in (c.after or {}).items()
        )
        digest.update(orjson.dumps([c.table, c.op, c.pk, c.op_name, after]))
    return {
        "digest": digest.hexdigest(),
        "num_changes": len(changes),
        "op_names": sorted({c.op_name for c in changes}),
    }


def _in_subprocess(dsn: str, seed: int, hash_seed: str) -> dict[str, object]:
    code = (
        "import sys, orjson\n"
        "from tests.integration.test_ops_determinism import ledger_fingerprint\n"
        "got = ledger_fingerprint(sys.argv[1], int(sys.argv[2]))\n"
        "sys.stdout.write(orjson.dumps(got).decode())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run(
        [sys.executable, "-c", code, dsn, str(seed)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def test_same_seed_same_ledger_in_two_processes_other_seed_differs(schema_dsn: str) -> None:
    first = _in_subprocess(schema_dsn, 5, hash_seed="1")
    second = _in_subprocess(schema_dsn, 5, hash_seed="2")
    assert first["num_changes"] and len(first["op_names"]) == 12  # type: ignore[arg-type]
    assert first == second
    other = ledger_fingerprint(schema_dsn, 6)
    assert other["digest"] != first["digest"]
