"""COPY text encoding of columnar batches: one ``bytes`` block per slice of rows.

PostgreSQL's text format: columns separated by ``\\t``, rows ended by ``\\n``, NULL as ``\\N``,
and ``\\``, ``\\t``, ``\\n``, ``\\r`` inside values escaped with a backslash. Encoding is
column-at-a-time: a text column is joined once with a NUL separator (NUL cannot occur in a
PostgreSQL text value), escaped with ``str.replace`` only when the joined text contains a
special character, encoded to UTF-8 once and split back; numbers and instants are formatted by
numpy arithmetic. Rows are then assembled with ``bytes.join`` over ``zip`` of the columns.
No per-value Python runs, except a loop over NULL positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from loadgen.datagen.dates import DAY_S
from loadgen.datagen.text import NULL, Text, escape

__all__ = ["escape"]  # re-exported: the one COPY escaping function lives in text

_SPECIALS = ("\\", "\t", "\n", "\r")
DEFAULT_BLOCK_ROWS = 16_384


def _civil(days: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], ...]:
    """Days since 1970-01-01 -> (year, month, day); Howard Hinnant's ``civil_from_days``."""
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = yoe + era * 400 + (m <= 2)
    return y, m, d


def _put(out: npt.NDArray[np.uint8], col: int, values: npt.NDArray[np.int64], width: int) -> None:
    for j in range(width - 1, -1, -1):
        out[:, col + j] = 48 + values % 10
        values = values // 10


def format_instants(values: npt.NDArray[np.datetime64]) -> list[bytes]:
    """Format ``datetime64`` values as ISO ``YYYY-MM-DD`` (unit D) or ``YYYY-MM-DD HH:MM:SS``.

    Years 0001-9999 only; ``NaT`` becomes ``\\N``. Sub-second units are truncated to seconds.
    """
    is_date = np.datetime_data(values.dtype)[0] in ("D", "W", "M", "Y")
    if is_date:
        days = values.astype("datetime64[D]").view(np.int64)
        secs = days * DAY_S
    else:
        secs = values.astype("datetime64[s]").view(np.int64)
    nat = np.isnat(values)
    safe = np.where(nat, 0, secs)
    days = np.floor_divide(safe, DAY_S)
    y, m, d = _civil(days)
    width = 10 if is_date else 19
    out = np.empty((len(values), width), dtype=np.uint8)
    _put(out, 0, y, 4)
    out[:, 4] = out[:, 7] = ord("-")
    _put(out, 5, m, 2)
    _put(out, 8, d, 2)
    if not is_date:
        sod = safe - days * DAY_S
        out[:, 10] = ord(" ")
        _put(out, 11, sod // 3600, 2)
        out[:, 13] = out[:, 16] = ord(":")
        _put(out, 14, sod // 60 % 60, 2)
        _put(out, 17, sod % 60, 2)
    encoded: list[bytes] = out.view(f"S{width}").ravel().tolist()
    if nat.any():
        for i in np.flatnonzero(nat).tolist():
            encoded[i] = NULL
    return encoded


def encode_text_column(values: npt.NDArray[np.object_] | Sequence[str | None]) -> list[bytes]:
    """Encode a text column (``str`` or ``None``) to escaped UTF-8 values, NULL as ``\\N``.

    Raises:
        ValueError: a value contains a NUL character (PostgreSQL text cannot hold one).
    """
    arr = values if isinstance(values, np.ndarray) else np.array(list(values), dtype=object)
    null_at: list[int] = np.flatnonzero(np.equal(arr, None)).tolist()  # type: ignore[call-overload]
    items = arr.tolist()
    for i in null_at:
        items[i] = ""
    try:
        joined = "\0".join(items)
    except TypeError:  # non-str objects: format them one by one (slow path)
        joined = "\0".join(map(str, items))
    if joined.count("\0") != max(len(items) - 1, 0):
        raise ValueError("text values cannot contain NUL characters")
    if any(s in joined for s in _SPECIALS):
        joined = escape(joined)
    encoded = joined.encode("utf-8").split(b"\0") if items else []
    for i in null_at:
        encoded[i] = NULL
    return encoded


def encode_column(values: npt.NDArray[np.generic] | Text) -> list[bytes]:
    """Encode one column of a batch to COPY text values (one ``bytes`` per row).

    Args:
        values: ``int``/``uint``/``bool``/``float`` arrays, ``datetime64`` (NaT = NULL),
            object arrays of ``str``/``None`` (other objects are ``str()``-ed), or ``Text``.
    """
    if isinstance(values, Text):
        return values.copy_values()
    kind = values.dtype.kind
    if kind in "iu":
        if len(values) == 0:
            return []
        # one repr of the whole list, split: ~3x faster than astype("S21") (same digits)
        return str(values.tolist())[1:-1].encode().split(b", ")
    if kind == "b":
        return np.where(values, b"t", b"f").tolist()  # type: ignore[no-any-return]
    if kind == "f":
        return [NULL if x != x else repr(x).encode() for x in values.tolist()]
    if kind == "M":
        return format_instants(values)  # type: ignore[arg-type]
    return encode_text_column(values)  # type: ignore[arg-type]


def encode_rows(columns: Sequence[npt.NDArray[np.generic] | Text]) -> bytes:
    """Encode equal-length columns (COPY order) into one COPY text block, ``\\n`` after each row."""
    if not columns or len(columns[0]) == 0:
        return b""
    encoded = [encode_column(c) for c in columns]
    return b"\n".join(map(b"\t".join, zip(*encoded, strict=True))) + b"\n"


def iter_copy_blocks(
    batch: Mapping[str, npt.NDArray[np.generic] | Text],
    columns: Sequence[str],
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> Iterator[bytes]:
    """Yield COPY text blocks of at most ``block_rows`` rows each, for ``copy.write(block)``.

    Args:
        batch: dict of equal-length arrays.
        columns: the columns to write, in the COPY statement's order.
        block_rows: rows per block (memory vs. call overhead).
    """
    n = len(batch[columns[0]])
    for lo in range(0, n, block_rows):
        hi = min(lo + block_rows, n)
        yield encode_rows([batch[c][lo:hi] for c in columns])
