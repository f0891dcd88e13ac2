"""The scenario registry as data, and the CLI's list/usage errors (no database)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from loadgen import scenarios, schema, tables
from loadgen.cli import app
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
    with pytest.raises(ConfigError, match="unknown.*toast-unchanged"):
        scenarios.get("toast")


def test_cli_list_and_bad_input() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["scenario", "list"])
    assert out.exit_code == 0
    for name in scenarios.SCENARIOS:
        assert name in out.output
    bad = runner.invoke(app, ["--dsn", "postgresql://nobody@127.0.0.1:1/x", "scenario", "run",
                              "no-such-scenario"])
    # main() maps the ConfigError to exit 2; it is raised before any connection is tried
    assert isinstance(bad.exception, ConfigError) and "no-such-scenario" in str(bad.exception)
    bad = runner.invoke(app, ["--dsn", "postgresql://nobody@127.0.0.1:1/x", "scenario", "run",
                              "toast-unchanged", "--repeat", "0"])
    assert isinstance(bad.exception, ConfigError) and "--repeat 0" in str(bad.exception)
