"""The committed samples of real Debezium output hold what `cdc capture` promises.

No Java, no database: each sample's events are compared with its own ledger. These are the
capture's guarantees (every committed change delivered, redeliveries exact, TRUNCATE passed
on, partition naming as the publication says, the snapshot read), not the reader's.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from loadgen.cdc import debezium
from tests.fixtures.debezium_samples import Sample, sample_names

NAMES = sample_names()
EXPECTED = {
    "hospital",
    "scenarios-default-root",
    "scenarios-default-leaf",
    "scenarios-full-root",
    "scenarios-full-leaf",
    "sigkill-restart",
    "snapshot-initial",
}


def _docs(sample: Sample) -> list[dict[str, Any] | None]:
    return [debezium.parse_line(line) for line in sample.event_lines()]


def _key(doc: dict[str, Any], roots: dict[str, str]) -> tuple[int, str, int, str]:
    src = doc["source"]
    table = roots.get(src["table"], src["table"])
    if doc["op"] == "t":
        return (int(src["txId"]), table, 0, "t")
    row = doc["before"] if doc["op"] == "d" else doc["after"]
    return (int(src["txId"]), table, int(row.get("id", -1)), doc["op"])


def _ledger_keys(sample: Sample) -> Counter[tuple[int, str, int, str]]:
    keys: Counter[tuple[int, str, int, str]] = Counter()
    for r in sample.ledger_records():
        pk = 0 if r["op"] == "t" else int(r["pk"])
        keys[(int(r["txid"]) % 2**32, r["table"], pk, r["op"])] += 1
    return keys


def test_every_sample_is_there_and_was_made_by_debezium_3_6() -> None:
    assert set(NAMES) == EXPECTED
    for name in NAMES:
        m = Sample(name).manifest
        assert m["debezium"].startswith("3.6.3.Final") and m["verify_pgoutput_exit"] == 0


@pytest.mark.parametrize("name", NAMES)
def test_lines_parse_and_carry_their_source(name: str) -> None:
    sample = Sample(name)
    docs = _docs(sample)
    assert docs and sum(d is None for d in docs) == sample.manifest["lines_by_op"].get("null", 0)
    for doc in docs:
        if doc is not None:
            assert doc["op"] in "cudrt" and doc["source"]["schema"] == sample.context["schema"]
            assert doc["source"]["version"] == "3.6.3.Final"


@pytest.mark.parametrize("name", NAMES)
def test_every_ledger_change_was_delivered(name: str) -> None:
    """At least once: ledger changes minus events is empty. Debezium turns a primary-key
    update into delete + create and fills a USING INDEX delete's id with 0, so those are
    matched by transaction and table."""
    sample = Sample(name)
    roots = sample.context["partition_roots"]
    docs = [d for d in _docs(sample) if d is not None]
    events = Counter(_key(d, roots) for d in docs if d["op"] != "r")
    read_rows = {(d["source"]["table"], d["after"]["id"]) for d in docs if d["op"] == "r"}
    by_txn_table = Counter((k[0], k[1]) for k in events.elements())
    missing = _ledger_keys(sample) - events
    for (txid, table, pk, op), n in missing.items():
        if (table, pk) in read_rows:  # committed before the snapshot: read, not streamed
            continue
        assert op in "ud", (txid, table, op)  # pk update / USING INDEX only
        assert by_txn_table[(txid, table)] >= n, (txid, table)


def test_sigkill_restart_redelivered_exact_copies() -> None:
    sample = Sample("sigkill-restart")
    lines = [line for line in sample.event_lines() if line != b"null"]
    by_position: dict[tuple[int, int, str, str], bytes] = {}
    redelivered = 0
    for line in lines:
        doc = orjson.loads(line)
        row = doc["before"] if doc["op"] == "d" else doc["after"]
        key = (doc["source"]["txId"], doc["source"]["lsn"], doc["source"]["table"], str(row))
        if key in by_position:
            redelivered += 1
            assert orjson.loads(by_position[key])["after"] == doc["after"]
        by_position[key] = line
    assert redelivered > 0 and redelivered == sample.manifest["redelivered_events"]


@pytest.mark.parametrize("name", ["scenarios-default-root", "scenarios-full-leaf"])
def test_truncates_arrive(name: str) -> None:
    """skipped.operations=none: Debezium's default would have dropped every TRUNCATE."""
    sample = Sample(name)
    truncated = {d["source"]["table"] for d in _docs(sample) if d and d["op"] == "t"}
    ledger = {r["table"] for r in sample.ledger_records() if r["op"] == "t"}
    assert ledger and truncated == ledger


@pytest.mark.parametrize(
    ("name", "under_partitions"),
    [("scenarios-default-root", False), ("scenarios-default-leaf", True)],
)
def test_partitioned_changes_arrive_under_the_names_the_publication_uses(
    name: str, under_partitions: bool
) -> None:
    sample = Sample(name)
    roots = sample.context["partition_roots"]
    assert roots, "the partitioned scenario's partitions"
    tables = {d["source"]["table"] for d in _docs(sample) if d is not None}
    assert bool(tables & set(roots)) is under_partitions
    assert (set(roots.values()) <= tables) is not under_partitions


def test_snapshot_reads_every_table_then_streams() -> None:
    sample = Sample("snapshot-initial")
    docs = [d for d in _docs(sample) if d is not None]
    reads = [d for d in docs if d["op"] == "r"]
    first_stream = next(i for i, d in enumerate(docs) if d["op"] != "r")
    assert all(d["op"] == "r" for d in docs[:first_stream]) and reads
    assert all(d["op"] != "r" for d in docs[first_stream:])  # no read after streaming began
    read_tables = Counter(d["source"]["table"] for d in reads)
    seeded = {t for t, body in sample.context["tables"].items() if body["rows"]}
    assert set(read_tables) == seeded
    assert all(
        d["source"]["snapshot"]
        in ("first", "true", "last", "first_in_data_collection", "last_in_data_collection")
        for d in reads
    )
