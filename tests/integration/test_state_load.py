"""How a worker reads its candidates (issue 11): parent ids as a range when they have no gaps,
integer columns packed into one bytea; the same values a cursor returns."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from loadgen.errors import SchemaMissingError
from loadgen.ops import state

pytestmark = pytest.mark.db


def test_int8_columns_match_a_plain_query(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE t (a int, b bigint, c smallint)")
    conn.execute(
        "INSERT INTO t SELECT g, g * 10000000000 - 7, (g % 300) - 150"
        " FROM generate_series(1, 2500) g"
    )
    query = sql.SQL("SELECT a, b, c FROM t WHERE a % 3 = 1")
    got = state._int8_columns(conn, query, 3)
    expected = sorted(conn.execute(query.as_string(conn)).fetchall())
    assert got.dtype == np.int64 and got.shape == (len(expected), 3)
    assert sorted(map(tuple, got.tolist())) == expected
    empty = state._int8_columns(conn, sql.SQL("SELECT a, b, c FROM t WHERE false"), 3)
    assert empty.shape == (0, 3)
    assert state._int8_column(conn, sql.SQL("SELECT b FROM t WHERE a = 2")).tolist() == [
        2 * 10000000000 - 7
    ]


def test_parent_ids_with_and_without_gaps(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE dense (id int PRIMARY KEY)")
    conn.execute("INSERT INTO dense SELECT generate_series(5, 1004)")
    assert state._parent_ids(conn, "dense").tolist() == list(range(5, 1005))
    conn.execute("CREATE TABLE holes (id bigint PRIMARY KEY)")
    conn.execute("INSERT INTO holes VALUES (9), (2), (7), (3000000000)")
    assert state._parent_ids(conn, "holes").tolist() == [2, 7, 9, 3000000000]
    conn.execute("CREATE TABLE none_yet (id int PRIMARY KEY)")
    with pytest.raises(SchemaMissingError, match="none_yet is empty"):
        state._parent_ids(conn, "none_yet")


def test_dated_rows_match_an_ordered_query(conn: psycopg.Connection[Any]) -> None:
    """Packed timestamps come back as the datetimes psycopg loads, in (time, id) order: ties
    on the time broken by id, microseconds kept, times before 2000 (negative on the wire)."""
    conn.execute("CREATE TABLE d (id bigint, data timestamp NOT NULL)")
    conn.execute(
        "INSERT INTO d SELECT g, timestamp '1999-12-31 23:59:59.999999'"
        " + (g % 97) * interval '1 hour 0.000123 s' - (g % 5) * interval '30 years'"
        " FROM generate_series(1, 3000) g"
    )
    query = sql.SQL("SELECT data, id FROM d WHERE id % 2 = 0")
    got = state._dated_rows(conn, query)
    expected = conn.execute(
        "SELECT data, id FROM d WHERE id % 2 = 0 ORDER BY data, id", binary=True
    ).fetchall()
    assert got == expected and len(got) == 1500
    assert len({when for when, _ in got}) < len(got)  # there were ties to break
    assert state._dated_rows(conn, sql.SQL("SELECT data, id FROM d WHERE false")) == []
    conn.execute("INSERT INTO d VALUES (0, timestamp '10000-01-01')")
    with pytest.raises(psycopg.DataError, match="out of Python's range"):
        state._dated_rows(conn, sql.SQL("SELECT data, id FROM d"))
