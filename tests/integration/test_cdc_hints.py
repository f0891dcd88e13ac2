"""verify explains a ledger recorded before the slot existed (a slot sees only later commits)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loadgen import db
from loadgen.cdc import slot as S
from loadgen.cdc import verify_run
from loadgen.ledger import LedgerWriter
from tests.fixtures.cleanup import teardown_cdc
from tests.integration.test_cdc_verify import txn, workload

pytestmark = pytest.mark.db


def test_missing_before_slot_creation_gets_a_hint(schema_dsn: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    slot, pub = f"lg_test_slot_{tag}", f"lg_test_pub_{tag}"
    with db.connect(schema_dsn, autocommit=True) as conn:
        try:
            with LedgerWriter(str(tmp_path / "ledger"), 0) as writer:
                workload(conn, writer)  # 11 changes, before the slot
                S.setup(conn, publication=pub, slot=slot)
                txn(
                    conn,
                    writer,
                    (
                        "medicos",
                        "c",
                        "INSERT INTO medicos (nome, crm,"
                        " especialidade) VALUES ('Dr. Após', 'CRM/SP 9', 'X')",
                        (),
                        "im",
                    ),
                )
            report = verify_run.verify_slot(
                conn, str(tmp_path / "ledger"), slot=slot, publication=pub
            )
        finally:
            teardown_cdc(conn, slot=slot, publication=pub)
    missing = next(c for c in report.checks if c.name == "missing")
    assert not missing.is_ok and missing.count == 11
    hints = [n for n in report.notes if "committed before the slot was created" in n]
    assert len(hints) == 1, report.notes
    assert hints[0].startswith("11 of the 11 missing changes") and "loadgen cdc setup" in hints[0]
