"""The ground-truth ledger: each transaction's intent before COMMIT and its outcome after.

``records`` is the schema (format version 2), ``writer`` writes a part, ``reader`` is the one
reader (``contents`` reads a whole ledger into objects from its chunks), ``resolve`` asks the
server (``pg_xact_status``) about intents without an outcome. Contract and format:
``docs/ledger.md``.
"""

from typing import TYPE_CHECKING, Any

from loadgen.ledger.changes import RowChange
from loadgen.ledger.records import COMMITTED, FORMAT_VERSION
from loadgen.ledger.writer import (
    LEDGER_FORMAT_VERSION,
    PART_GLOB,
    LedgerWriteError,
    LedgerWriter,
    append_outcomes,
    part_files,
    part_path,
)

if TYPE_CHECKING:
    from loadgen.ledger.contents import (
        LedgerContents,
        LedgerEntry,
        entry_from_obj,
        read_ledger,
        read_line,
    )
    from loadgen.ledger.reader import BadLine, ChangeLine, Chunk, LedgerScan, Resolver, scan

# The reading side (msgspec, numpy) is imported when first asked for: a stream's processes
# write the ledger and never read it (``bench/bench_startup.py``: ~40 ms less in each).
_LAZY = {
    **dict.fromkeys(
        ("LedgerContents", "LedgerEntry", "entry_from_obj", "read_ledger", "read_line"),
        "loadgen.ledger.contents",
    ),
    **dict.fromkeys(
        ("BadLine", "ChangeLine", "Chunk", "LedgerScan", "Resolver", "scan"),
        "loadgen.ledger.reader",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "COMMITTED",
    "FORMAT_VERSION",
    "LEDGER_FORMAT_VERSION",
    "PART_GLOB",
    "BadLine",
    "ChangeLine",
    "Chunk",
    "LedgerContents",
    "LedgerEntry",
    "LedgerScan",
    "LedgerWriteError",
    "LedgerWriter",
    "Resolver",
    "RowChange",
    "append_outcomes",
    "entry_from_obj",
    "part_files",
    "part_path",
    "read_ledger",
    "read_line",
    "scan",
]
