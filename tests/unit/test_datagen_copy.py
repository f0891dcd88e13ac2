"""COPY text encoding: escaping, NULLs, numbers and instants (no database here)."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen import datagen, tables
from loadgen.datagen import copy_text


def _obj(*values: object) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def test_text_escaping_and_nulls() -> None:
    col = _obj("plain", "tab\there", "line\nbreak", "cr\rx", "back\\slash", None, "", "ção")
    assert copy_text.encode_column(col) == [
        b"plain", b"tab\\there", b"line\\nbreak", b"cr\\rx", b"back\\\\slash", b"\\N", b"",
        "ção".encode(),
    ]  # fmt: skip


def test_literal_backslash_n_is_not_a_null() -> None:
    assert copy_text.encode_column(_obj("\\N", None)) == [b"\\\\N", b"\\N"]


def test_nul_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        copy_text.encode_column(_obj("a\0b"))


def test_rows_and_blocks() -> None:
    ids = np.array([1, -20, 300], dtype=np.int64)
    names = _obj("a", None, "c\td")
    assert copy_text.encode_rows([ids, names]) == b"1\ta\n-20\t\\N\n300\tc\\td\n"
    batch = {"id": ids, "nome": names}
    blocks = list(datagen.iter_copy_blocks(batch, ["id", "nome"], block_rows=2))
    assert blocks == [b"1\ta\n-20\t\\N\n", b"300\tc\\td\n"]
    assert copy_text.encode_rows([np.array([], dtype=np.int64)]) == b""


def test_instants_match_numpy_formatting_over_centuries() -> None:
    rng = np.random.default_rng(4)
    secs = rng.integers(-2_500_000_000, 7_000_000_000, 50_000)  # 1890 .. 2191
    edges = np.array(
        [
            "1900-02-28T23:59:59",
            "2000-02-29T12:00:00",
            "1970-01-01T00:00:00",
            "2024-12-31T23:59:59",
            "1969-12-31T23:59:59",
        ],
        dtype="datetime64[s]",
    )
    ts = np.concatenate((secs.view("datetime64[s]"), edges))
    want = [s.replace("T", " ").encode() for s in np.datetime_as_string(ts, unit="s")]
    assert copy_text.format_instants(ts) == want
    days = ts.astype("datetime64[D]")
    assert copy_text.format_instants(days) == [s.encode() for s in np.datetime_as_string(days)]


def test_nat_is_null() -> None:
    ts = np.array(["2024-01-02T03:04:05", "NaT"], dtype="datetime64[s]")
    assert copy_text.encode_column(ts) == [b"2024-01-02 03:04:05", b"\\N"]


@pytest.mark.parametrize("table", tables.TABLE_NAMES)
def test_generated_batches_encode_one_line_per_row(table: str) -> None:
    parents = datagen.ParentIds(
        pacientes=np.arange(1, 101), medicos=np.arange(1, 11), convenios=np.arange(1, 13)
    )
    batch = datagen.generate_piece(table, 3, 1, 501, parents=parents, now=datagen.reference_day())
    columns = tables.BY_NAME[table].columns
    text = b"".join(datagen.iter_copy_blocks(batch, columns, block_rows=128))
    lines = text.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 501
    assert all(line.count(b"\t") == len(columns) - 1 for line in lines[:-1])


@pytest.mark.parametrize("table", tables.TABLE_NAMES)
def test_lazy_text_encodes_like_materialised_strings(table: str) -> None:
    """The seeder's path (Text straight to bytes) equals encoding the public str columns."""
    parents = datagen.ParentIds(
        pacientes=np.arange(1, 101), medicos=np.arange(1, 11), convenios=np.arange(1, 13)
    )
    now = datagen.reference_day()
    lazy = datagen.generate_piece(table, 8, 1, 700, parents=parents, now=now, lazy=True)
    eager = datagen.generate_piece(table, 8, 1, 700, parents=parents, now=now)
    columns = tables.BY_NAME[table].columns
    for c in columns:
        col = lazy[c]
        if isinstance(col, datagen.Text):
            assert col.to_objects().tolist() == eager[c].tolist(), c
            assert col.copy_values() == copy_text.encode_text_column(eager[c]), c
    assert b"".join(datagen.iter_copy_blocks(lazy, columns, 100)) == b"".join(
        datagen.iter_copy_blocks(eager, columns, 333)
    )


def test_text_parts_nulls_and_slices() -> None:
    pool = datagen.Pool(["a\tb", "ção"])
    t = "<" + pool.take(np.array([0, 1, 1])) + ">"
    t = t.with_nulls(np.array([False, True, False]))
    assert t.to_objects().tolist() == ["<a\tb>", None, "<ção>"]
    assert t.copy_values() == [b"<a\\tb>", b"\\N", "<ção>".encode()]
    assert t[1:].to_objects().tolist() == [None, "<ção>"]
    ascii_col = datagen.Text.ascii(np.array([[65, 66, 0], [67, 68, 69]]))
    assert ascii_col.to_objects().tolist() == ["AB", "CDE"]
    assert ascii_col.copy_values() == [b"AB", b"CDE"]
