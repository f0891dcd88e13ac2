"""Write one ledger part: a header, then each transaction's intent before COMMIT, its outcome after.

Each writer (one per connection that commits: a worker, or a client thread inside it) appends
to its own part file, so no line crosses a process boundary. The contract (``docs/ledger.md``):

1. ``intent(txid, changes)`` BEFORE sending COMMIT: every change line of the transaction in one
   ``write`` and, with ``fsync=True`` (the default), ``fdatasync`` — when it returns, the intent
   survives the death of this process, of the machine, of the disk cache. When it raises
   ``LedgerWriteError`` (disk full, I/O error, file too large) the caller must roll the
   transaction back: nothing committed is then unrecorded.
2. ``outcome(txid, status)`` after COMMIT returned (or failed): not fsynced — a lost outcome is
   recovered from the server with ``pg_xact_status`` (``loadgen.ledger.resolve``).

A write that fails part-way is cut back (``ftruncate``) to the last whole line, so a later
reader never sees half a record glued to the next; a writer killed mid-write leaves at most one
unterminated last line (a *torn* intent of a transaction that never sent COMMIT, or a torn
outcome whose transaction is resolved from the server). Opening a part whose last line is torn
cuts it off and says so in the header (``repaired_bytes``).

Layout of ``PATH``: a directory (existing, or a new path without a suffix) holds
``part-<writer>.jsonl`` files (``part-<run>-<writer>.jsonl`` when a run id is given, so runs
can share a directory); any other path is a prefix: ``run1.jsonl`` gives
``run1.part-<writer>.jsonl`` next to it. Readers take every part.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

from loadgen.errors import ConfigError
from loadgen.ledger import records
from loadgen.ledger.changes import RowChange

PART_GLOB = "part-*.jsonl"
LEDGER_FORMAT_VERSION = records.FORMAT_VERSION
_DUMPS_OPTION = orjson.OPT_APPEND_NEWLINE


class LedgerWriteError(OSError):
    """A ledger line could not be written (ENOSPC, EIO, EFBIG...). One line, names the part.

    Raised by ``LedgerWriter.intent``/``outcome``; picklable (crosses the worker queue).
    """

    def __init__(self, path: str, what: str, err: int, strerror: str) -> None:
        super().__init__(err, strerror)
        self.path = path
        self.what = what
        self.errno = err

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.what, self.errno, self.strerror))

    def __str__(self) -> str:
        text = f"ledger {self.path}: cannot write {self.what}: {self.strerror} (errno {self.errno})"
        if self.what.startswith("the intent"):
            text += "; that transaction was rolled back: nothing committed is unrecorded"
        elif self.what.startswith("the outcome"):
            text += "; that transaction committed and its intent is recorded"
        return text


def _is_directory_path(path: str) -> bool:
    p = Path(path)
    if p.is_dir():
        return True
    if p.exists():
        return False
    return path.endswith(os.sep) or p.suffix == ""


def part_path(path: str, writer_id: int, run_id: str = "") -> str:
    """Return the part file a writer appends to (see the module docstring for the layout)."""
    name = f"{run_id}-{writer_id:05d}" if run_id else f"{writer_id:05d}"
    if _is_directory_path(path):
        return str(Path(path) / f"part-{name}.jsonl")
    p = Path(path)
    return str(p.with_name(f"{p.stem}.part-{name}.jsonl"))


def part_files(path: str | Sequence[str]) -> list[str]:
    """Return every part file of the ledger at ``path``, sorted by name.

    ``path`` may also be several ledgers (a split run's shards: ``cdc verify --ledger A
    --ledger B``), read as one: their parts in the order given, each file once. A directory
    without parts of its own holds shard ledgers one level down (``DIR/<shard>/part-*.jsonl``).

    Raises:
        ConfigError: nothing at ``path`` (or at one of the paths) looks like a ledger, or a
            part is not a readable regular file.
    """
    if not isinstance(path, str):
        if not path:
            raise ConfigError("--ledger: no ledger given")
        return list(dict.fromkeys(part for one in path for part in part_files(one)))
    if _is_directory_path(path):
        parts = sorted(glob.glob(os.path.join(glob.escape(path), PART_GLOB)))
        if not parts:  # shard ledgers in subdirectories
            parts = sorted(glob.glob(os.path.join(glob.escape(path), "*", PART_GLOB)))
    else:
        p = Path(path)
        pattern = str(p.with_name(f"{glob.escape(p.stem)}.part-*.jsonl"))
        parts = sorted(glob.glob(pattern))
        if not parts and p.is_file():
            parts = [str(p)]  # a single file given directly (e.g. one part, or a merged copy)
    if not parts:
        raise ConfigError(f"--ledger {path!r}: no ledger part files found (expected {PART_GLOB})")
    for part in parts:  # said before anything is read or any slot touched
        if not os.path.isfile(part):
            raise ConfigError(f"--ledger {path!r}: {part} is not a regular file")
        if not os.access(part, os.R_OK):
            raise ConfigError(f"--ledger {path!r}: {part} is not readable")
    return parts


def _torn_tail_bytes(path: str, size: int) -> int:
    """Length of an unterminated last line at the end of the file (0 if it ends in a newline)."""
    if size == 0:
        return 0
    fd = os.open(path, os.O_RDONLY)
    try:
        return _torn_tail_of(fd, size)
    finally:
        os.close(fd)


def _torn_tail_of(fd: int, size: int) -> int:
    block = 1 << 16
    pos = size
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        if pos == size and chunk.endswith(b"\n"):
            return 0
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return size - (start + nl + 1)
        pos = start
    return size


class LedgerWriter:
    """Append one writer's intents and outcomes to its own part file.

    One instance per connection that commits (its file order must be its commit order): create
    it in the process (and thread) that uses it; it is not shared between threads.

    Args:
        path: the ledger (directory or prefix, see the module docstring).
        worker_id: this writer's id (in the part name and every line).
        run_id: the run's id, part of the file name when given ("" = none).
        fsync: ``fdatasync`` each intent before returning (the durability contract); False
            only hands the intent to the OS (survives this process dying, not the machine).

    Raises:
        ConfigError: the directory or file cannot be created or its header written.
    """

    def __init__(self, path: str, worker_id: int, *, run_id: str = "", fsync: bool = True) -> None:
        self.worker_id = worker_id
        self.run_id = run_id
        self.is_fsync = fsync
        self.path = part_path(path, worker_id, run_id)
        self._fd: int | None = None
        self.num_txns = 0  # intents written
        self.num_changes = 0
        try:
            directory = Path(self.path).parent
            directory.mkdir(parents=True, exist_ok=True)
            is_new = not os.path.exists(self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._fd = fd
            self._size = os.fstat(fd).st_size
            repaired = _torn_tail_bytes(self.path, self._size)
        except OSError as exc:
            self.close()
            raise ConfigError(f"--ledger {path!r}: cannot open {self.path}: {exc}") from exc
        try:
            if repaired:
                self._size -= repaired
                os.ftruncate(fd, self._size)
            header = records.header_record(
                worker_id,
                run_id,
                os.getpid(),
                datetime.now(UTC).isoformat(),
                "fsync" if fsync else "os",
                repaired,
            )
            self._append(orjson.dumps(header, option=_DUMPS_OPTION), "the header", sync=fsync)
            if is_new and fsync:  # the new file's directory entry must survive a crash too
                dir_fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            self.close()
            raise ConfigError(f"--ledger {path!r}: {exc}") from exc

    # -- the contract --------------------------------------------------------------------------
    def intent(self, txid: int, changes: Sequence[RowChange]) -> None:
        """Record a transaction's changes durably BEFORE its COMMIT is sent.

        Blocks on one ``write`` plus, with ``fsync``, one ``fdatasync`` (~0.3 ms on the
        development VM's ext4). Nothing is written for a transaction without changes.

        Args:
            txid: ``pg_current_xact_id()`` of the open transaction (xid8, with epoch).
            changes: its row changes, in the order the transaction made them.

        Raises:
            LedgerWriteError: nothing (no partial line) was left in the file; do not COMMIT.
        """
        if not changes:
            return
        mono_ns = time.monotonic_ns()
        dumps, w = orjson.dumps, self.worker_id
        buf = b"".join(
            dumps(
                records.change_record(
                    txid,
                    seq,
                    ch.table,
                    ch.op,
                    ch.pk,
                    ch.after,
                    ch.op_name,
                    w,
                    mono_ns,
                    ch.old_pk,
                    ch.before,
                ),
                option=_DUMPS_OPTION,
            )
            for seq, ch in enumerate(changes)
        )
        self._append(buf, f"the intent of transaction {txid}", sync=self.is_fsync)
        self.num_txns += 1
        self.num_changes += len(changes)

    def outcome(
        self,
        txid: int,
        status: records.Status,
        *,
        by: str = "commit",
        commit_time: str | None = None,
    ) -> None:
        """Record what became of transaction ``txid`` (after COMMIT returned or failed).

        Not fsynced: a lost outcome is resolved from the server. ``commit_time`` defaults to
        now (UTC) for a committed transaction.

        Raises:
            LedgerWriteError: the line could not be written (the transaction's fate is not
                changed by it; its intent is resolved from the server instead).
        """
        if status == records.COMMITTED and commit_time is None:
            commit_time = datetime.now(UTC).isoformat()
        line = orjson.dumps(
            records.outcome_record(txid, status, by, self.worker_id, commit_time),
            option=_DUMPS_OPTION,
        )
        self._append(line, f"the outcome of transaction {txid}", sync=False)

    def write_txn(self, txid: int, commit_time: str, changes: Sequence[RowChange]) -> None:
        """Record a transaction that has already committed: its intent and outcome at once.

        For tools and tests that commit outside the engine; the engine uses ``intent`` before
        COMMIT and ``outcome`` after. Raises LedgerWriteError.
        """
        if not changes:
            return
        self.intent(txid, changes)
        self.outcome(txid, records.COMMITTED, commit_time=commit_time)

    # -- plumbing ------------------------------------------------------------------------------
    def _append(self, buf: bytes, what: str, *, sync: bool) -> None:
        fd = self._fd
        if fd is None:
            raise ValueError("ledger writer is closed")
        view = memoryview(buf)
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if sync:
                os.fdatasync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # never leave half a record: cut it off
                os.ftruncate(fd, self._size)
            raise LedgerWriteError(
                self.path, what, exc.errno or errno.EIO, exc.strerror or str(exc)
            ) from None
        self._size += len(buf)

    def close(self) -> None:
        """Close the part file; further writes raise ValueError. Idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_outcomes(part: str, outcomes: Sequence[records.OutcomeRecord]) -> None:
    """Append outcome lines to a part whose writer is gone (the coordinator, for a dead worker).

    Cuts a torn last line first (the dead writer's unfinished record). Not fsynced.

    Raises:
        LedgerWriteError: the part cannot be opened or written.
    """
    try:
        fd = os.open(part, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        raise LedgerWriteError(
            part, "outcomes", exc.errno or errno.EIO, str(exc.strerror)
        ) from None
    try:
        size = os.fstat(fd).st_size
        torn = _torn_tail_bytes(part, size)
        if torn:
            os.ftruncate(fd, size - torn)
        buf = b"".join(orjson.dumps(o, option=_DUMPS_OPTION) for o in outcomes)
        os.write(fd, buf)
    except OSError as exc:
        raise LedgerWriteError(
            part, "outcomes", exc.errno or errno.EIO, str(exc.strerror)
        ) from None
    finally:
        os.close(fd)
