"""The ground-truth ledger: the row changes a run committed (``writer``), and ``RowChange``."""

from loadgen.ledger.changes import RowChange
from loadgen.ledger.writer import (
    LEDGER_FORMAT_VERSION,
    PART_GLOB,
    BadLine,
    LedgerContents,
    LedgerEntry,
    LedgerWriter,
    entry_from_obj,
    iter_lines,
    part_files,
    part_path,
    read_ledger,
    read_line,
)

__all__ = [
    "LEDGER_FORMAT_VERSION",
    "PART_GLOB",
    "BadLine",
    "LedgerContents",
    "LedgerEntry",
    "LedgerWriter",
    "RowChange",
    "entry_from_obj",
    "iter_lines",
    "part_files",
    "part_path",
    "read_ledger",
    "read_line",
]
