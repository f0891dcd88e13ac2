"""The capture's event file: appends that survive a crash mid-write, and refusals of an --out
that would resume into a gap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadgen.capture.sink import CapturePaths, EventFile, check_out
from loadgen.capture.stop import marker_matches
from loadgen.errors import ConfigError


def test_batches_append_and_a_torn_last_line_is_cut_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    sink = EventFile(path)
    sink.write_batch([b'{"a":1}', b"null"])
    sink.close()
    with open(path, "ab") as f:  # a crash in the middle of the next batch
        f.write(b'{"b":2}\n{"c":')
    reopened = EventFile(path)
    assert reopened.repaired_bytes == len(b'{"c":')
    assert reopened.num_lines_before == 3 and reopened.initial_bytes == path.stat().st_size
    reopened.write_batch([b'{"c":3}'])
    reopened.close()
    assert path.read_bytes() == b'{"a":1}\nnull\n{"b":2}\n{"c":3}\n'


def test_a_file_that_is_all_torn_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"x" * 200_000)  # longer than one read-back block, no newline at all
    sink = EventFile(path)
    assert sink.repaired_bytes == 200_000 and path.stat().st_size == 0
    sink.close()


def test_files_beside_the_output(tmp_path: Path) -> None:
    p = CapturePaths.for_out(tmp_path / "run.jsonl")
    assert [p.offsets.name, p.pid.name, p.status.name, p.log.name] == [
        "run.jsonl.offsets",
        "run.jsonl.pid",
        "run.jsonl.status.json",
        "run.jsonl.log",
    ]


def test_out_that_cannot_work_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        check_out(CapturePaths.for_out(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        check_out(CapturePaths.for_out(tmp_path / "nope" / "e.jsonl"))
    paths = CapturePaths.for_out(tmp_path / "e.jsonl")
    paths.offsets.write_bytes(b"offsets of a lost file")
    with pytest.raises(ConfigError, match="resuming would skip"):
        check_out(paths)
    paths.out.write_bytes(b"")
    check_out(paths)  # file and offsets together: a resume


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="not writable"):
        check_out(CapturePaths.for_out(ro / "e.jsonl"))


def test_marker_is_recognised_in_each_binary_rendering() -> None:
    token = "123-456"
    assert marker_matches(token, {token.encode().hex()})  # binary.handling.mode=hex
    assert marker_matches(token, {"MTIzLTQ1Ng=="})  # base64
    assert not marker_matches(token, {b"123-457".hex()})
