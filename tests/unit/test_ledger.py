"""The ledger format 2 (header, intents, outcomes), its one reader and a part's failure modes."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
import pytest

from loadgen.errors import ConfigError
from loadgen.ledger import (
    FORMAT_VERSION,
    LedgerWriteError,
    LedgerWriter,
    append_outcomes,
    part_files,
    read_ledger,
    read_line,
    records,
)
from loadgen.ledger.changes import RowChange


def _changes() -> list[RowChange]:
    return [
        RowChange("pacientes", "c", 7, {"id": "7", "nome": "Zoë Árvore 🏥", "telefone": None}, "i"),
        RowChange("pacientes", "u", 7, {"id": "7", "nome": "Zoë", "telefone": "1"}, "u"),
        RowChange("consultas", "d", 3, None, "delete_consulta"),
    ]


def _lines(part: str) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in Path(part).read_bytes().splitlines()]


def test_directory_layout_header_intent_outcome(tmp_path: Path) -> None:
    led = tmp_path / "ledger"
    w0 = LedgerWriter(str(led), 0, run_id="r1")
    w1 = LedgerWriter(str(led), 1, run_id="r1")
    w0.write_txn(2**32 + 5, "2026-11-29T10:00:00Z", _changes())
    w1.write_txn(9, "2026-11-29T10:00:01Z", _changes()[:1])
    w0.write_txn(10, "2026-11-29T10:00:02Z", [])  # nothing to record
    w0.close()
    w1.close()
    assert [Path(p).name for p in part_files(str(led))] == [
        "part-r1-00000.jsonl",
        "part-r1-00001.jsonl",
    ]
    lines = _lines(part_files(str(led))[0])
    assert lines[0]["type"] == "header" and lines[0]["version"] == FORMAT_VERSION == 2
    assert lines[0]["run_id"] == "r1" and lines[0]["durability"] == "fsync"
    assert [line.get("type") for line in lines[1:]] == [None, None, None, "outcome"]
    assert lines[-1] == {
        "type": "outcome",
        "txid": 2**32 + 5,
        "status": "committed",
        "by": "commit",
        "writer": 0,
        "commit_time": "2026-11-29T10:00:00Z",
    }
    contents = read_ledger(str(led))
    assert contents.bad_lines == [] and contents.uncommitted == []
    assert len(contents.entries) == 4
    first = contents.entries[:3]
    assert [e.seq for e in first] == [0, 1, 2]
    assert {e.txid for e in first} == {2**32 + 5}
    assert first[0].after == {"id": "7", "nome": "Zoë Árvore 🏥", "telefone": None}
    assert first[2].after is None and first[2].op == "d"
    assert first[0].commit_time == "2026-11-29T10:00:00Z"  # from the outcome
    assert first[0].mono_ns == first[2].mono_ns > 0
    again = read_line(contents.parts[0], first[1].offset)
    assert again["after"]["nome"] == "Zoë" and again["seq"] == 1


def test_prefix_layout(tmp_path: Path) -> None:
    prefix = tmp_path / "run1.jsonl"
    with LedgerWriter(str(prefix), 3) as w:
        w.write_txn(1, "t", _changes()[:1])
    assert (tmp_path / "run1.part-00003.jsonl").is_file()
    assert len(read_ledger(str(prefix)).entries) == 1


def test_intent_without_outcome_is_resolved_or_left_out(tmp_path: Path) -> None:
    """An intent alone is not a commit: the resolver (the server) decides; without one, or
    when it cannot tell, the changes are uncommitted. An aborted outcome drops them."""
    led = tmp_path / "l"
    with LedgerWriter(str(led), 0) as w:
        w.intent(100, _changes()[:2])  # died before knowing: committed, says the server
        w.intent(101, _changes()[:1])  # died before knowing: aborted, says the server
        w.intent(102, _changes()[:1])
        w.outcome(102, "aborted")
        w.intent(103, _changes()[:1])  # the server cannot tell
    asked: list[Sequence[int]] = []

    def server(txids: Sequence[int]) -> Mapping[int, str | None]:
        asked.append(txids)
        return {100: "committed", 101: "aborted", 103: None}

    contents = read_ledger(str(led), resolve=server)
    assert asked == [[100, 101, 103]]  # one call, only the intents without an outcome
    assert {e.txid for e in contents.entries} == {100}
    assert sorted({(e.txid, e.status) for e in contents.uncommitted}) == [
        (101, "aborted"),
        (102, "aborted"),
        (103, "unresolved"),
    ]
    assert read_ledger(str(led)).entries == []  # no resolver: nothing is known to commit


def test_format_1_lines_are_committed(tmp_path: Path) -> None:
    """A ledger written before intents existed (no header): every change line committed."""
    led = tmp_path / "old"
    led.mkdir()
    old = {"txid": 5, "seq": 0, "table": "exames", "op": "c", "pk": 1, "after": {"id": "1"}}
    old |= {"op_name": "insert_exame", "commit_time": "t0", "writer": 0, "mono_ns": 1}
    (led / "part-00000.jsonl").write_bytes(orjson.dumps(old) + b"\n")
    with LedgerWriter(str(led), 0) as w:  # a new writer appending to the same part
        w.intent(6, _changes()[:1])
    contents = read_ledger(str(led))
    assert [(e.txid, e.status, e.commit_time) for e in contents.entries] == [(5, "committed", "t0")]
    assert [e.txid for e in contents.uncommitted] == [6]


def test_torn_last_line_is_reported_and_cut_by_the_next_writer(tmp_path: Path) -> None:
    led = tmp_path / "l"
    with LedgerWriter(str(led), 0) as w:
        w.write_txn(1, "t", _changes())
    part = part_files(str(led))[0]
    with open(part, "ab") as f:
        f.write(orjson.dumps({"txid": 2, "seq": 0})[:12])  # the writer died mid-line
    contents = read_ledger(str(led))
    assert len(contents.entries) == 3
    assert [(b.line_no, b.is_torn) for b in contents.bad_lines] == [(6, True)]
    with LedgerWriter(str(led), 0) as w:  # reopening cuts the torn tail, says so in its header
        w.write_txn(3, "t", _changes()[:1])
    contents = read_ledger(str(led))
    assert contents.bad_lines == [] and len(contents.entries) == 4
    assert contents.headers[1][1]["repaired_bytes"] == 12


def test_missing_ledger_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ledger part files"):
        read_ledger(str(tmp_path / "nothing"))


def test_closed_writer_refuses(tmp_path: Path) -> None:
    w = LedgerWriter(str(tmp_path / "x"), 0)
    w.close()
    with pytest.raises(ValueError):
        w.intent(1, _changes())


def test_coordinator_appends_outcomes_after_a_torn_tail(tmp_path: Path) -> None:
    led = tmp_path / "l"
    with LedgerWriter(str(led), 0) as w:
        w.intent(7, _changes()[:1])
    part = part_files(str(led))[0]
    with open(part, "ab") as f:
        f.write(b'{"txid": 8, "se')  # the worker died writing its next intent
    append_outcomes(part, [records.outcome_record(7, "committed", "coordinator", 0)])
    contents = read_ledger(str(led))
    assert contents.bad_lines == []
    assert [e.txid for e in contents.entries] == [7]
    assert contents.outcomes[7].by == "coordinator"


_FULL_DISK_CHILD = """
import resource, sys
from loadgen.ledger import LedgerWriter, LedgerWriteError
from loadgen.ledger.changes import RowChange
w = LedgerWriter(sys.argv[1], 0)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the file may not grow past 4 KiB
big = RowChange("exames", "c", 1, {"id": "1", "laudo": "x" * 3000}, "insert_exame")
n = 0
try:
    while True:
        w.intent(1000 + n, [big])
        w.outcome(1000 + n, "committed")
        n += 1
