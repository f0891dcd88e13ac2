"""Where a run ended in the WAL: one small file per run, beside its parts.

Once every process of a run that could change a row is gone (``stream``: every worker exited
and the coordinator settled their last intents; ``scenario run``: its last scenario done), the
run reads ``pg_current_wal_insert_lsn()`` and writes ``end-<run>.json`` next to its parts
(prefix layout: ``<stem>.end-<run>.json``), one ``records.RunEndRecord``. Every row change of
the run's transactions was inserted into the WAL before that position: a change at or after it
was written by someone else, after the run had ended. The file is written atomically (a
temporary file, fsync, rename, fsync of the directory): it is whole or absent, never torn.

``ledger_end(parts)`` reads the ends of every run whose parts are given. The ledger's end is
trustworthy only when **every** run has one (``LedgerEnd.lsn``, the latest of them): a run
killed before it could write its end (SIGKILL of the coordinator), one still running, parts
without a run id (older loadgen, ``part-<writer>.jsonl``) or an unreadable end file leave it
unknown (``LedgerEnd.why_unknown``), and nothing is excluded for being late.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg

from loadgen.ledger import records
from loadgen.ledger.writer import part_path
from loadgen.lsn import format_lsn, parse_lsn

logger = logging.getLogger(__name__)

_PART_NAME = re.compile(r"(?P<prefix>.*)part-(?P<run>[0-9a-f]+)-(?P<writer>\d+)\.jsonl")


def _of_part(part: str) -> tuple[str, str] | None:
    """(run id, end file) of a part named ``[<stem>.]part-<run>-<writer>.jsonl``; None for a
    part without a run id."""
    p = Path(part)
    m = _PART_NAME.fullmatch(p.name)
    if m is None:
        return None
    return m["run"], str(p.with_name(f"{m['prefix']}end-{m['run']}.json"))


def end_path(ledger: str, run_id: str) -> str:
    """The end file of run ``run_id`` of the ledger at ``ledger`` (directory or prefix)."""
    found = _of_part(part_path(ledger, 0, run_id))
    assert found is not None, run_id  # part_path names it with the run id
    return found[1]


def write_run_end(ledger: str, run_id: str, end_lsn: str) -> str:
    """Write run ``run_id``'s end atomically; return its path.

    Raises:
        OSError: the file cannot be written (the run then has no end: verify says so).
        ValueError: ``end_lsn`` is not an LSN, or no run id.
    """
    if not run_id:
        raise ValueError("a run end needs a run id")
    parse_lsn(end_lsn)
    path = end_path(ledger, run_id)
    rec = records.run_end_record(run_id, end_lsn, datetime.now(UTC).isoformat())
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def record_run_end(conn: psycopg.Connection[Any], ledger: str, run_id: str) -> bool:
    """Read the server's WAL insert position on ``conn`` and write it as ``run_id``'s end.

    Call only once no process of the run can change a row any more. Never raises: a server
    or disk problem is logged and the run is left without an end (verify then says so).
    Returns whether the end was written.
    """
    try:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        if not conn.autocommit:
            conn.rollback()
        path = write_run_end(ledger, run_id, str(row[0]) if row else "")
    except (psycopg.Error, OSError, ValueError) as exc:
        logger.warning("ledger: the run's end was not recorded (%s): cdc verify cannot tell"
                       " later runs' changes from this run's window", exc)  # fmt: skip
        return False
    logger.info("ledger: run %s ended at LSN %s (%s)", run_id, row[0] if row else "?", path)
    return True


@dataclass(frozen=True)
class LedgerEnd:
    """The end of the runs a ledger holds (``ledger_end``)."""

    lsn: int | None  # every run's end recorded: the latest; None: unknown
    runs: tuple[str, ...]  # the ledger's run ids, sorted
    why_unknown: str = ""  # when ``lsn`` is None: why (for the report)

    @property
    def lsn_text(self) -> str | None:
        return None if self.lsn is None else format_lsn(self.lsn)

    def to_dict(self) -> dict[str, Any]:
        if self.lsn is None:
            return {"lsn": None, "runs": list(self.runs), "unknown_because": self.why_unknown}
        return {"lsn": self.lsn_text, "runs": list(self.runs)}


def _read_end(path: str, run_id: str) -> tuple[int | None, str]:
    """(end LSN, "") or (None, why not)."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            obj = orjson.loads(f.read(64 * 1024))
    except FileNotFoundError:
        return None, f"run {run_id} recorded no end ({name} absent: still running, or killed)"
    except (OSError, orjson.JSONDecodeError) as exc:
        return None, f"run {run_id}'s end {name} is unreadable ({exc})"
    if (
        type(obj) is not dict
        or obj.get("type") != records.TYPE_RUN_END
        or not obj.keys() >= records.RUN_END_FIELDS
        or obj.get("run_id") != run_id
    ):
        return None, f"run {run_id}'s end {name} is not a run_end record of that run"
    try:
        return parse_lsn(str(obj["end_lsn"])), ""
    except ValueError:
        return None, f"run {run_id}'s end {name} has no valid end_lsn"


def ledger_end(parts: list[str]) -> LedgerEnd:
    """The end of every run whose ``parts`` are given (see the module doc). Reads one small
    file per run; never raises."""
    ends: dict[str, str] = {}  # end file → run
    anonymous = 0
    for part in parts:
        found = _of_part(part)
        if found is None:
            anonymous += 1
        else:
            ends.setdefault(found[1], found[0])
    runs = tuple(sorted(set(ends.values())))
    if anonymous:
        return LedgerEnd(
            None, runs, f"{anonymous} ledger part(s) without a run id in their name (written"
            " before loadgen recorded run ends, or renamed)",
        )  # fmt: skip
    if not ends:
        return LedgerEnd(None, runs, "no ledger parts")
    latest = 0
    for path, run in sorted(ends.items()):
        lsn, why = _read_end(path, run)
        if lsn is None:
            return LedgerEnd(None, runs, why)
        latest = max(latest, lsn)
    return LedgerEnd(latest, runs)
