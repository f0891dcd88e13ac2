"""SIGINT and SIGTERM as a user sends them: real ``loadgen`` processes, real signals.

While Python starts (before any command runs) a signal is one line and exit 4, or for
``stream`` a graceful stop (exit 0, summary). A seed interrupted mid-load leaves the tables as
they were, or its message names the command that gets back there, and that command works.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from loadgen import db, schema, seed
from tests.fixtures.capture import CdcEnv, cdc_env, require_debezium

pytestmark = pytest.mark.db


def _popen(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadgen", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until_catching_sigterm(pid: int, timeout_s: float = 30) -> None:
    """Until the process handles SIGTERM (the entry point's first line ran: Python is up, the
    CLI's imports are not done). SIGINT cannot tell: Python catches it from the start."""
    deadline = time.monotonic() + timeout_s
    bit = 1 << (signal.SIGTERM - 1)
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            raise AssertionError("the process ended before it handled signals") from None
        caught = int(
            next(ln for ln in status.splitlines() if ln.startswith("SigCgt:")).split()[1], 16
        )
        if caught & bit:
            return
        time.sleep(0.001)
    raise AssertionError("the process never installed its SIGTERM handler")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize(
    ("args", "code"), [(["counts"], 4), (["stream", "--rate", "5/s", "--no-progress"], 0)]
)
def test_signal_while_python_starts(
    sig: signal.Signals, args: list[str], code: int, cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc = _popen(args, cli_env, tmp_path)
    try:
        _wait_until_catching_sigterm(proc.pid)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    if args[0] == "stream":  # the run stops before it starts: an empty summary, exit 0
        assert "summary (stopped)" in stdout, stdout + stderr
    else:
        assert stderr.splitlines() == [
            f"loadgen: error: interrupted by {sig.name} while starting; nothing was done"
        ]


def test_importing_the_cli_installs_no_signal_handler(tmp_path: Path) -> None:
    """Under `pytest -k stream` (argv holds "stream") importing the CLI once replaced pytest's
    SIGINT handler; handlers belong to commands."""
    code = (
        "import signal, sys; sys.argv = ['pytest', '-k', 'stream'];"
        "before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)];"
        "import loadgen.cli, loadgen.cli.stream_cmd;"
        "after = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)];"
        "sys.exit(0 if before == after else 1)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, timeout=60)
    assert result.returncode == 0


def _counts_and_indexes(dsn: str) -> tuple[dict[str, int], int]:
    with db.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
        ).fetchone()
        return schema.counts(conn), int(row[0]) if row else 0


def _interrupt_mid_load(
    proc: subprocess.Popen[str], sig: signal.Signals, timeout_s: float = 120
) -> tuple[str, str]:
    """Send ``sig`` once the seed committed pacientes and is loading a later table."""
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if re.match(r"rows [1-9]\d* of \d+ .* of (pacientes_convenios|consultas)", line):
            proc.send_signal(sig)
            stdout, rest = proc.communicate(timeout=timeout_s)
            return stdout, "".join(seen) + rest
    proc.kill()
    raise AssertionError("the seed never reached pacientes_convenios: " + "".join(seen))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "append"), [(signal.SIGINT, False), (signal.SIGTERM, True)], ids=["empty", "append"]
)
def test_interrupted_seed_rolls_back_or_says_how(
    sig: signal.Signals, append: bool, schema_dsn: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    if append:
        seed.seed(schema_dsn, seed.SeedOptions(scale=0.05, workers=1, seed=5))
    before = _counts_and_indexes(schema_dsn)
    args = ["seed", "--scale", "50", "--workers", "2", *(["--append"] if append else [])]
    proc = _popen(args, cli_env, tmp_path)
    stdout, stderr = _interrupt_mid_load(proc, sig)
    errors = [line for line in stderr.splitlines() if line.startswith("loadgen: error:")]
    assert proc.returncode == 4, stderr
    assert "Traceback" not in stderr and len(errors) == 1, stderr
    assert errors[0].startswith(f"loadgen: error: seed interrupted by {sig.name}; ")
    if "rolled back: the tables are as they were before this seed" in errors[0]:
        assert _counts_and_indexes(schema_dsn) == before
        again = ["seed", "--scale", "0.05", *(["--append"] if append else [])]
        recover = subprocess.run(
            [sys.executable, "-m", "loadgen", *again],
            env=cli_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    else:  # the message names the way out; it must work
        command = re.search(r"`(loadgen reset --yes[^`]*)`", errors[0])
        assert command, errors[0]
        recover = subprocess.run(
            [sys.executable, "-m", "loadgen", *command.group(1).split()[1:]],
            env=cli_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert recover.returncode == 0, recover.stderr
    check = subprocess.run(
        [sys.executable, "-m", "loadgen", "check"],
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    with psycopg.connect(schema_dsn) as conn:  # sequences past every id: a stream can insert
        row = conn.execute(
            "SELECT last_value >= (SELECT max(id) FROM pacientes) FROM pacientes_id_seq"
        ).fetchone()
        assert row is not None and row[0]


@pytest.fixture(scope="module")
def cdc(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdcEnv]:
    require_debezium()
    yield from cdc_env(pg_dsn, tmp_path_factory.mktemp("capture-signal"))


@pytest.mark.logical
@pytest.mark.java
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_python_starts_stops_a_capture_cleanly(
    sig: signal.Signals, cdc: CdcEnv
) -> None:
    """`cdc capture` stops gracefully on a signal like `stream`: one received while Python
    starts is handed to it, not turned into an error."""
    out = cdc.cwd / f"startup-{sig.name}.jsonl"
    proc = _popen(["cdc", "capture", "--out", str(out)], cdc.env, cdc.cwd)
    try:
        _wait_until_catching_sigterm(proc.pid)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, stdout + stderr
    assert f"signal {sig.name}" in stdout, stdout
    assert "Traceback" not in stderr and "error" not in stderr, stderr
