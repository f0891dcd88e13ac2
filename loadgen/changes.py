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
    op: str  # "c" insert, "u" update, "d" delete (Debezium's letters)
    pk: int  # the row's ``id`` (after the change; for deletes, the deleted id)
    after: dict[str, str | None] | None  # text after-image; None for deletes
    op_name: str  # registry name of the operation that made it, e.g. "insert_consulta"
