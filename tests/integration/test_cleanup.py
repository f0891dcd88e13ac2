"""The tests' own cleanup (``tests.fixtures.cleanup``) on a real server: a slot still streamed
to is freed and dropped with a warning naming its holder, a database with a session and a slot
is dropped, what stays is named, and a run that leaves a database fails at its end naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.fixtures.cleanup import (
    HolderTerminated,
    LeftBehind,
    ServerInventory,
    drop_database,
    drop_slot,
    require_gone,
    wait_until,
)

pytestmark = [pytest.mark.db, pytest.mark.logical]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def admin(pg_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def test_a_slot_still_held_is_freed_dropped_and_its_holder_named(
    pg_dsn: str, admin: psycopg.Connection
) -> None:
    """A backend creating a slot holds it (active) until every running transaction ends: here
    one never ends, so the holder stays; drop_slot terminates it, the slot goes, and the
    warning names the slot and the holder's application_name."""
    slot = f"lg_test_cl_{_tag()}"
    blocker = psycopg.connect(pg_dsn)
    blocker.execute("SELECT pg_current_xact_id()")  # a transaction with an xid, left open
    holder = psycopg.connect(make_conninfo(pg_dsn, application_name="lg-test-holder"))
    failures: list[BaseException] = []

    def create() -> None:
        try:
            holder.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        except psycopg.Error as exc:
            failures.append(exc)

    creator = threading.Thread(target=create)
    creator.start()
    try:
        assert wait_until(lambda: _active_pid(admin, slot) is not None, 30)
        with pytest.warns(HolderTerminated, match=rf"slot {slot}: .*'lg-test-holder'"):
            drop_slot(admin, slot, timeout_s=0.5)
        creator.join(30)
        assert not creator.is_alive() and len(failures) == 1  # the holder was terminated
        require_gone(admin, slots=[slot])
    finally:
        blocker.close()
        creator.join(30)
        holder.close()
        drop_slot(admin, slot)


def _active_pid(conn: psycopg.Connection, slot: str) -> int | None:
    row = conn.execute(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    return None if row is None else row[0]


def test_a_database_with_a_session_and_a_slot_is_dropped(
    pg_dsn: str, admin: psycopg.Connection
) -> None:
    name, slot = f"lg_test_cl_db_{_tag()}", f"lg_test_cl_{_tag()}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    session = psycopg.connect(make_conninfo(pg_dsn, dbname=name), autocommit=True)
    try:
        session.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        drop_database(admin, name)
        require_gone(admin, databases=[name], slots=[slot])
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")  # terminated
    finally:
        session.close()
        drop_database(admin, name)


def test_what_stays_is_named(admin: psycopg.Connection) -> None:
    name = f"lg_test_cl_{_tag()}"
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        with pytest.raises(LeftBehind, match=f"schema {name}$"):
            require_gone(admin, schemas=[name, "lg_test_cl_never_made"], slots=["lg_never"])
        before = ServerInventory.take(admin.info.dsn)
        admin.execute(sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(name)))
        assert f"publication {name}" in ServerInventory.take(admin.info.dsn).new_since(before)
    finally:
        admin.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(name)))


def test_a_run_that_leaves_a_database_fails_naming_it(
    pg_dsn: str, admin: psycopg.Connection, tmp_path: Path
) -> None:
    """An inner pytest run (CI, so nobody else's objects can be on the server) whose test
    forgets its database: the run errors at its end, naming the database."""
    name = f"lg_test_cl_db_{_tag()}"
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.fixtures.db"]\n')
    (tmp_path / "test_leak.py").write_text(
        "import psycopg\n"
        "def test_leaks(pg_dsn):\n"
        "    with psycopg.connect(pg_dsn, autocommit=True) as conn:\n"
        f"        conn.execute('CREATE DATABASE {name}')\n"
    )
    env = {**os.environ, "CI": "true", "LOADGEN_TEST_DSN": pg_dsn, "PYTHONPATH": str(REPO)}
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert r.returncode == 1, r.stdout + r.stderr
        assert "1 passed, 1 error" in r.stdout, r.stdout
        (line,) = [x for x in r.stdout.splitlines() if x.startswith("E   ") and "LeftBehind" in x]
        assert "the test run left on the server: " in line and f"database {name}" in line, line
    finally:
        drop_database(admin, name)
