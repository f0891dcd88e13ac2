"""Verification runs: a feeder's captured changes through a ``Verifier``, then the report.

``verify_slot`` reads loadgen's own pgoutput slot (exactly once by default),
``verify_debezium`` a Debezium event file (at least once by default). Both block for the whole
run, in the calling thread, with the cyclic GC paused (``gc_paused``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg

from loadgen.cdc import carried, ledger_index, slot_state
from loadgen.cdc import pgoutput as P
from loadgen.cdc import slot as slot_mod
from loadgen.cdc.change import Feeder, chunks_of
from loadgen.cdc.results import VerifyReport
from loadgen.cdc.slot_feed import SlotFeeder, partition_roots
from loadgen.cdc.verify import DEFAULT_MAX_EXAMPLES, Verifier
from loadgen.errors import CheckFailedError, ConfigError
from loadgen.ledger import part_files
from loadgen.ledger.resolve import server_resolver

DEFAULT_DELIVERY = {"slot": "exactly-once", "debezium": "at-least-once"}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of short-lived acyclic objects (parsed
    ledger lines, decoded tuples) are made: its generational passes otherwise cost ~20 % of the
    verifier's time. Nothing here creates reference cycles that need it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def feed(verifier: Verifier, feeder: Feeder) -> None:
    """Give every captured change of ``feeder`` to ``verifier``, in order (blocks)."""
    verifier.where = feeder.where
    verifier.take(chunks_of(feeder))


def _finish(verifier: Verifier, feeder: Feeder, conn: psycopg.Connection | None) -> VerifyReport:
    count, examples = feeder.problems()
    verifier.counts["source_lines"] = count
    verifier.examples["source_lines"] = examples[: verifier.max_examples]
    report = verifier.finish(conn, feeder.source)
    report.notes.extend(feeder.notes())
    report.counts.update(feeder.counts())
    return report


def _load(
    ledger_path: str | Sequence[str], conn: psycopg.Connection, publication: str | None
) -> tuple[ledger_index.LedgerIndex, dict[int, frozenset[str]]]:
    """The ledger, its after-images restricted to the columns a stream of ``publication``
    carries (``carried``); and those left out, by table code. Intents without an outcome are
    resolved by ``conn``'s server."""
    ledger = ledger_index.load(ledger_path, resolve=server_resolver(conn))
    if ledger.num_changes == 0 and not ledger.truncates:
        raise ConfigError(f"--ledger {_label(ledger_path)}: the ledger holds no changes")
    uncarried = carried.uncarried_columns(conn, list(ledger.codes.names), publication)
    carried.restrict_ledger(ledger, uncarried)
    return ledger, {ledger.codes.code(t): cols for t, cols in uncarried.items()}


def _label(ledger_path: str | Sequence[str]) -> str:
    if isinstance(ledger_path, str):
        return repr(ledger_path)
    return ", ".join(repr(p) for p in ledger_path)


def _schema(conn: psycopg.Connection) -> str:
    return str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]


def verify_slot(
    conn: psycopg.Connection,
    ledger_path: str | Sequence[str],
    *,
    slot: str,
    publication: str,
    consume: bool = False,
    delivery: str = DEFAULT_DELIVERY["slot"],
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    batch_changes: int = slot_mod.DEFAULT_BATCH_CHANGES,
) -> VerifyReport:
    """Verify the verifier's slot against the ledger at ``ledger_path`` (autocommit ``conn``).

    Reads a temporary copy of the slot up to the current WAL position (the slot itself is
    untouched unless ``consume``), then checks the final state against the tables in the
    connection's current schema.

    Raises:
        ConfigError: no ledger at ``ledger_path``, or an empty ledger.
        SchemaMissingError: no such slot or publication in this database.
        CheckFailedError: the stream cannot be decoded.
    """
    with gc_paused():
        part_files(ledger_path)  # no ledger is bad input: said before the slot is touched
        schema, encoding = _schema(conn), slot_mod.python_encoding(conn)
        table_of = partition_roots(conn)
        # the server decodes the slot (reader thread) while the ledger loads
        reader = slot_mod.SlotReader(
            conn, slot, publication, consume=consume, batch_changes=batch_changes
        )
        with reader:
            ledger, uncarried = _load(ledger_path, conn, publication)
            verifier = Verifier(ledger, delivery=delivery, publication=publication,
                                max_examples=max_examples)  # fmt: skip
            verifier.uncarried = uncarried
            feeder = SlotFeeder(
                (),
                batches=reader,
                name=slot,
                schema=schema,
                codes=ledger.codes,
                identity_lookup=ledger.pk_by_identity,
                encoding=encoding,
                table_of=table_of,
                consume=consume,
            )
            try:
                feed(verifier, feeder)
            except P.DecodeError as exc:
                raise CheckFailedError(f"slot {slot}: cannot decode the stream: {exc}") from exc
        report = _finish(verifier, feeder, conn)
    hint = _before_slot_hint(verifier, slot_state.slot_origin(conn, slot))
    if hint:
        report.notes.append(hint)
    return report


def verify_debezium(
    conn: psycopg.Connection,
    ledger_path: str | Sequence[str],
    events_path: str,
    *,
    publication: str | None = None,
    delivery: str = DEFAULT_DELIVERY["debezium"],
    fail_on_limits: bool = False,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> VerifyReport:
    """Verify a Debezium event file against the ledger, and replay it against the tables.

    Raises:
        ConfigError: missing ledger or events file, an empty ledger, or a file that is not
            Debezium change events.
    """
    from loadgen.cdc.debezium import DebeziumFeeder  # the reader pulls in its converters
    from loadgen.cdc.rows import DbCatalog

    with gc_paused():
        ledger, uncarried = _load(ledger_path, conn, publication)
        feeder = DebeziumFeeder(
            events_path,
            catalog=DbCatalog(conn),
            schema=_schema(conn),
            codes=ledger.codes,
            identity_lookup=ledger.pk_by_identity,
            table_of=partition_roots(conn),
        )
        verifier = Verifier(
            ledger,
            delivery=delivery,
            limits=feeder.limits,
            fail_on_limits=fail_on_limits,
            publication=publication,
            max_examples=max_examples,
        )
        verifier.uncarried = uncarried
        feed(verifier, feeder)
        return _finish(verifier, feeder, conn)


def _before_slot_hint(verifier: Verifier, origin: slot_state.SlotOrigin | None) -> str | None:
    """A note when most missing changes belong to transactions that ended before the slot
    existed (a slot only sees later commits): the ledger predates ``cdc setup``."""
    if origin is None or origin.xmin_before is None:
        return None
    L = verifier.L
    missing = ~L.is_dup & (verifier.match_count == 0)
    truncate_xids = [
        L.truncates[i][0] for idxs in verifier._ledger_truncates.values() for i in idxs
    ]
    total = int(missing.sum()) + len(truncate_xids)
    before = int((L.xid[missing] < origin.xmin_before).sum()) + sum(
        1 for x in truncate_xids if x < origin.xmin_before
    )
    if not before or before * 2 < total:
        return None
    return (
        f"{before:,} of the {total:,} missing changes committed before the slot was"
        f" created at {origin.created_at} (LSN {origin.start_lsn}): a slot only sees later"
        " commits; run `loadgen cdc setup` before the load"
    )
