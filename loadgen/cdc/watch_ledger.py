"""Follow a ledger while it is written: the parts' new complete lines, as they appear.

``LedgerFollower.poll()`` looks for part files (``ledger.part_files``: new parts appear when a
new worker or run starts), reads what each part gained since the last poll and returns the
parsed records in file order. Only complete lines are parsed: a last line without its newline
is *incomplete* (its writer is still writing it, or died mid-write) and is read again at the
next poll, once completed. A part that shrank (cut back by a writer that repaired a torn tail)
is re-read from where it now ends. Memory: one read buffer per poll, nothing kept per line.

Records are the ledger's own (``loadgen.ledger.records``: header, change, outcome); the schema
is described in docs/ledger.md. Single-threaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadgen.errors import ConfigError
from loadgen.ledger import part_files, records

READ_BYTES = 8 * 1024 * 1024  # at most this much of one part per poll (bounded buffers)


@dataclass
class _Part:
    path: str
    index: int
    offset: int = 0  # bytes consumed (complete lines)
    line_no: int = 0
    version: int = records.LEGACY_VERSION
    pid: int | None = None  # the writer of the last header (None: format 1, no header)
    run_id: str = ""


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One parsed ledger record and where it is (``part`` index, byte ``offset``)."""

    kind: str  # "change", "outcome" or "header"
    obj: dict[str, Any]
    part: int
    offset: int
    version: int  # the format of a change line (1: committed without an outcome)


@dataclass
class BadLedgerLine:
    part: str
    line_no: int
    preview: str


@dataclass
class LedgerFollower:
    """The growing ledger at ``path`` (a directory or a prefix, as ``stream --ledger``)."""

    path: str
    parts: list[_Part] = field(default_factory=list)
    bad_lines: list[BadLedgerLine] = field(default_factory=list)
    num_bad_lines: int = 0
    num_truncated_parts: int = 0  # parts that shrank under us (a repaired torn tail)
    _by_path: dict[str, _Part] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.parts)

    def part_name(self, index: int) -> str:
        return self.parts[index].path

    def writer_pids(self) -> list[int | None]:
        """The process of each part's last writer (None: unknown, a format-1 part)."""
        return [p.pid for p in self.parts]

    def torn_tails(self) -> list[str]:
        """Parts whose last line is still incomplete (no newline yet)."""
        out = []
        for p in self.parts:
            try:
                if os.path.getsize(p.path) > p.offset:
                    out.append(p.path)
            except OSError:
                continue
        return out

    def poll(self) -> list[LedgerLine]:
        """Every complete record added to the ledger since the last call, part by part."""
        try:
            paths = part_files(self.path)
        except ConfigError:
            paths = []  # not there yet: the stream has not started
        for path in paths:
            if path not in self._by_path:
                part = _Part(path, len(self.parts))
                self.parts.append(part)
                self._by_path[path] = part
        out: list[LedgerLine] = []
        for part in self.parts:
            self._read(part, out)
        return out

    def _read(self, part: _Part, out: list[LedgerLine]) -> None:
        try:
            size = os.path.getsize(part.path)
        except OSError:
            return
        if size < part.offset:  # cut back (a torn tail repaired): resume where it ends now
            self.num_truncated_parts += 1
            part.offset = size
        if size == part.offset:
            return
        with open(part.path, "rb") as f:
            f.seek(part.offset)
            buf = f.read(min(size - part.offset, READ_BYTES))
        end = buf.rfind(b"\n") + 1
        if end == 0:
            return  # only an incomplete line: wait for its newline
        pos = 0
        loads = orjson.loads
        while pos < end:
            nl = buf.index(b"\n", pos)
            raw = buf[pos : nl + 1]
            offset = part.offset + pos
            pos = nl + 1
            part.line_no += 1
            if not raw.strip():
                continue
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError:
                obj = None
            if type(obj) is not dict:
                self._bad(part, raw)
                continue
            kind = obj.get("type")
            if kind is None:
                out.append(LedgerLine("change", obj, part.index, offset, part.version))
            elif kind == records.TYPE_OUTCOME:
                out.append(LedgerLine("outcome", obj, part.index, offset, part.version))
            elif kind == records.TYPE_HEADER and type(obj.get("version")) is int:
                part.version = obj["version"]
                pid = obj.get("pid")
                part.pid = pid if type(pid) is int else None
                part.run_id = str(obj.get("run_id", ""))
                out.append(LedgerLine("header", obj, part.index, offset, part.version))
            else:
                self._bad(part, raw)
        part.offset += end

    def _bad(self, part: _Part, raw: bytes) -> None:
        self.num_bad_lines += 1
        if len(self.bad_lines) < 20:
            self.bad_lines.append(
                BadLedgerLine(part.path, part.line_no, raw[:80].decode("utf-8", "replace"))
            )
