"""The CLI as a user runs it: exit codes, one-line errors, no tracebacks, masked secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.db
def test_init_again_keeps_the_data_and_the_checks_pass(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    first = run(["init"], cli_env, tmp_path)
    assert first.returncode == 0, first.stderr
    seeded = run(["seed", "--scale", "0.01", "--seed", "3"], cli_env, tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    before = run(["counts", "--json"], cli_env, tmp_path)
    second = run(["init"], cli_env, tmp_path)  # idempotent: no lookup row twice, nothing dropped
    assert second.returncode == 0, second.stderr
    after = run(["counts", "--json"], cli_env, tmp_path)
    assert after.returncode == 0 and json.loads(after.stdout) == json.loads(before.stdout)
    assert json.loads(after.stdout)["convenios"] == 12 and json.loads(after.stdout)["pacientes"] > 0
    check = run(["check"], cli_env, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.db
def test_commands_before_init_exit_3_with_fix(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run(["counts"], cli_env, tmp_path)
    assert result.returncode == 3
    assert "loadgen init" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_database_exit_3_password_masked(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "LOADGEN_DB_CONNECT_RETRY_S": "1", "LOADGEN_LOGGING_FILE": ""}
    result = run(["--dsn", "postgresql://alice:hunter2@127.0.0.1:1/x", "counts"], env, tmp_path)
    assert result.returncode == 3
    assert "hunter2" not in result.stderr + result.stdout
    assert "alice:***@127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "files", "needle"),
    [
        (["counts", "--bogus"], {}, "No such option"),
        (["counts"], {"config/settings.toml": "[db]\nport = 'x'\n"}, "db.port = 'x'"),
        (["counts"], {"config/settings.toml": "[stream\n"}, "not valid TOML"),
        (["--config", "missing.toml", "counts"], {}, "missing.toml"),
        (["counts"], {"config/.env": "BATCH_SIZE=-3\n"}, "stream.batch_size = -3"),
    ],
)
def test_bad_input_exit_2_one_line(
    tmp_path: Path, args: list[str], files: dict[str, str], needle: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {"PATH": "/usr/bin:/bin", "LOADGEN_LOGGING_FILE": ""}
    result = run(args, env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://alice:S3cretPW@[::1/x",  # libpq quotes the whole URI in its message
        "postgresql://alice:S3cret%PW@127.0.0.1/x",  # ... or the bad percent-encoded token
        "postgresql://alice:S3cretPW@127.0.0.1:notaport/x",
        "host=127.0.0.1 port=99999 password=S3cretPW",
    ],
)
def test_malformed_dsn_exit_2_password_never_shown(tmp_path: Path, dsn: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "LOADGEN_LOGGING_FILE": ""}
    result = run(["--dsn", dsn, "counts"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "S3cret" not in result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "invalid DSN" in result.stderr
