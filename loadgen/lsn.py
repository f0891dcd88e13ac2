"""PostgreSQL's log sequence numbers (LSN): the ``X/Y`` text PostgreSQL prints and its int.

One place for the conversion: the pgoutput decoder, the ledger's run ends, the live watch and
the Debezium capture's status all use it. Standard library only.
"""

from __future__ import annotations

import re

_LSN = re.compile(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}")


def format_lsn(lsn: int) -> str:
    """Render an LSN the way PostgreSQL does (``16/B374D848``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """PostgreSQL's ``X/Y`` LSN text as an int. Raises ValueError when it is not one."""
    if not _LSN.fullmatch(text):
        raise ValueError(f"not an LSN: {text!r}")
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)
