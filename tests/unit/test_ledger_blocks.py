"""The reader's block decode (``scan(typed=True)``: one msgspec call per block of lines) reads
what the line-by-line reader reads, on odd parts too, and keeps no chunk alive behind the
consumer (the ledger load's speed depends on it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from loadgen.cdc import ledger_index
from loadgen.ledger import LedgerScan, LedgerWriter, part_files, reader, scan
from loadgen.ledger.changes import RowChange


def _write(led: Path, num_txns: int) -> str:
    with LedgerWriter(str(led), 0, fsync=False) as w:
        for t in range(num_txns):
            after = {"id": str(t), "nome": f"Zoë {t}", "telefone": None}
            w.write_txn(100 + t, "2026-11-29T10:00:00Z", [
                RowChange("pacientes", "c", t, after, "insert_paciente"),
                RowChange("pacientes", "u", t, {**after, "telefone": "1"}, "update_paciente"),
            ])  # fmt: skip
            if t % 3 == 0:
                w.intent(5000 + t, [RowChange("consultas", "d", t, None, "delete_consulta")])
                w.outcome(5000 + t, "aborted")
    return part_files(str(led))[0]


def _read(part: str, typed: bool) -> tuple[list[tuple[Any, ...]], LedgerScan]:
    state = LedgerScan([part])
    rows = []
    for chunk in scan([part], state, typed=typed):
        for off, o in zip(chunk.offsets, chunk.changes, strict=True):
            get = (lambda k, o=o: getattr(o, k)) if chunk.typed else o.get
            rows.append((chunk.version, off, get("txid"), get("seq"), get("table"), get("pk")))
    return rows, state


ODD_LINES = {
    "a blank line": b"\n",
    "two objects on one line": b'{"type":"outcome","txid":1,"status":"committed","by":"x"}{}\n',
    "leading whitespace": b' {"txid":7,"seq":0,"table":"t","op":"c","pk":1,"after":null}\n',
    "a CRLF line": b'{"txid":8,"seq":0,"table":"t","op":"c","pk":1,"after":{}}\r\n',
    "an array": b"[1,2]\n",
    "a wrong type": b'{"txid":"9","seq":0,"table":"t","op":"c","pk":1,"after":null}\n',
    "a second header": b'{"type":"header","format":"loadgen-ledger","version":2,"writer":1}\n',
    "not JSON": b"{oops\n",
}


@pytest.mark.parametrize("odd", [*ODD_LINES, "a torn last line"])
def test_block_decode_reads_what_the_line_reader_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd: str
) -> None:
    monkeypatch.setattr(reader, "CHUNK_BYTES", 2000)  # several blocks per part
    part = _write(tmp_path / "l", 60)
    lines = Path(part).read_bytes().splitlines(keepends=True)
    if odd == "a torn last line":
        lines.append(lines[1][:-9])
    else:
        lines.insert(len(lines) // 2, ODD_LINES[odd])
    Path(part).write_bytes(b"".join(lines))
    typed, t_state = _read(part, typed=True)
    plain, p_state = _read(part, typed=False)
    assert typed == plain and len(typed) >= 140
    assert t_state.bad_lines == p_state.bad_lines
    assert list(t_state.committed_txids) == list(p_state.committed_txids)
    assert sorted(t_state.aborted_txids) == sorted(p_state.aborted_txids)
    assert [h for _, h in t_state.headers] == [h for _, h in p_state.headers]
    index = ledger_index.load(part)  # (and the index, over the same chunks)
    assert index.num_changes == 120  # (an inserted change line has no outcome: unresolved)
    assert index.fates.get("aborted") == 20


def test_a_consumed_chunk_is_referenced_by_the_consumer_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk the reader still held while decoding the next block would double the load's
    time (its objects would not be freed to be reused)."""
    monkeypatch.setattr(reader, "CHUNK_BYTES", 2000)
    part = _write(tmp_path / "l", 60)
    chunks = scan([part], LedgerScan([part]), typed=True)
    seen = 0
    for chunk in chunks:
        refs = sys.getrefcount(chunk), sys.getrefcount(chunk.changes)
        assert chunk.typed and refs == (2, 2)  # the loop's variable / the chunk (+ the argument)
        seen += len(chunk.changes)
        del chunk
    assert seen == 140
