"""Proof on one machine: a run split into 3 shards, each its own `loadgen` process.

Seeded in 3 shards, then streamed by 3 shard processes at once against one schema, each with its
own ledger; the merged ledgers verify against one pgoutput slot (exit 0) — and one shard's
ledger missing makes it fail — the shards never touched one another's rows, and the merged
summary's row changes are exactly the database's deltas.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson
import psycopg
import pytest

from loadgen import schema
from loadgen.ledger import read_ledger
from loadgen.ops.registry import OP_NAMES
from tests.integration.test_cdc_cli import loadgen, names  # noqa: F401 (fixture)

pytestmark = [pytest.mark.db, pytest.mark.slow, pytest.mark.logical]

N = 3
OPS = 900  # in total: 300 per shard


def _counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return schema.counts(conn)


def test_three_shards_verify_as_one_run(
    schema_dsn: str, cli_env: dict[str, str], tmp_path: Path, names: tuple[str, str]
) -> None:
    slot, pub = names
    seeds = [
        subprocess.Popen(
            [sys.executable, "-m", "loadgen", "seed", "--shard", f"{i}/{N}", "--scale", "0.05"]
            + ["--seed", "11", "--workers", "1"],
            env=cli_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(N)
    ]
    for p in seeds:  # the shards seed at once: ids come from the sequences
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    seeded = _counts(schema_dsn)
    assert seeded["pacientes"] == 100 and seeded["consultas"] == 200  # 0.05 x 2000, 4000
    r = loadgen(cli_env, tmp_path, "check", "--json")  # natural keys unique, FKs whole
    assert r.returncode == 0, r.stdout + r.stderr

    flags = ["--slot", slot, "--publication", pub]
    # creating a slot waits for every transaction running on the server (a shared one: long)
    r = loadgen(cli_env, tmp_path, "cdc", "setup", *flags, timeout_s=600)
    assert r.returncode == 0, r.stderr
    before = _counts(schema_dsn)
    mix = ",".join(f"{name}=1" for name in OP_NAMES)
    streams = [
        subprocess.Popen(
            [sys.executable, "-m", "loadgen", "stream", "--shard", f"{i}/{N}", "--workers", "2"]
            + ["--rate", "600/s", "--max-ops", str(OPS), "--batch-size", "5", "--mix", mix]
            + ["--seed", "5", "--no-progress", "--ledger", str(tmp_path / "ledgers" / f"s{i}")]
            + ["--summary-json", str(tmp_path / f"summary-{i}.json")],
            env=cli_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(N)
    ]
    for p in streams:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    after = _counts(schema_dsn)

    # the merged ledgers against one slot: every shard's changes, nothing else
    ledgers = tmp_path / "ledgers"
    r = loadgen(cli_env, tmp_path, "cdc", "verify", "--ledger", str(ledgers), "--json", *flags)
    assert r.returncode == 0, r.stdout + r.stderr
    report = orjson.loads(r.stdout)
    contents = [read_ledger(str(ledgers / f"s{i}")) for i in range(N)]
    assert report["counts"]["matched"] == sum(len(c.entries) for c in contents)
    two = [arg for i in range(2) for arg in ("--ledger", str(ledgers / f"s{i}"))]
    r = loadgen(cli_env, tmp_path, "cdc", "verify", *two, *flags)
    assert r.returncode == 1 and "FAIL unexpected" in r.stdout  # shard 2's changes: unknown

    # disjoint rows: no key changed by two shards (inserts included: a row one shard inserted is
    # never another's, so no key's order spans two hosts' clocks); updates and deletes of the
    # rows present before are each shard's residue
    touched: dict[tuple[str, int], set[int]] = defaultdict(set)
    num_updates = 0
    for i, c in enumerate(contents):
        for e in c.entries:
            touched[(e.table, e.pk)].add(i)
            if e.op in ("u", "d") and e.table != "pacientes_convenios":
                num_updates += 1
                assert e.pk % N == i, (e.table, e.pk, i)
    assert num_updates > 50 and all(len(shards) == 1 for shards in touched.values())

    # the merged summary: the run's totals, equal to what the database changed
    r = loadgen(cli_env, tmp_path, "summary", "merge", *(f"summary-{i}.json" for i in range(N)))
    assert r.returncode == 0, r.stderr
    merged = orjson.loads(r.stdout)
    assert merged["total_ops"] + merged["no_op"]["total"] == OPS and merged["errors"] == {}
    assert merged["workers"] == 2 * N and merged["merged"]["missing_shards"] == []
    assert merged["histograms"]["latency_ns"]["count"] == OPS
    for table in after:
        rows = merged["row_changes"].get(table, {"insert": 0, "delete": 0})
        assert rows["insert"] - rows["delete"] == after[table] - before[table], table
    ledger_rows = defaultdict(int)
    for c in contents:
        for e in c.entries:
            ledger_rows[(e.table, e.op)] += 1
    for table, rows in merged["row_changes"].items():
        assert rows["insert"] == ledger_rows[(table, "c")], table
        assert rows["update"] == ledger_rows[(table, "u")], table
        assert rows["delete"] == ledger_rows[(table, "d")], table


def test_shards_share_the_first_shards_watermarks(schema_dsn: str) -> None:
    """The record of the rows present before a split run: read back exactly by a sibling,
    gone when no shard holds it (``loadgen.stream.shard_claims``)."""
    from loadgen import db, tables
    from loadgen.stream import shard_claims
    from loadgen.stream.ownership import schema_key

    marks = {name: (7 << 50) + 12345 * (i + 1) for i, name in enumerate(tables.TABLE_NAMES)}
    marks["convenios"] = 0
    with db.connect(schema_dsn, autocommit=True) as first:
        key = schema_key(first)
        assert shard_claims.shared_watermarks(first, key) is None
        shard_claims.hold_watermarks(first, key, marks)
        with db.connect(schema_dsn, autocommit=True) as second:
            assert shard_claims.shared_watermarks(second, key) == marks
            shard_claims.hold_watermarks(second, key, marks)
            first.close()  # the first shard ends: the second keeps the record alive
            with db.connect(schema_dsn, autocommit=True) as third:
                assert shard_claims.shared_watermarks(third, key) == marks
    with db.connect(schema_dsn, autocommit=True) as later:
        assert shard_claims.shared_watermarks(later, schema_key(later)) is None
