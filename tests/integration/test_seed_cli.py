"""``loadgen seed`` and ``loadgen reset`` as a user runs them (subprocess, real database)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.db


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadgen", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_reset_needs_yes_then_seed_refuses_then_appends(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    refused = run(["reset"], cli_env, tmp_path)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr and "Traceback" not in refused.stderr

    reset = run(["reset", "--yes", "--scale", "0.02", "--seed", "3"], cli_env, tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert "total" in reset.stdout and "seed 3" in reset.stdout
    assert "rows 40 of 40 (100%) of pacientes" in reset.stderr  # plain progress (not a tty)

    again = run(["seed", "--scale", "0.02"], cli_env, tmp_path)
    assert again.returncode == 2
    assert "already hold data" in again.stderr and "Traceback" not in again.stderr

    more = run(["seed", "--append", "--insert", "--scale", "0.02"], cli_env, tmp_path)
    assert more.returncode == 0, more.stderr
    assert "method insert" in more.stdout
    assert "rows 40 of 40 (100%) of pacientes" in more.stderr


def test_bad_seed_flag_exits_2_before_connecting(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "LOADGEN_DSN": "postgresql://nobody@127.0.0.1:1/nowhere"}
    result = run(["seed", "--scale", "0"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "scale" in result.stderr and "Traceback" not in result.stderr
