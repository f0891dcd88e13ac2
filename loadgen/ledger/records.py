"""The ledger's record schema (format version 2): the one description writers and readers use.

A ledger part is a file of JSON lines (orjson), written by one ``LedgerWriter``. Three kinds:

- ``HeaderRecord`` (``"type": "header"``), first line written by every writer that opens the
  part: the format name and version, the writer, the run, the process. Lines after it follow
  that version; lines before any header are format 1 (every change committed, see below).
- ``ChangeRecord`` (no ``type``): one row change of one transaction, written as the
  transaction's *intent*, durably, BEFORE its COMMIT is sent.
- ``OutcomeRecord`` (``"type": "outcome"``): what became of transaction ``txid``:
  ``committed`` or ``aborted``, written after COMMIT returned (or after the server said so
  through ``pg_xact_status``); ``by`` says who decided.

Beside the parts, a run that ended with every writer gone writes one ``RunEndRecord``
(``"type": "run_end"``) in a file of its own (``loadgen.ledger.run_end``): the WAL position
before which all of the run's row changes lie. Optional: a ledger without one still reads.

A transaction's changes count as committed only with a ``committed`` outcome; an intent with
no outcome is resolved from the server by ``pg_xact_status(txid)`` (``loadgen.ledger.resolve``).

Format 1 (before intents existed: no header, change lines carry ``commit_time`` and were
written after COMMIT) is still read: its changes are all committed.

The TypedDicts below are the schema; ``CHANGE_FIELDS``/``OUTCOME_FIELDS`` derive from them and
drive the readers' checks, and the ``*_record`` functions build exactly these shapes.
"""

# no `from __future__ import annotations`: TypedDict reads NotRequired at run time

from typing import Final, Literal, NotRequired, TypedDict

FORMAT_NAME = "loadgen-ledger"
FORMAT_VERSION = 2
LEGACY_VERSION = 1  # lines before any header
TYPE_HEADER: Final = "header"
TYPE_OUTCOME: Final = "outcome"
TYPE_RUN_END: Final = "run_end"
COMMITTED: Final = "committed"
ABORTED: Final = "aborted"

TextImage = dict[str, str | None]  # column -> PostgreSQL text output (None for SQL NULL)
Status = Literal["committed", "aborted"]


class HeaderRecord(TypedDict):
    """First line of every writer's stretch of a part."""

    type: Literal["header"]
    format: str  # FORMAT_NAME
    version: int  # FORMAT_VERSION
    writer: int  # the writer id (worker id, or a scenario writer id)
    run_id: str  # the run that wrote it ("" when not given)
    pid: int  # OS process id of the writer
    started_at: str  # ISO 8601 UTC, when the writer opened the part
    durability: str  # "fsync": intents fsynced before COMMIT; "os": written to the OS only
    repaired_bytes: NotRequired[int]  # a torn tail (an unfinished line) cut off at open


class ChangeRecord(TypedDict):
    """One row change; its transaction's intent (format 2) or a committed change (format 1)."""

    txid: int  # pg_current_xact_id() of the transaction (xid8: epoch << 32 | xid)
    seq: int  # order of the change within its transaction, from 0
    table: str  # unqualified table name
    op: str  # "c" insert, "u" update, "d" delete, "t" truncate
    pk: int  # the row's id after the change (the deleted id for "d"; 0 for "t")
    after: TextImage | None  # text after-image; None for deletes and truncates
    op_name: str  # the operation that made it, e.g. "insert_consulta", "scenario:toast"
    writer: int  # writer id, as in the header
    mono_ns: int  # time.monotonic_ns() when the intent was written (system-wide on Linux)
    old_pk: NotRequired[int]  # an update that changed id: the id before it
    before: NotRequired[TextImage | None]  # the before-image the replica identity sends
    commit_time: NotRequired[str]  # format 1 only: ISO 8601 time after COMMIT returned


class OutcomeRecord(TypedDict):
    """What became of one transaction whose intent is in the ledger."""

    type: Literal["outcome"]
    txid: int
    status: Status
    by: str  # "commit" (COMMIT returned / failed), "txid_status" (the worker asked the server
    # after a lost connection), "coordinator" (resolved for a dead worker), "verify"
    commit_time: NotRequired[str]  # ISO 8601 UTC, taken when COMMIT returned (committed only)
    writer: int


