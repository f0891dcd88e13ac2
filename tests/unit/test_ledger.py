"""LedgerWriter / read_ledger: layout, one line per change, torn last lines."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadgen.errors import ConfigError
from loadgen.ledger import LedgerWriter, part_files, read_ledger, read_line
from loadgen.ledger.changes import RowChange


def _changes() -> list[RowChange]:
    return [
        RowChange("pacientes", "c", 7, {"id": "7", "nome": "Zoë Árvore 🏥", "telefone": None}, "i"),
        RowChange("pacientes", "u", 7, {"id": "7", "nome": "Zoë", "telefone": "1"}, "u"),
        RowChange("consultas", "d", 3, None, "delete_consulta"),
    ]


def test_directory_layout_one_line_per_change(tmp_path: Path) -> None:
    led = tmp_path / "ledger"
    w0 = LedgerWriter(str(led), 0)
    w1 = LedgerWriter(str(led), 1)
    w0.write_txn(2**32 + 5, "2026-11-29T10:00:00Z", _changes())
    w1.write_txn(9, "2026-11-29T10:00:01Z", _changes()[:1])
    w0.write_txn(10, "2026-11-29T10:00:02Z", [])  # nothing to record
    w0.close()
    w1.close()
    assert led.is_dir()
    assert [Path(p).name for p in part_files(str(led))] == ["part-00000.jsonl", "part-00001.jsonl"]
    contents = read_ledger(str(led))
    assert contents.bad_lines == []
    assert len(contents.entries) == 4
    first = contents.entries[:3]
    assert [e.seq for e in first] == [0, 1, 2]
    assert {e.txid for e in first} == {2**32 + 5}
    assert first[0].after == {"id": "7", "nome": "Zoë Árvore 🏥", "telefone": None}
    assert first[2].after is None and first[2].op == "d"
    assert first[0].mono_ns == first[2].mono_ns > 0
    again = read_line(contents.parts[0], first[1].offset)
    assert again["after"]["nome"] == "Zoë" and again["seq"] == 1


def test_prefix_layout(tmp_path: Path) -> None:
    prefix = tmp_path / "run1.jsonl"
    with LedgerWriter(str(prefix), 3) as w:
        w.write_txn(1, "t", _changes()[:1])
    assert (tmp_path / "run1.part-00003.jsonl").is_file()
    assert len(read_ledger(str(prefix)).entries) == 1


def test_torn_last_line_reported_not_fatal(tmp_path: Path) -> None:
    led = tmp_path / "l"
    with LedgerWriter(str(led), 0) as w:
        w.write_txn(1, "t", _changes())
    part = part_files(str(led))[0]
    with open(part, "ab") as f:
        f.write(orjson.dumps({"txid": 2, "seq": 0})[:12])  # the writer died mid-line
    contents = read_ledger(str(led))
    assert len(contents.entries) == 3
    assert len(contents.torn_lines) == 1
    assert contents.torn_lines[0].line_no == 4


def test_missing_ledger_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ledger part files"):
        read_ledger(str(tmp_path / "nothing"))


def test_closed_writer_refuses(tmp_path: Path) -> None:
    w = LedgerWriter(str(tmp_path / "x"), 0)
    w.close()
    with pytest.raises(ValueError):
        w.write_txn(1, "t", _changes())


def test_ledger_index_ranks_duplicates_and_occurrences(tmp_path: Path) -> None:
    """The numpy ledger index: duplicated lines flagged, repeated keys ranked in file order."""
    import numpy as np

    from loadgen.cdc import ledger_index

    rng = np.random.default_rng(5)
    fields = [rng.integers(0, 4, 5000), rng.integers(0, 3, 5000), rng.integers(0, 50, 5000)]
    fast = ledger_index.ranks_in_file_order(fields)
    exact = ledger_index.occurrences(fields, np.arange(5000))
    assert np.array_equal(fast, exact) and fast.max() > 3

    led = tmp_path / "l"
    with LedgerWriter(str(led), 0) as w:
        w.write_txn(10, "t", _changes()[:2])  # insert then update of pacientes 7
        w.write_txn(11, "t", [_changes()[1], _changes()[1]])  # the same update twice
    part = part_files(str(led))[0]
    lines = Path(part).read_bytes().splitlines(keepends=True)
    Path(part).write_bytes(b"".join(lines + [lines[0]]))  # a duplicated line
    index = ledger_index.load(str(led))
    assert index.is_dup.tolist() == [False, False, False, False, True]
    assert index.num_changes == 5 and len(index.sorted_idx) == 4
    assert index.xid8_of(11) == 11 and index.xid8_of((2**32 + 11) % 2**32) == 11
