"""A run's end file (``loadgen.ledger.run_end``): where it goes, and when the ledger's end is
trusted (every run has a whole, matching one) or not (the report then says why)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadgen.ledger import LedgerWriter, part_files, records
from loadgen.ledger.run_end import end_path, format_lsn, ledger_end, parse_lsn, write_run_end


def _run(ledger: Path | str, run_id: str, writers: int = 2) -> None:
    for w in range(writers):
        LedgerWriter(str(ledger), w, run_id=run_id).close()


def test_lsn_text_round_trips_and_bad_text_is_refused() -> None:
    assert parse_lsn("0/1A2B3C4D") == 0x1A2B3C4D
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    for bad in ("", "1A2B", "0/", "x/1", "0/123456789"):
        with pytest.raises(ValueError):
            parse_lsn(bad)


def test_end_beside_the_parts_in_both_layouts(tmp_path: Path) -> None:
    d = tmp_path / "run1"
    _run(d, "3f2a9c1e")
    assert end_path(str(d), "3f2a9c1e") == str(d / "end-3f2a9c1e.json")
    prefix = tmp_path / "run2.jsonl"
    _run(prefix, "00c0ffee")
    assert end_path(str(prefix), "00c0ffee") == str(tmp_path / "run2.end-00c0ffee.json")
    for ledger, run in ((d, "3f2a9c1e"), (prefix, "00c0ffee")):
        written = write_run_end(str(ledger), run, "0/1A2B3C4D")
        assert written == end_path(str(ledger), run)
        rec = orjson.loads(Path(written).read_bytes())
        assert rec.keys() == records.RUN_END_FIELDS and rec["run_id"] == run
        end = ledger_end(part_files(str(ledger)))
        assert (end.lsn_text, end.runs, end.why_unknown) == ("0/1A2B3C4D", (run,), "")
    assert not list(tmp_path.rglob("*.tmp-*"))  # written through a temporary file, renamed
    assert len(part_files(str(d))) == 2  # the end file is no part


def test_the_latest_end_of_several_runs_and_any_missing_one_makes_it_unknown(
    tmp_path: Path,
) -> None:
    d = tmp_path / "shared"
    _run(d, "aaaaaaaa")
    _run(d, "bbbbbbbb", writers=1)
    write_run_end(str(d), "aaaaaaaa", "0/5000")
    end = ledger_end(part_files(str(d)))
    assert end.lsn is None and end.runs == ("aaaaaaaa", "bbbbbbbb")
    assert "run bbbbbbbb recorded no end" in end.why_unknown
    write_run_end(str(d), "bbbbbbbb", "0/4000")
    end = ledger_end(part_files(str(d)))
    assert end.lsn == 0x5000 and end.to_dict() == {"lsn": "0/5000", "runs": list(end.runs)}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"type":"run_end","format":"loadgen-ledger","version":2', "unreadable"),
        (b'{"type":"outcome","run_id":"aaaaaaaa"}', "not a run_end record"),
        (orjson.dumps(records.run_end_record("bbbbbbbb", "0/10", "t")), "not a run_end record"),
        (orjson.dumps(records.run_end_record("aaaaaaaa", "zz", "t")), "no valid end_lsn"),
    ],
)
def test_a_damaged_or_foreign_end_is_not_trusted(tmp_path: Path, content: bytes, why: str) -> None:
    _run(tmp_path / "l", "aaaaaaaa")
    Path(end_path(str(tmp_path / "l"), "aaaaaaaa")).write_bytes(content)
    end = ledger_end(part_files(str(tmp_path / "l")))
    assert end.lsn is None and why in end.why_unknown


def test_parts_without_a_run_id_have_no_end(tmp_path: Path) -> None:
    LedgerWriter(str(tmp_path / "l"), 0).close()  # part-00000.jsonl (no run id)
    end = ledger_end(part_files(str(tmp_path / "l")))
    assert end.lsn is None and "without a run id" in end.why_unknown
    assert end.to_dict()["unknown_because"] == end.why_unknown
