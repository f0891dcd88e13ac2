"""``cdc verify --debezium`` against real Debezium: its PostgreSQL connector (3.6.3, embedded
engine, through ``loadgen cdc capture``) captures the hospital load with every operation and
all 13 scenarios, under replica identity default and full, with and without
``--via-partition-root``; the dump verifies (exit 0, Debezium's known encoding limits listed,
not failing), and faults injected into it fail the check they should. One capture per
configuration (module-scoped).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from loadgen import db, schema
from loadgen.cdc import verify_run
from loadgen.ops.registry import OP_NAMES
from tests.fixtures.cleanup import drop_database, drop_slot, require_gone
from tests.fixtures.db import with_search_path
from tests.fixtures.dbz_capture import Capture, require_debezium

pytestmark = [pytest.mark.db, pytest.mark.java, pytest.mark.slow]


@dataclass
class Live:
    """A schema loaded while Debezium captured it: the ledger and the event dump."""

    dsn: str  # search_path = the schema
    env: dict[str, str]  # for `loadgen` subprocesses
    cwd: Path
    schema: str
    publication: str
    slot: str  # the verifier's
    dbz_slot: str
    ledger: Path
    events: Path
    database: str | None = None  # a database of its own (dropped with it), for FOR ALL TABLES

    def loadgen(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loadgen", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def verify(self, *args: str, events: Path | None = None) -> tuple[int, dict[str, Any]]:
        """``cdc verify --debezium`` (JSON); (exit code, report)."""
        r = self.loadgen(
            "cdc", "verify", "--ledger", str(self.ledger), "--debezium",
            str(events or self.events), "--json", "--examples", "50", *args,
        )  # fmt: skip
        assert r.returncode in (0, 1), r.stdout + r.stderr
        return r.returncode, orjson.loads(r.stdout)


@pytest.fixture(scope="module")
def dbz_dsn(pg_dsn: str) -> str:
    """The test server's database, for tests that need real Debezium (skipped without it)."""
    require_debezium()
    return pg_dsn


@dataclass(frozen=True)
class Setup:
    identity: str = "default"
    via_root: bool = False
    scenarios: bool = True
    all_tables: bool = False


def make_live(base_dsn: str, tmp: Path, setup: Setup, before_setup: str = "") -> Live:
    """A seeded schema with ``cdc setup`` done (``before_setup``: SQL run just before it).

    With ``setup.all_tables`` the schema lives in a database of its own: a FOR ALL TABLES
    publication covers every table of its database, so other tests' tables (one without a
    primary key, say) must not be in it. Whatever fails here drops what it made
    (``drop_live``) before raising.
    """
    tag = uuid.uuid4().hex[:10]
    name = f"lg_dbz_{tag}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
    env.pop("DATABASE_URL", None)
    database = f"lg_dbz_db_{tag}" if setup.all_tables else None
    where = make_conninfo(base_dsn, dbname=database) if database else base_dsn
    dsn = with_search_path(where, name)
    live = Live(
        dsn=dsn,
        env={
            **env,
            "LOADGEN_DSN": dsn,
            "LOADGEN_DB_CONNECT_RETRY_S": "2",
            "LOADGEN_LOGGING_FILE": str(tmp / "app.log"),
            "LOADGEN_CDC_PUBLICATION": f"lg_dbz_pub_{tag}",
            "LOADGEN_CDC_SLOT": f"lg_dbz_slot_{tag}",
            "LOADGEN_CDC_DEBEZIUM_SLOT": f"lg_dbz_dbz_{tag}",
        },
        cwd=tmp,
        schema=name,
        publication=f"lg_dbz_pub_{tag}",
        slot=f"lg_dbz_slot_{tag}",
        dbz_slot=f"lg_dbz_dbz_{tag}",
        ledger=tmp / "ledger",
        events=tmp / "events.jsonl",
        database=database,
    )
    try:
        if database is not None:
            with psycopg.connect(base_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        with psycopg.connect(where, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        with db.connect(dsn) as conn:
            schema.init(conn)
        r = live.loadgen("seed", "--scale", "0.02", "--seed", "7")
        assert r.returncode == 0, r.stderr
        if before_setup:
            with db.connect(dsn, autocommit=True) as conn:
                conn.execute(before_setup)  # type: ignore[arg-type]
        flags = ["--replica-identity", setup.identity]
        flags += ["--with-scenarios"] if setup.scenarios else []
        flags += ["--via-partition-root"] if setup.via_root else []
        flags += ["--all-tables"] if setup.all_tables else []
        r = live.loadgen("cdc", "setup", *flags)
        assert r.returncode == 0, r.stderr
    except BaseException:
        drop_live(base_dsn, live)
        raise
    return live


def drop_live(base_dsn: str, live: Live) -> None:
    """Drop everything ``make_live`` made: both slots (once their consumers let go), then the
    database of its own, or the publication and the schema.

    Raises:
        LeftBehind: any of them is still on the server (named), after every step was tried.
    """
    with psycopg.connect(base_dsn, autocommit=True) as conn:
        try:
            for slot in (live.slot, live.dbz_slot):
                drop_slot(conn, slot)
        finally:
            if live.database is not None:
                drop_database(conn, live.database)
            else:
                conn.execute(
                    sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                        sql.Identifier(live.publication)
                    )
                )
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(live.schema))
                )
        require_gone(
            conn,
            databases=[live.database] if live.database else [],
            slots=[live.slot, live.dbz_slot],
            publications=[] if live.database else [live.publication],
            schemas=[] if live.database else [live.schema],
        )


