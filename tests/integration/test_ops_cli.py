"""``loadgen ops list`` as a user runs it: the registry's operations, a mix's shares, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from loadgen.ops.mix import parse_mix
from loadgen.ops.registry import OPERATIONS

ENV = {"PATH": "/usr/bin:/bin", "LOADGEN_LOGGING_FILE": ""}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadgen", "ops", "list", *args],
        env=ENV,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_json_lists_every_registered_operation_with_a_mixs_weights(tmp_path: Path) -> None:
    spec = "insert=70,update=30,delete_consulta=5"
    result = run(["--json", "--mix", spec], tmp_path)
    assert result.returncode == 0, result.stderr
    listed = orjson.loads(result.stdout)
    assert [e["name"] for e in listed] == [op.name for op in OPERATIONS]
    weights = parse_mix(spec)
    for entry, op in zip(listed, OPERATIONS, strict=True):
        assert (entry["kind"], entry["tables"]) == (op.kind, list(op.tables))
        assert entry["default_weight"] == op.default_weight
        assert entry["weight"] == pytest.approx(weights[op.name])
    assert sum(e["share"] for e in listed) == pytest.approx(1.0)
    delete_consulta = next(e for e in listed if e["name"] == "delete_consulta")
    assert delete_consulta["share"] == pytest.approx(5 / 105)


def test_text_has_one_row_per_operation_and_shares_under_a_mix(tmp_path: Path) -> None:
    result = run(["--mix", "admit_paciente=1,update_exame=3"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    for op in OPERATIONS:
        assert ", ".join(op.tables) in rows[op.name]
    assert "25.0 %" in rows["admit_paciente"] and "75.0 %" in rows["update_exame"]
    assert " 0.0 %" in rows["insert_consulta"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--mix", "insert=abc"], "--mix: weight 'abc'"),
        (["--mix", "bogus=1"], "unknown operation 'bogus'"),
        (["--json", "--markdown"], "at most one"),
        (["--markdown", "--mix", "insert=1"], "leave out --mix"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    result = run(args, tmp_path)
    assert result.returncode == 2
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
