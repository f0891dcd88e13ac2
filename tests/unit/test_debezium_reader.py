"""The Debezium reader on committed real Debezium 3.6.3 output (``tests/data/debezium``): every
sample verifies against its own ledger (final state aside: no database here), and each fault
injected into a real dump fails the check that names it.

The samples were captured from a real connector by the capture tooling, not written by hand;
their README says how. Faults are edits of the real lines (an event dropped, a value altered,
a before-image removed, a key change's halves swapped, a snapshot read removed, a redelivery
altered).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.debezium_reader import check, failed, verify_sample
from tests.fixtures.debezium_samples import Sample, sample_names


def _docs(sample: Sample) -> list[Any]:
    return [orjson.loads(line) for line in sample.event_lines()]


def _write(tmp_path: Path, docs: list[Any], name: str = "faulty.jsonl") -> Path:
    out = tmp_path / name
    out.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    return out


def _find(docs: list[Any], op: str, table: str, pred: Any = lambda d: True) -> int:
    return next(
        i
        for i, d in enumerate(docs)
        if d and d.get("op") == op and d["source"]["table"] == table and pred(d)
    )


@pytest.mark.parametrize("name", sample_names())
def test_every_real_sample_verifies(name: str, tmp_path: Path) -> None:
    report = verify_sample(Sample(name), tmp_path)
    assert failed(report) == {}, {c.name: c.examples[:2] for c in report.checks if not c.is_ok}
    assert report.counts["matched"] > 0
    assert "final state not checked (no database connection)" in report.notes


def test_known_limits_are_listed_not_failed(tmp_path: Path) -> None:
    """time-extremes and types hit Debezium's documented encoding limits: counted under
    known_limits by behaviour, never as values failures."""
    report = verify_sample(Sample("scenarios-default-root"), tmp_path)
    limits = check(report, "known_limits")
    assert limits.is_ok and limits.is_limit and limits.count > 0
    by_limit = {k[6:] for k in report.counts if k.startswith("limit ")}
    assert by_limit == {"timetz offset lost", "timestamp out of range", "2-D array lost"}
    cols = {col for e in limits.examples for col in e["differences"]}
    assert "hora_tz" in cols
    assert check(report, "values").count == 0


def test_value_altered_fails_values_not_limits(tmp_path: Path) -> None:
    sample = Sample("hospital")
    docs = _docs(sample)
    i = _find(docs, "u", "consultas")
    docs[i]["after"]["motivo"] = "alterado no caminho"
    report = verify_sample(sample, tmp_path, events=_write(tmp_path, docs))
    assert failed(report) == {"values": 1}
    example = check(report, "values").examples[0]
    assert example["table"] == "consultas" and list(example["differences"]) == ["motivo"]


def test_event_dropped_fails_missing(tmp_path: Path) -> None:
    sample = Sample("hospital")
    docs = _docs(sample)
    i = _find(docs, "c", "pacientes")
    pk = docs[i]["after"]["id"]
    del docs[i]
    report = verify_sample(sample, tmp_path, events=_write(tmp_path, docs))
    assert "missing" in failed(report)
    assert any(
        e["table"] == "pacientes" and e["pk"] == pk for e in check(report, "missing").examples
    )


def test_full_before_image_dropped_fails_before_images(tmp_path: Path) -> None:
    sample = Sample("scenarios-full-root")
    docs = _docs(sample)
    i = _find(docs, "u", "cdc_identidade_full", lambda d: d["before"] is not None)
    docs[i]["before"] = None
    report = verify_sample(sample, tmp_path, events=_write(tmp_path, docs))
    assert failed(report) == {"before_images": 1}
    assert check(report, "before_images").scenarios == ["replica-identity"]


def test_key_change_halves_swapped_fail_order(tmp_path: Path) -> None:
    """Debezium sends a primary-key update as a delete, its tombstone and a create of one LSN;
    the create delivered first is an order failure of that scenario."""
    sample = Sample("scenarios-default-root")
    docs = _docs(sample)
    d = _find(docs, "d", "cdc_pacientes")
    assert docs[d + 1] is None and docs[d + 2]["op"] == "c"  # the tombstone, then the create
    assert docs[d + 2]["source"]["lsn"] == docs[d]["source"]["lsn"]
    docs[d], docs[d + 2] = docs[d + 2], docs[d]
    report = verify_sample(sample, tmp_path, events=_write(tmp_path, docs))
    assert failed(report) == {"order": 1}
    assert check(report, "order").scenarios == ["pk-update"]


def test_using_index_delete_with_default_filled_id_is_found_by_its_identity(
    tmp_path: Path,
) -> None:
    """REPLICA IDENTITY USING INDEX: Debezium's delete says ``"id": 0``; the row is the one
    the index key names. Pointing the key at another row makes the delete miss its change."""
    sample = Sample("scenarios-default-root")
    docs = _docs(sample)
    lsns = [d["source"]["lsn"] for d in docs if d]
    i = _find(  # a delete of its own (not half of a key change: no create at its LSN)
        docs,
        "d",
        "cdc_identidade_index",
        lambda d: d["before"]["id"] == 0 and lsns.count(d["source"]["lsn"]) == 1,
    )
    docs[i]["before"]["codigo"] = "COD-nao-existe"
    report = verify_sample(sample, tmp_path, events=_write(tmp_path, docs))
    # the ledger's delete is missing; the captured one names a row nobody knows
    assert failed(report) == {"missing": 1, "missing_from_ledger": 1, "grouping": 1}
    assert check(report, "missing").scenarios == ["replica-identity"]


def test_redeliveries_after_sigkill(tmp_path: Path) -> None:
    sample = Sample("sigkill-restart")
    at_least = verify_sample(sample, tmp_path)
    assert failed(at_least) == {}
    assert at_least.counts["redelivered"] == sample.manifest["redelivered_events"] > 0
    exactly = verify_sample(sample, tmp_path, delivery="exactly-once")
    assert failed(exactly) == {"duplicated": sample.manifest["redelivered_events"]}


def test_redelivery_with_other_content_fails(tmp_path: Path) -> None:
    sample = Sample("sigkill-restart")
    docs = _docs(sample)
    seen: set[tuple[int, int, int]] = set()
    for d in docs:
        src = d["source"]
        key = (src["txId"], src["lsn"], d["after"]["id"])
        if key in seen:  # the second delivery of this change
            d["after"]["motivo" if "motivo" in d["after"] else "nome"] = "outro conteúdo"
            break
        seen.add(key)
    report = verify_sample(sample, tmp_path, events=_write(tmp_path, docs))
    assert "values" in failed(report)


def test_truncate_redelivered_is_a_redelivery(tmp_path: Path) -> None:
    sample = Sample("scenarios-default-root")
    docs = _docs(sample)
    t = _find(docs, "t", "cdc_fila")
    docs.insert(t + 1, docs[t])  # same txId and LSN again
    events = _write(tmp_path, docs)
    report = verify_sample(sample, tmp_path, events=events)
    assert failed(report) == {} and report.counts["redelivered_truncates"] == 1
    exactly = verify_sample(sample, tmp_path, events=events, delivery="exactly-once")
    assert failed(exactly) == {"duplicated": 1}


def test_snapshot_read_removed_fails_naming_the_row(tmp_path: Path) -> None:
    sample = Sample("snapshot-initial")
    docs = _docs(sample)
    clean = verify_sample(sample, tmp_path)
    assert clean.counts["snapshot_reads"] == sample.manifest["lines_by_op"]["r"]
    assert clean.counts["ledger_changes_before_snapshot"] > 0  # load ran during the snapshot
    # a row the load changed before the snapshot point: the snapshot must hold its new value
    before = {(c["table"], c["pk"]) for c in sample.ledger_records()}
    i = _find(docs, "r", "consultas", lambda d: ("consultas", d["after"]["id"]) in before)
    pk = docs[i]["after"]["id"]
    del docs[i]
    report = verify_sample(sample, tmp_path, events=_write(tmp_path, docs))
    assert "snapshot" in failed(report)
    assert any(
        e["table"] == "consultas" and e["pk"] == pk for e in check(report, "snapshot").examples
    )


def test_stream_event_lost_during_snapshot_is_missing(tmp_path: Path) -> None:
    """A change committed after the snapshot point must arrive as a stream event."""
    sample = Sample("snapshot-initial")
    docs = _docs(sample)
    i = _find(docs, "u", "consultas")
    del docs[i]
    report = verify_sample(sample, tmp_path, events=_write(tmp_path, docs))
    assert "missing" in failed(report)
