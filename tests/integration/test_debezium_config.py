"""``cdc debezium-config``: what the real connector needs, checked against real publications."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.fixtures.capture import loadgen

pytestmark = [pytest.mark.db, pytest.mark.logical]


def _config(env: dict[str, str], cwd: Path, *args: str) -> tuple[dict[str, str], str]:
    r = loadgen(env, cwd, "cdc", "debezium-config", *args)
    assert r.returncode == 0, r.stderr
    return orjson.loads(r.stdout)["config"], r.stderr


@pytest.fixture
def env(cli_env: dict[str, str], schema_dsn: str, tmp_path: Path) -> dict[str, str]:
    tag = tmp_path.name[-12:].replace("-", "_").lower()
    return {
        **cli_env,
        "LOADGEN_CDC_PUBLICATION": f"lg_test_pub_{tag}",
        "LOADGEN_CDC_SLOT": f"lg_test_slot_{tag}",
    }


@pytest.mark.parametrize("via_root", [False, True])
def test_include_list_names_what_the_publication_sends(
    env: dict[str, str], tmp_path: Path, via_root: bool
) -> None:
    setup = ["cdc", "setup", "--with-scenarios"] + (["--via-partition-root"] if via_root else [])
    r = loadgen(env, tmp_path, *setup)
    assert r.returncode == 0, r.stderr
    try:
        cfg, _ = _config(env, tmp_path, "--with-scenarios")
        tables = {t.split(".", 1)[1] for t in cfg["table.include.list"].split(",")}
        assert {"pacientes", "cdc_laudos", "cdc_fila"} <= tables
        partitions = {t for t in tables if t.startswith("cdc_agenda_")}
        if via_root:
            assert "cdc_agenda" in tables and not partitions
        else:  # Debezium filters on the partition's name: the root alone would drop them all
            assert "cdc_agenda" not in tables and len(partitions) >= 2
        assert cfg["skipped.operations"] == "none"  # the default drops every TRUNCATE
        hospital_only, _ = _config(env, tmp_path)
        assert not any(".cdc_" in t for t in hospital_only["table.include.list"].split(","))
    finally:
        loadgen(env, tmp_path, "cdc", "teardown")


def test_port_user_and_the_masked_password_warning(env: dict[str, str], tmp_path: Path) -> None:
    params = conninfo_to_dict(env["LOADGEN_DSN"])
    params["password"] = "s3cret"  # trust auth: accepted and ignored by the test server
    env = {**env, "LOADGEN_DSN": make_conninfo(**params)}
    cfg, stderr = _config(env, tmp_path, "--db-host", "postgres", "--db-port", "6543",
                          "--db-user", "cdc_reader")  # fmt: skip
    assert (cfg["database.hostname"], cfg["database.port"], cfg["database.user"]) == (
        "postgres",
        "6543",
        "cdc_reader",
    )
    assert cfg["database.password"] == "********"
    assert "password is masked" in stderr and "--show-password" in stderr
    assert "does not exist yet" in stderr  # no `cdc setup` here: the 7 tables, and a warning
    assert len(cfg["table.include.list"].split(",")) == 7
    shown, stderr = _config(env, tmp_path, "--show-password")
    assert shown["database.password"] == "s3cret" and "password is masked" not in stderr
    r = loadgen(env, tmp_path, "cdc", "debezium-config", "--db-port", "70000")
    assert r.returncode == 2 and "--db-port" in r.stderr