except LedgerWriteError as exc:
    print(n, exc.errno, str(exc), sep="\\n")
"""


def test_a_full_disk_is_one_error_and_leaves_no_partial_record(tmp_path: Path) -> None:
    """A file that cannot grow (RLIMIT_FSIZE, as a full disk): the failing intent raises
    LedgerWriteError naming the part, and the part is cut back to its last whole line."""
    led = tmp_path / "l"
    out = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, str(led)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    num_ok, err, message = int(out[0]), int(out[1]), out[2]
    assert num_ok >= 1 and err == errno.EFBIG
    part = part_files(str(led))[0]
    assert message.startswith(
        f"ledger {part}: cannot write the intent of transaction {1000 + num_ok}"
    )
    assert "rolled back: nothing committed is unrecorded" in message
    contents = read_ledger(str(led))
    assert contents.bad_lines == []  # no half record
    assert len(contents.entries) == num_ok and os.path.getsize(part) <= 4096
    assert isinstance(LedgerWriteError(part, "x", errno.ENOSPC, "No space"), OSError)
    assert resource.getrlimit(resource.RLIMIT_FSIZE)  # (the limit was the child's only)


def test_ledger_index_ranks_duplicates_and_occurrences(tmp_path: Path) -> None:
    """The numpy ledger index: duplicated lines flagged, repeated keys ranked in file order;
    only committed transactions indexed."""
    import numpy as np

    from loadgen.cdc import ledger_index
    from loadgen.cdc.hashing import sorted_search

    rng = np.random.default_rng(5)
    fields = [rng.integers(0, 4, 5000), rng.integers(0, 3, 5000), rng.integers(0, 50, 5000)]
    fast = ledger_index.ranks_in_file_order(fields)
    exact = ledger_index.occurrences(fields, np.arange(5000))
    assert np.array_equal(fast, exact) and fast.max() > 3
    hay = np.sort(rng.integers(-(2**62), 2**62, 5000))
    needles = np.concatenate((hay[rng.integers(0, 5000, 3000)], rng.integers(-(2**62), 2**62, 99)))
    assert np.array_equal(sorted_search(hay, needles), np.searchsorted(hay, needles))

    led = tmp_path / "l"
    with LedgerWriter(str(led), 0) as w:
        w.write_txn(10, "t", _changes()[:2])  # insert then update of pacientes 7
        w.write_txn(11, "t", [_changes()[1], _changes()[1]])  # the same update twice
        w.intent(12, _changes()[:1])
        w.outcome(12, "aborted")  # rolled back: not indexed
    part = part_files(str(led))[0]
    lines = Path(part).read_bytes().splitlines(keepends=True)
    Path(part).write_bytes(b"".join([*lines, lines[1]]))  # a duplicated change line
    index = ledger_index.load(str(led))
    assert index.is_dup.tolist() == [False, False, False, False, True]
    assert index.num_changes == 5 and len(index.sorted_idx) == 4
    assert index.fates == {"committed": 2, "aborted": 1} and index.num_uncommitted_changes == 1
    assert index.xid8_of(11) == 11 and index.xid8_of((2**32 + 11) % 2**32) == 11
