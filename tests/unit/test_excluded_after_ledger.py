"""``excluded_after_ledger`` on real Debezium output: a dump that goes on past the ledger's run.

The committed ``hospital`` sample (real Debezium 3.6.3 events, its own ledger) is cut in two
at a transaction boundary, in WAL order: the first part of the ledger is the "old run" (its
parts named as a run's, ``part-<run>-<writer>.jsonl``, with the run's end at the cut), the
events after the cut play the later run the same dump also captured. No database: the final
state is not checked.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadgen.cdc.watch_core import WatchOptions
from loadgen.cdc.watch_debezium import DebeziumWatch
from loadgen.ledger.run_end import format_lsn, write_run_end
from tests.fixtures.debezium_reader import SampleCatalog, check, failed, verify_sample
from tests.fixtures.debezium_samples import Sample

RUN = "0a1b2c3d"
CUT = 200  # transactions of the old run, in WAL order (the sample has 299)


class Split:
    """The hospital sample cut after its ``CUT``-th transaction."""

    def __init__(self, tmp_path: Path) -> None:
        self.sample = Sample("hospital")
        self.tmp = tmp_path
        docs = [orjson.loads(line) for line in self.sample.event_lines()]
        self.docs: list[Any] = docs
        lsns: dict[int, list[int]] = defaultdict(list)
        for d in docs:
            if d:
                lsns[d["source"]["txId"]].append(d["source"]["lsn"])
        self.txns = sorted(lsns, key=lambda t: min(lsns[t]))  # WAL order
        self.lsns = lsns
        old = self.txns[:CUT]
        assert max(max(lsns[t]) for t in old) < min(lsns[self.txns[CUT]])  # a clean cut
        self.end_lsn = min(lsns[self.txns[CUT]])  # the later run's first change: exactly at it
        self.later_events = sum(len(lsns[t]) for t in self.txns[CUT:])
        self.events = self.sample.events_file(tmp_path)

    def ledger(self, name: str, *, drop: frozenset[int] = frozenset(), end: int | None) -> Path:
        """The old run's ledger (without the transactions ``drop``), its end at ``end``."""
        out = self.tmp / name
        out.mkdir()
        keep = set(self.txns[:CUT]) - drop
        src = self.tmp / f"{name}-src"
        src.mkdir()
        for part in sorted(self.sample.ledger_dir(src).glob("part-*.jsonl")):
            writer = part.stem.split("-")[-1]
            lines = [ln for ln in part.read_bytes().splitlines(keepends=True)
                     if orjson.loads(ln)["txid"] in keep]  # fmt: skip
            (out / f"part-{RUN}-{writer}.jsonl").write_bytes(b"".join(lines))
        if end is not None:
            write_run_end(str(out), RUN, format_lsn(end))
        return out

    def events_with(self, edit: Any) -> Path:
        docs = [edit(d) if d else d for d in self.docs]
        out = self.tmp / f"edited-{len(list(self.tmp.glob('edited-*')))}.jsonl"
        out.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
        return out


@pytest.fixture
def split(tmp_path: Path) -> Split:
    return Split(tmp_path)


def test_later_run_is_excluded_and_the_old_ledger_verifies(split: Split) -> None:
    report = verify_sample(split.sample, split.tmp, events=split.events,
                           ledger=split.ledger("old", end=split.end_lsn))  # fmt: skip
    assert failed(report) == {}, {c.name: c.examples[:1] for c in report.checks if not c.is_ok}
    c = report.counts
    assert c["excluded_after_ledger"] == split.later_events > 0
    assert c["matched"] == c["ledger_changes"] > 0 and c["excluded_before_ledger"] == 0
    assert report.ledger_end == {"lsn": format_lsn(split.end_lsn), "runs": [RUN]}
    end = format_lsn(split.end_lsn)
    assert any("excluded_after_ledger" in n and end in n for n in report.notes)
    assert report.to_dict()["ledger_end"]["lsn"] == format_lsn(split.end_lsn)


