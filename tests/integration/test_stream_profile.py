"""``loadgen stream --profile cdc-edge``: the hospital load with every CDC scenario mixed in.

Real CLI subprocesses (2 workers) on a small seeded schema; ``--scenario-weight 0.5`` makes
every other slot a scenario step, so a short ``--max-ops`` run goes through all 13 scenarios
(round-robin, the two workers starting half a list apart).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import orjson
import psycopg
import pytest

from loadgen import db
from loadgen.ledger import read_ledger
from loadgen.ops.registry import BY_NAME
from loadgen.scenarios import SCENARIOS
from loadgen.stream.profiles import is_scenario_op, scenario_op_name
from tests.fixtures.cleanup import teardown_cdc
from tests.integration.test_cdc_cli import SEED_SQL, in_process
from tests.integration.test_stream import (  # noqa: F401 - fixtures
    _counts,
    _deltas,
    _run,
    env,
    seeded_dsn,
)

pytestmark = pytest.mark.db

MAX_OPS = 40  # 20 per worker, 10 of them scenario steps: 13 scenarios covered by the pair
EDGE = [
    "--profile",
    "cdc-edge",
    "--scenario-weight",
    "0.5",
    "--workers",
    "2",
    "--rate",
    "unlimited",
    "--batch-size",
    "5",
    "--max-ops",
    str(MAX_OPS),
    "--no-progress",
]


def _hospital_deltas(by_op: dict[str, int]) -> Counter[str]:
    sign = {"insert": 1, "update": 0, "delete": -1}
    deltas: Counter[str] = Counter()
    for name, count in by_op.items():
        if not is_scenario_op(name):
            for table in BY_NAME[name].tables:
                deltas[table] += sign[BY_NAME[name].kind] * count
    return +deltas


def _ledger_ops(ledger: Path) -> Counter[str]:
    return Counter(e.op_name for e in read_ledger(str(ledger)).entries)  # committed changes


def test_cdc_edge_runs_every_scenario_counts_and_ledgers_them(
    seeded_dsn: str, env: dict[str, str], tmp_path: Path
) -> None:  # noqa: F811
    before = _counts(seeded_dsn)
    result = _run(
        ["stream", *EDGE, "--seed", "3", "--summary-json", "s.json", "--ledger", "ledger"],
        env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "profile cdc-edge: 13 scenarios, one step every 2 operations" in result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    steps = {n: c for n, c in summary["by_op"].items() if is_scenario_op(n)}
    assert set(steps) == {scenario_op_name(n) for n in SCENARIOS}  # every scenario ran
    assert summary["total_ops"] == MAX_OPS == sum(summary["by_op"].values())
    assert summary["by_kind"]["scenario"] == sum(steps.values()) == MAX_OPS // 2
    assert sum(summary["by_kind"].values()) == MAX_OPS
    assert summary["errors"] == {} and summary["in_doubt"] == 0
    assert summary["profile"] == "cdc-edge"
    assert summary["scenario_steps"]["steps"] == MAX_OPS // 2
    assert summary["committed_txns"] > MAX_OPS // 2  # scenarios commit several each
    # the hospital tables changed exactly as the hospital operations say (no scenario touched)
    assert _deltas(before, _counts(seeded_dsn)) == _hospital_deltas(summary["by_op"])
    # every scenario's committed changes are in the workers' ledger parts, under its name
    ledgered = _ledger_ops(tmp_path / "ledger")
    assert {n for n in ledgered if is_scenario_op(n)} == set(steps)
    assert (
        sum(c for n, c in ledgered.items() if is_scenario_op(n))
        == summary["scenario_steps"]["row_changes"]
    )
    run_id = summary["run_id"]
    assert sorted(p.name for p in (tmp_path / "ledger").iterdir()) == [
        f"end-{run_id}.json",  # the run's end (docs/ledger.md)
        f"part-{run_id}-00000.jsonl",
        f"part-{run_id}-00001.jsonl",
    ]
    check = _run(["check"], env, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_setup_with_scenarios_stream_cdc_edge_verify(
    schema_dsn: str,
    env: dict[str, str],
    tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cdc setup --with-scenarios` → `stream --profile cdc-edge --ledger` → `cdc verify`."""
    env = {**env, "LOADGEN_DSN": schema_dsn}
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        for q in SEED_SQL:
            conn.execute(q)
    tag = uuid.uuid4().hex[:10]
    slot = f"lg_test_edge_{tag}"
    flags = ["--slot", slot, "--publication", f"lg_test_edge_pub_{tag}"]
    ledger = tmp_path / "ledger"

    def cli(*args: str) -> tuple[int, str, str]:
        return in_process(monkeypatch, capsys, env, tmp_path, *args)

    try:
        code, out, err = cli("cdc", "setup", "--with-scenarios", *flags)
        assert code == 0, err
        result = _run(["stream", *EDGE, "--seed", "9", "--ledger", str(ledger)], env, tmp_path)
        assert result.returncode == 0, result.stderr
        code, out, err = cli("cdc", "verify", "--ledger", str(ledger), "--json", *flags)
        assert code in (0, 1), err  # 0 all checks hold, 1 a check failed (listed below)
        report = orjson.loads(out)
        assert code == 0, [c for c in report["checks"] if not c["ok"]]
        counts = report["counts"]
        assert counts["matched"] == counts["ledger_changes"] > 0
        assert {n for n in _ledger_ops(ledger) if is_scenario_op(n)} == {
            scenario_op_name(n) for n in SCENARIOS
        }
    finally:
        code, out, err = cli("cdc", "teardown", *flags)
        with db.connect(schema_dsn, autocommit=True) as conn:  # teardown failed: never leave a slot
            teardown_cdc(conn, slot=slot, publication=flags[3])
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nope"], "--profile 'nope': unknown profile; allowed: default, cdc-edge"),
        (["--profile", "cdc-edge", "--scenarios", "pk-update,nope"], "unknown scenario(s) nope"),
        (["--profile", "cdc-edge", "--scenario-weight", "0"], "--scenario-weight"),
        (["--scenarios", "all"], "profile 'default' mixes no scenarios in"),
    ],
)
def test_bad_profile_input_exits_2(
    args: list[str],
    message: str,
    env: dict[str, str],
    tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = in_process(monkeypatch, capsys, env, tmp_path, "stream", *args)
    assert code == 2, out + err
    assert message in err and "Traceback" not in err