def capture_for(live: Live, **kw: Any) -> Capture:
    return Capture(
        live.env, live.cwd, publication=live.publication, slot=live.dbz_slot, out=live.events, **kw
    )


def every_operation_mix() -> str:
    return ",".join(f"{name}=10" for name in OP_NAMES)


def load_everything(live: Live) -> None:
    """Every hospital operation and all 13 scenarios, into the ledger."""
    r = live.loadgen(
        "stream", "--mix", every_operation_mix(), "--max-ops", "300", "--batch-size", "5",
        "--rate", "unlimited", "--workers", "2", "--ledger", f"{live.ledger}/", "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = live.loadgen(
        "scenario", "run", "all", "--big-txn-changes", "200", "--ledger", f"{live.ledger}/"
    )
    assert r.returncode == 0, r.stderr


CONFIGS = [
    Setup("default", via_root=False),
    Setup("default", via_root=True),
    Setup("full", via_root=False),
    Setup("full", via_root=True),
]


@pytest.fixture(
    scope="module", params=CONFIGS, ids=lambda s: f"{s.identity}-{'root' if s.via_root else 'leaf'}"
)
def captured(
    request: pytest.FixtureRequest, dbz_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    setup: Setup = request.param
    live = make_live(dbz_dsn, tmp_path_factory.mktemp("dbz"), setup)
    cap = capture_for(live)
    try:
        cap.start()
        load_everything(live)
        cap.stop()
        yield live
    finally:
        cap.close()
        drop_live(dbz_dsn, live)


def _failed(report: dict[str, Any]) -> dict[str, int]:
    return {c["name"]: c["count"] for c in report["checks"] if not c["ok"]}


def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


def test_every_operation_and_scenario_verifies_with_limits_listed(captured: Live) -> None:
    r = captured.loadgen("cdc", "verify", "--ledger", str(captured.ledger))
    assert r.returncode == 0, r.stdout[-3000:]  # the ledger itself is right (our own slot)
    code, report = captured.verify()
    assert code == 0, {c["name"]: c["examples"][:2] for c in report["checks"] if not c["ok"]}
    assert report["delivery"] == "at-least-once"
    assert report["counts"]["matched"] == report["counts"]["ledger_changes"]
    limits = _check(report, "known_limits")
    assert limits["ok"] and limits["count"] > 0
    assert {k for k in report["counts"] if k.startswith("limit ")} == {
        "limit timetz offset lost",
        "limit timestamp out of range",
        "limit 2-D array lost",
    }
    assert {e["scenario"] for e in limits["examples"]} <= {"time-extremes", "types"}
    code, strict = captured.verify("--fail-on-limits")
    assert code == 1 and _failed(strict) == {"known_limits": limits["count"]}


def _docs(live: Live) -> list[Any]:
    return [orjson.loads(line.split(b"\t")[-1]) for line in live.events.read_bytes().splitlines()]


def _write(live: Live, docs: list[Any], name: str) -> Path:
    out = live.cwd / name
    out.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    return out


def _find(docs: list[Any], op: str, table: str, pred: Any = lambda d: True) -> int:
    return next(
        i
        for i, d in enumerate(docs)
        if d and d.get("op") == op and d["source"]["table"] == table and pred(d)
    )


def test_faults_in_the_real_dump_fail_the_right_check(captured: Live) -> None:
    docs = _docs(captured)
    conn = db.connect(captured.dsn, autocommit=True)

    def failed(edited: list[Any], name: str) -> dict[str, int]:
        report = verify_run.verify_debezium(
            conn, str(captured.ledger), str(_write(captured, edited, name)),
            publication=captured.publication,
        )  # fmt: skip
        return {c.name: c.count for c in report.checks if not c.is_ok}

    with conn:
        dropped = list(docs)
        del dropped[_find(dropped, "u", "consultas")]
        assert "missing" in failed(dropped, "dropped.jsonl")

        altered = [dict(d) if d else d for d in docs]
        i = _find(altered, "c", "pacientes")
        altered[i] = {**altered[i], "after": {**altered[i]["after"], "nome": "Outro Nome"}}
        assert "values" in failed(altered, "altered.jsonl")

        swapped = list(docs)
        creates = {x["source"]["lsn"]: j for j, x in enumerate(docs) if x and x.get("op") == "c"}
        d = _find(swapped, "d", "cdc_pacientes", lambda x: x["source"]["lsn"] in creates)
        c = creates[swapped[d]["source"]["lsn"]]  # the same key change's create (same LSN)
        swapped[d], swapped[c] = swapped[c], swapped[d]
        assert failed(swapped, "swapped.jsonl") == {"order": 1}
        full = [
            i for i, x in enumerate(docs)
            if x and x.get("op") == "u" and x["source"]["table"] == "cdc_identidade_full"
            and x["before"] is not None
        ]  # fmt: skip
        no_before = [dict(x) if x else x for x in docs]
        for i in full:
            no_before[i] = {**no_before[i], "before": None}
        assert full, "FULL identity: updates carry the old row"
        assert failed(no_before, "no_before.jsonl") == {"before_images": len(full)}