class RunEndRecord(TypedDict):
    """The end of one run (its own file, ``end-<run>.json``): written once every process of the
    run that could change a row has ended, so every row change of the run's transactions lies
    in the WAL before ``end_lsn``."""

    type: Literal["run_end"]
    format: str  # FORMAT_NAME
    version: int  # FORMAT_VERSION
    run_id: str  # the run (its parts are part-<run_id>-<writer>.jsonl)
    end_lsn: str  # pg_current_wal_insert_lsn() then, as PostgreSQL prints it ("0/1A2B3C4D")
    ended_at: str  # ISO 8601 UTC, when it was read


CHANGE_FIELDS: frozenset[str] = frozenset(ChangeRecord.__required_keys__)
CHANGE_OPTIONAL: frozenset[str] = frozenset(ChangeRecord.__optional_keys__)
OUTCOME_FIELDS: frozenset[str] = frozenset(OutcomeRecord.__required_keys__)
HEADER_FIELDS: frozenset[str] = frozenset(HeaderRecord.__required_keys__)
RUN_END_FIELDS: frozenset[str] = frozenset(RunEndRecord.__required_keys__)
STATUSES: frozenset[str] = frozenset((COMMITTED, ABORTED))


def header_record(
    writer: int, run_id: str, pid: int, started_at: str, durability: str, repaired_bytes: int
) -> HeaderRecord:
    """The header a writer puts first (``repaired_bytes`` only when it cut a torn tail)."""
    rec = HeaderRecord(
        type=TYPE_HEADER,
        format=FORMAT_NAME,
        version=FORMAT_VERSION,
        writer=writer,
        run_id=run_id,
        pid=pid,
        started_at=started_at,
        durability=durability,
    )
    if repaired_bytes:
        rec["repaired_bytes"] = repaired_bytes
    return rec


def change_record(
    txid: int,
    seq: int,
    table: str,
    op: str,
    pk: int,
    after: TextImage | None,
    op_name: str,
    writer: int,
    mono_ns: int,
    old_pk: int | None = None,
    before: TextImage | None = None,
) -> ChangeRecord:
    """One change line; ``old_pk``/``before`` only when recorded (the scenarios)."""
    rec = ChangeRecord(
        txid=txid,
        seq=seq,
        table=table,
        op=op,
        pk=pk,
        after=after,
        op_name=op_name,
        writer=writer,
        mono_ns=mono_ns,
    )
    if old_pk is not None:
        rec["old_pk"] = old_pk
    if before is not None:
        rec["before"] = before
    return rec


def outcome_record(
    txid: int, status: Status, by: str, writer: int, commit_time: str | None = None
) -> OutcomeRecord:
    """One outcome line (``commit_time`` for committed transactions, when known)."""
    rec = OutcomeRecord(type=TYPE_OUTCOME, txid=txid, status=status, by=by, writer=writer)
    if commit_time is not None:
        rec["commit_time"] = commit_time
    return rec


def run_end_record(run_id: str, end_lsn: str, ended_at: str) -> RunEndRecord:
    """A run's end (``end_lsn``: PostgreSQL's ``X/Y`` text)."""
    return RunEndRecord(
        type=TYPE_RUN_END,
        format=FORMAT_NAME,
        version=FORMAT_VERSION,
        run_id=run_id,
        end_lsn=end_lsn,
        ended_at=ended_at,
    )


def has_extras(obj: dict[str, object]) -> bool:
    """Whether a change line records an old key or a before-image (scenario lines)."""
    return "old_pk" in obj or "before" in obj


def is_header(obj: dict[str, object]) -> bool:
    return obj.get("type") == TYPE_HEADER


def is_outcome(obj: dict[str, object]) -> bool:
    return obj.get("type") == TYPE_OUTCOME


def valid_outcome(obj: dict[str, object]) -> bool:
    """An outcome line with every required field and a known status."""
    return (
        obj.keys() >= OUTCOME_FIELDS
        and obj.get("status") in STATUSES
        and type(obj.get("txid")) is int
    )
