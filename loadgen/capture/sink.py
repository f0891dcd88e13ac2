"""The event file a capture appends to, and the files it keeps next to it.

For ``--out events.jsonl``: ``events.jsonl.offsets`` (Debezium's FileOffsetBackingStore),
``events.jsonl.pid`` (while a capture runs), ``events.jsonl.status.json`` (progress, then the
summary) and ``events.jsonl.log`` (Debezium's log; a background capture's output too).

A batch is written and fsynced before the engine may mark it processed, so the offsets never
get ahead of the file: after a crash, the restart redelivers what came after the last flushed
offsets (at least once) and nothing is lost.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from loadgen.errors import ConfigError


@dataclass(frozen=True)
class CapturePaths:
    out: Path

    @classmethod
    def for_out(cls, out: str | Path) -> CapturePaths:
        return cls(Path(out).expanduser().absolute())

    def _beside(self, suffix: str) -> Path:
        return self.out.with_name(self.out.name + suffix)

    @property
    def offsets(self) -> Path:
        return self._beside(".offsets")

    @property
    def pid(self) -> Path:
        return self._beside(".pid")

    @property
    def status(self) -> Path:
        return self._beside(".status.json")

    @property
    def log(self) -> Path:
        return self._beside(".log")


def check_out(paths: CapturePaths) -> None:
    """Refuse an ``--out`` that cannot be written or would resume into a gap (ConfigError).

    Offsets without their event file would make Debezium skip what the missing file held.
    """
    out = paths.out
    if out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a directory; give a file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {str(out)!r}: directory {str(out.parent)!r} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise ConfigError(f"--out {str(out)!r}: directory {str(out.parent)!r} is not writable")
    if paths.offsets.exists() and not out.exists():
        raise ConfigError(
            f"--out {str(out)!r} does not exist but its offsets {str(paths.offsets)!r} do:"
            " resuming would skip the events that file held; delete the offsets to start"
            " again from the slot's position"
        )


class EventFile:
    """Append-only event file: ``write_batch`` returns only once the lines are on disk.

    Opening repairs a torn last line (a crash mid-write): it is cut off, since the engine
    never marked it processed and redelivers it. Used from the engine's consumer thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repaired_bytes = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(self._fd).st_size
        if size:
            self.repaired_bytes = _cut_torn_tail(path, size)
        self.initial_bytes = os.fstat(self._fd).st_size
        self.num_lines_before = _count_lines(path) if self.initial_bytes else 0
        self.bytes_written = 0

    def write_batch(self, lines: Iterable[bytes]) -> None:
        """Append ``lines`` (each without its newline), then fsync. Raises OSError."""
        data = b"".join(line + b"\n" for line in lines)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.bytes_written += len(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _cut_torn_tail(path: Path, size: int) -> int:
    """Truncate ``path`` after its last newline; return the bytes removed."""
    with open(path, "rb+") as f:
        pos = size
        chunk = 1 << 16
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            block = f.read(pos - start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
            os.fsync(f.fileno())
        return size - keep


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
    return n


def write_json_atomic(path: Path, doc: object) -> None:
    """Write ``doc`` as JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, object] | None:
    """The JSON object in ``path``; None when missing or unreadable (mid-replace)."""
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None
