"""The row-change record shared by the workload, the ledger and the CDC verifier."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RowChange:
    """One committed row change, as a CDC consumer should see it.

    ``after`` maps every column of the row to PostgreSQL's text output for it (``None`` for
    SQL NULL), rendered under the session settings that ``loadgen.db`` pins (TimeZone=UTC,
    DateStyle=ISO, extra_float_digits=3, bytea_output=hex); it is ``None`` for deletes.
    """

    table: str  # unqualified table name
    op: str  # "c" insert, "u" update, "d" delete, "t" truncate (Debezium's letters)
    pk: int  # the row's ``id`` (after the change; for deletes, the deleted id; 0 for truncate)
    after: dict[str, str | None] | None  # text after-image; None for deletes and truncates
    op_name: str  # registry name of the operation that made it, e.g. "insert_consulta"
    # Optional, for the CDC scenarios (``loadgen.scenarios``); the defaults mean "not recorded".
    old_pk: int | None = None  # an update that changed the row's ``id``: the ``id`` before it
    # the before-image the replica identity obliges the server to send (column → text: the
    # identity's columns, or every column under FULL); None when no old tuple is sent
    before: dict[str, str | None] | None = None
