"""The embedded server also listens on loopback TCP (Debezium's JDBC driver needs it), on a
port chosen once and kept across restarts; `db url --tcp` and `db status` say so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from loadgen import embedded

pytestmark = [pytest.mark.db, pytest.mark.slow]


def _db(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
    env.pop("DATABASE_URL", None)
    env.update({"LOADGEN_DB_EMBEDDED_DIR": str(home), "LOADGEN_LOGGING_FILE": str(home / "log")})
    return subprocess.run(
        [sys.executable, "-m", "loadgen", "db", *args],
        env=env, cwd=home, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_tcp_port_is_chosen_once_and_kept_across_restarts() -> None:
    home = Path(tempfile.mkdtemp(prefix="loadgen-test-tcp-"))
    try:
        assert _db(home, "start").returncode == 0
        first = embedded.status(home)
        assert first.tcp_host == "127.0.0.1" and first.port
        tcp = _db(home, "url", "--tcp").stdout.strip()
        assert tcp == f"postgresql://postgres@127.0.0.1:{first.port}/teste_pacientes"
        with psycopg.connect(tcp.rsplit("/", 1)[0] + "/postgres") as conn:  # really over TCP
            assert conn.execute("SELECT inet_server_port()").fetchone() == (first.port,)
        with psycopg.connect(embedded.url(home)) as conn:  # and still on the Unix socket
            assert conn.execute("SELECT inet_server_port()").fetchone() == (None,)
        status = _db(home, "status")
        assert f"tcp 127.0.0.1:{first.port}" in status.stdout and tcp in status.stdout
        assert _db(home, "stop").returncode == 0
        assert _db(home, "start").returncode == 0
        assert embedded.status(home).port == first.port
        assert (home / "tcp_port").read_text().strip() == str(first.port)
    finally:
        _db(home, "stop")
        shutil.rmtree(home, ignore_errors=True)
