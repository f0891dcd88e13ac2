"""COPY text encoding round-trips through a real COPY FROM STDIN."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from loadgen import datagen

pytestmark = pytest.mark.db

NASTY = [
    "tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N", "\\.", "end\\",
    "ação, coração — 🙂", "", " leading and trailing ", None, "a\tb\nc\\d\re",
]  # fmt: skip


def test_round_trip_through_copy(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE rt (id bigint, t text, ts timestamp, d date)")
    n = len(NASTY)
    text = np.empty(n, dtype=object)
    text[:] = NASTY
    ts = np.array(["2024-02-29T23:59:59"] * (n - 1) + ["NaT"], dtype="datetime64[s]")
    d = np.array(["1900-01-01"] + ["2099-12-31"] * (n - 1), dtype="datetime64[D]")
    batch = {"id": np.arange(1, n + 1, dtype=np.int64), "t": text, "ts": ts, "d": d}
    with conn.cursor() as cur, cur.copy("COPY rt (id, t, ts, d) FROM STDIN") as copy:
        for block in datagen.iter_copy_blocks(batch, ["id", "t", "ts", "d"], block_rows=5):
            copy.write(block)
    rows = conn.execute("SELECT id, t, ts, d FROM rt ORDER BY id").fetchall()
    assert [r[1] for r in rows] == NASTY
    assert [r[2] for r in rows] == ts.tolist()
    assert [r[3] for r in rows] == d.tolist()
