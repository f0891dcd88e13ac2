"""``loadgen scenario drop`` with no terminal: refuses (exit 2) and tells to pass --yes."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import psycopg
import pytest

from loadgen import db, scenarios
from tests.integration.test_cdc_cli import in_process

pytestmark = pytest.mark.db


def test_drop_without_terminal_needs_yes(
    dsn: str,
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with db.connect(dsn, autocommit=True) as conn:
        scenarios.ensure_tables(conn)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # piped, empty: no one to answer
    code, out, err = in_process(monkeypatch, capsys, cli_env, tmp_path, "scenario", "drop")
    assert code == 2, out + err
    assert "pass --yes" in err and "Aborted" not in out + err
    with psycopg.connect(dsn) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename LIKE 'cdc\\_%'"
        ).fetchone()[0]
    assert left > 0
    code, out, err = in_process(monkeypatch, capsys, cli_env, tmp_path, "scenario", "drop", "--yes")
    assert code == 0 and "scenario tables: cdc_" in out, out + err
