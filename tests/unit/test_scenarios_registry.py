"""The scenario registry as data, and the CLI's list/usage errors (no database)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen import scenarios, schema, tables
from loadgen.errors import ConfigError


def _sql_tables() -> set[str]:
    return set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema.read_sql("10_scenarios.sql")))


def test_every_scenario_is_described_and_owns_only_cdc_tables() -> None:
    assert list(scenarios.SCENARIOS)[:2] == ["toast-unchanged", "replica-identity"]
    created = _sql_tables()
    for name, s in scenarios.SCENARIOS.items():
        assert s.name == name and re.fullmatch(r"[a-z]+(-[a-z]+)*", name)
        assert s.summary and s.expect and s.tables
        for t in s.tables:
            assert t.startswith("cdc_") and t in created, (name, t)


def test_scenario_sql_never_touches_hospital_tables() -> None:
    text = schema.read_sql("10_scenarios.sql")
    for t in tables.TABLE_NAMES:
        assert not re.search(rf"\b{t}\b", text), t
    assert all(t.startswith("cdc_") for t in _sql_tables())


def test_table_names_deduplicates_and_rejects_unknown() -> None:
    names = scenarios.table_names()
    assert len(names) == len(set(names))
    assert scenarios.table_names(["toast-unchanged"]) == ["cdc_laudos"]
    assert scenarios.scenarios_of_table("cdc_pacientes") == [
        "pk-update",
        "delete-tombstone",
        "big-transaction",
    ]
    with pytest.raises(ConfigError, match="unknown.*toast-unchanged"):
        scenarios.get("toast")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-scenario"], "scenario 'no-such-scenario': unknown"),
        (["toast-unchanged", "--repeat", "0"], "--repeat 0: must be 1..1,000"),
    ],
)
def test_cli_bad_input_exits_2_before_connecting(
    args: list[str], message: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG"))}
    env["LOADGEN_LOGGING_FILE"] = str(tmp_path / "app.log")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgen",
            "--dsn",
            "postgresql://nobody@127.0.0.1:1/x",
            "scenario",
            "run",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
