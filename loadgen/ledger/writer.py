"""Ground-truth ledger: every committed row change, one orjson JSON line each.

Each writer (one per connection that commits: a worker, or a client thread inside it) appends
to its own part file, so no row crosses a process boundary. A line is written only after the
transaction's COMMIT returned, and the whole transaction is written with one ``write`` call and
flushed, so a crash leaves at most a torn last line, which readers detect and report.

Layout of ``PATH``: a directory (existing, or a new path without a suffix) holds
``part-<writer>.jsonl`` files; any other path is a prefix: ``run1.jsonl`` gives
``run1.part-<writer>.jsonl`` next to it. Readers take every part.

Line fields: ``txid`` (``pg_current_xact_id()``, 64-bit with epoch), ``seq`` (order of the
change within its transaction, from 0), ``table``, ``op`` (``c``/``u``/``d``/``t``), ``pk``,
``after`` (column → PostgreSQL text output, or null for deletes and truncates), ``op_name``,
``commit_time`` (as given by the caller), ``writer`` and ``mono_ns`` (``time.monotonic_ns()``
when the transaction was recorded; system-wide on Linux, so comparable across the writers of
one run); and, only when the change carries them, ``old_pk`` (an update that changed ``id``)
and ``before``.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from loadgen.errors import ConfigError
from loadgen.ledger.changes import RowChange

PART_GLOB = "part-*.jsonl"
LEDGER_FORMAT_VERSION = 1


def _is_directory_path(path: str) -> bool:
    p = Path(path)
    if p.is_dir():
        return True
    if p.exists():
        return False
    return path.endswith(os.sep) or p.suffix == ""


def part_path(path: str, writer_id: int) -> str:
    """Return the part file a writer appends to (see the module docstring for the layout)."""
    if _is_directory_path(path):
        return str(Path(path) / f"part-{writer_id:05d}.jsonl")
    p = Path(path)
    return str(p.with_name(f"{p.stem}.part-{writer_id:05d}.jsonl"))


def part_files(path: str) -> list[str]:
    """Return every part file of the ledger at ``path``, sorted by name.

    Raises:
        ConfigError: nothing at ``path`` looks like a ledger.
    """
    if _is_directory_path(path):
        parts = sorted(glob.glob(os.path.join(glob.escape(path), PART_GLOB)))
    else:
        p = Path(path)
        pattern = str(p.with_name(f"{glob.escape(p.stem)}.part-*.jsonl"))
        parts = sorted(glob.glob(pattern))
        if not parts and p.is_file():
            parts = [str(p)]  # a single file given directly (e.g. one part, or a merged copy)
    if not parts:
        raise ConfigError(f"--ledger {path!r}: no ledger part files found (expected {PART_GLOB})")
    return parts


class LedgerWriter:
    """Append one writer's committed changes to its own part file.

    One instance per connection that commits (its file order must be its commit order): create
    it in the process (and thread) that uses it; it is not shared between threads.
    """

    def __init__(self, path: str, worker_id: int) -> None:
        """Open (create) the part file for ``worker_id`` under ``path`` for appending.

        Raises:
            ConfigError: the directory or file cannot be created.
        """
        self.worker_id = worker_id
        self.path = part_path(path, worker_id)
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._file: BinaryIO | None = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise ConfigError(f"--ledger {path!r}: cannot open {self.path}: {exc}") from exc
        self.num_txns = 0
        self.num_changes = 0

    def write_txn(self, txid: int, commit_time: str, changes: Sequence[RowChange]) -> None:
        """Record one committed transaction: one line per change, in the order made.

        Call only after COMMIT succeeded (or ``txid_status`` said committed). Blocks on a
        buffered write plus flush (no fsync: the OS has the data if this process dies).

        Args:
            txid: ``pg_current_xact_id()`` of the transaction (xid8, with epoch).
            commit_time: when it committed, ISO 8601 (for people; ordering uses ``mono_ns``).
            changes: the row changes, in the order the transaction made them.
        """
        if self._file is None:
            raise ValueError("ledger writer is closed")
        if not changes:
            return
        mono_ns = time.monotonic_ns()
        dumps = orjson.dumps
        lines = []
        for seq, ch in enumerate(changes):
            obj: dict[str, Any] = {
                "txid": txid,
                "seq": seq,
                "table": ch.table,
                "op": ch.op,
                "pk": ch.pk,
                "after": ch.after,
                "op_name": ch.op_name,
                "commit_time": commit_time,
                "writer": self.worker_id,
                "mono_ns": mono_ns,
            }
            if ch.old_pk is not None:  # optional fields only when recorded (scenarios)
                obj["old_pk"] = ch.old_pk
            if ch.before is not None:
                obj["before"] = ch.before
            lines.append(dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
        buf = b"".join(lines)
        self._file.write(buf)
        self._file.flush()
        self.num_txns += 1
        self.num_changes += len(changes)

    def close(self) -> None:
        """Flush and close the part file; further writes raise."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ledger line, parsed; ``part``/``offset`` locate it for re-reading."""

    txid: int  # xid8 (with epoch)
    seq: int  # order within the transaction, from 0
    table: str
    op: str  # c/u/d
    pk: int
    after: dict[str, str | None] | None
    op_name: str
    commit_time: str
    writer: int
    mono_ns: int  # monotonic ns when recorded (system-wide clock)
    part: int  # index into LedgerContents.parts
    offset: int  # byte offset of the line in its part
    old_pk: int | None = None  # an update that changed id: the id before it
    before: dict[str, str | None] | None = None  # before-image, when recorded


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be parsed: ``torn`` when it is the unterminated last line."""

    part: str
    line_no: int  # 1-based
    offset: int  # bytes
    is_torn: bool
    preview: str  # the first 80 characters


@dataclass
class LedgerContents:
    """Every part of a ledger, read into memory (tests and small ledgers; see ``iter_lines``)."""

    parts: list[str]
    entries: list[LedgerEntry] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)

    @property
    def torn_lines(self) -> list[BadLine]:
        return [b for b in self.bad_lines if b.is_torn]


def entry_from_obj(obj: dict[str, Any], part: int, offset: int) -> LedgerEntry:
    """Build a ``LedgerEntry`` from a parsed line (raises KeyError/TypeError when malformed)."""
    return LedgerEntry(
        txid=int(obj["txid"]),
        seq=int(obj["seq"]),
        table=str(obj["table"]),
        op=str(obj["op"]),
        pk=int(obj["pk"]),
        after=obj["after"],
        op_name=str(obj.get("op_name", "")),
        commit_time=str(obj.get("commit_time", "")),
        writer=int(obj.get("writer", -1)),
        mono_ns=int(obj.get("mono_ns", 0)),
        part=part,
        offset=offset,
        old_pk=None if obj.get("old_pk") is None else int(obj["old_pk"]),
        before=obj.get("before"),
    )


def iter_lines(
    parts: Sequence[str], bad_lines: list[BadLine] | None = None
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Yield ``(part_index, byte_offset, parsed_object)`` for every good line of every part.

    Lines come part by part, in file order. Unparseable lines are appended to ``bad_lines``
    (a last line without its newline is *torn*: the writer died mid-write) and skipped.
    Streams the files: memory stays bounded by one line.
    """
    loads = orjson.loads
    for pi, part in enumerate(parts):
        offset = 0
        with open(part, "rb") as f:
            for line_no, raw in enumerate(f, start=1):
                start = offset
                offset += len(raw)
                is_terminated = raw.endswith(b"\n")
                try:
                    obj = loads(raw)
                    if not isinstance(obj, dict) or not is_terminated:
                        raise ValueError("not a complete JSON object line")
                except (orjson.JSONDecodeError, ValueError):
                    if bad_lines is not None and raw.strip():
                        bad_lines.append(
                            BadLine(
                                part=part,
                                line_no=line_no,
                                offset=start,
                                is_torn=not is_terminated,
                                preview=raw[:80].decode("utf-8", "replace"),
                            )
                        )
                    continue
                yield pi, start, obj


def read_line(part: str, offset: int) -> dict[str, Any]:
    """Re-read one ledger line by its byte offset (for report examples)."""
    with open(part, "rb") as f:
        f.seek(offset)
        obj = orjson.loads(f.readline())
    if not isinstance(obj, dict):
        raise ValueError(f"{part}@{offset}: not a ledger line")
    return obj


def read_ledger(path: str) -> LedgerContents:
    """Read all parts of the ledger at ``path`` into memory.

    Torn last lines (and any other unparseable line) are reported in ``bad_lines``, not raised.

    Raises:
        ConfigError: no part files at ``path``.
    """
    parts = part_files(path)
    contents = LedgerContents(parts=parts)
    for pi, offset, obj in iter_lines(parts, contents.bad_lines):
        try:
            contents.entries.append(entry_from_obj(obj, pi, offset))
        except (KeyError, TypeError, ValueError):
            contents.bad_lines.append(
                BadLine(parts[pi], -1, offset, False, orjson.dumps(obj)[:80].decode())
            )
    return contents