def test_a_change_inside_the_window_stays_unexpected(split: Split) -> None:
    """A transaction of the old run's window the ledger does not know (dropped from it): its
    events are unexpected, while the later run's are still excluded."""
    inside = split.txns[CUT // 2]
    ledger = split.ledger("planted", drop=frozenset({inside}), end=split.end_lsn)
    report = verify_sample(split.sample, split.tmp, events=split.events, ledger=ledger)
    assert failed(report) == {"unexpected": len(split.lsns[inside])}
    assert report.counts["excluded_after_ledger"] == split.later_events
    example = check(report, "unexpected").examples[0]
    assert f"txId {inside}" in example["at"]


def test_a_later_event_of_an_older_transaction_stays_unexpected(split: Split) -> None:
    """Past the end, but its xid is older than the ledger's newest transaction (no later run
    has one): not excluded."""
    inside = split.txns[CUT // 2]
    ledger = split.ledger("older", drop=frozenset({inside}), end=split.end_lsn)
    last = split.txns[-1]

    def reuse(d: dict[str, Any]) -> dict[str, Any]:
        if d["source"]["txId"] == last:
            d["source"]["txId"] = inside
        return d

    report = verify_sample(split.sample, split.tmp, events=split.events_with(reuse), ledger=ledger)
    n_last = len(split.lsns[last])
    assert failed(report) == {"unexpected": len(split.lsns[inside]) + n_last}
    assert report.counts["excluded_after_ledger"] == split.later_events - n_last


def test_without_the_run_end_later_changes_are_unexpected_and_the_report_says_why(
    split: Split,
) -> None:
    """As after a SIGKILLed run: no end, today's rule (every unknown change unexpected)."""
    report = verify_sample(split.sample, split.tmp, events=split.events,
                           ledger=split.ledger("killed", end=None))  # fmt: skip
    assert failed(report) == {"unexpected": split.later_events}
    assert report.counts["excluded_after_ledger"] == 0
    assert report.ledger_end is not None and report.ledger_end["lsn"] is None
    assert f"run {RUN} recorded no end" in report.ledger_end["unknown_because"]
    assert any(n.startswith("ledger end unknown: run") for n in report.notes)


def test_an_end_contradicted_by_the_ledger_excludes_nothing(split: Split) -> None:
    """An end before some of the ledger's own changes is wrong: nothing is excluded."""
    early = min(split.lsns[split.txns[CUT - 20]])
    report = verify_sample(split.sample, split.tmp, events=split.events,
                           ledger=split.ledger("wrong", end=early))  # fmt: skip
    assert failed(report) == {"unexpected": split.later_events}
    assert report.counts["excluded_after_ledger"] == 0
    assert any("contradicted" in n and format_lsn(early) in n for n in report.notes)
    assert len(check(report, "unexpected").examples) == 5


def test_parts_without_a_run_id_leave_the_end_unknown(split: Split, tmp_path: Path) -> None:
    """The sample's own ledger (``part-<writer>.jsonl``, older loadgen): no run, no end."""
    report = verify_sample(split.sample, tmp_path)
    assert failed(report) == {} and report.counts["excluded_after_ledger"] == 0
    assert report.ledger_end is not None
    assert "without a run id" in report.ledger_end["unknown_because"]


def _watch(split: Split, ledger: Path, grace_s: float) -> tuple[dict[str, Any], float]:
    """``cdc watch --debezium --until-caught-up`` over the whole dump: (report, seconds)."""
    ctx = split.sample.context
    opts = WatchOptions(str(ledger), delivery="at-least-once", grace_s=grace_s, interval_s=0.1,
                        until_caught_up=True, max_duration_s=120)  # fmt: skip
    w = DebeziumWatch(
        None, opts, str(split.events), lambda rec: None, None,
        catalog=SampleCatalog(ctx), schema=ctx["schema"], table_of=ctx["partition_roots"],
    )  # fmt: skip
    t0 = time.monotonic()
    result = w.run()
    assert result.stopped_by == "caught up"
    return result.report.to_dict(), time.monotonic() - t0


def test_watch_excludes_the_later_run_without_waiting_for_the_grace(split: Split) -> None:
    """Live, the later run's changes are decided at the next sweep once the ledger's end is
    read (not after --grace), so --until-caught-up ends; the verdict is verify's."""
    report, took_s = _watch(split, split.ledger("old", end=split.end_lsn), grace_s=60)
    counts = {c["name"]: c["count"] for c in report["checks"] if not c["ok"]}
    assert counts == {} and report["counts"]["excluded_after_ledger"] == split.later_events
    assert report["ledger_end"]["lsn"] == format_lsn(split.end_lsn)
    assert took_s < 60  # (well before the grace: decided as soon as the end was known)


def test_watch_without_the_run_end_reports_the_later_run_unexpected(split: Split) -> None:
    report, _ = _watch(split, split.ledger("killed", end=None), grace_s=0.5)
    counts = {c["name"]: c["count"] for c in report["checks"] if not c["ok"]}
    assert counts == {"unexpected": split.later_events}
    assert report["counts"]["excluded_after_ledger"] == 0
    assert any(n.startswith("ledger end unknown") for n in report["notes"])
