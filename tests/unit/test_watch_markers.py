"""The watch's marker figures: matched by payload (run id, number), gaps, doubles, lag."""

from __future__ import annotations

import orjson

from loadgen.cdc.watch_markers import MarkerStats, progress_part
from loadgen.stream.markers import payload


def test_markers_are_counted_by_payload_with_gaps_doubles_and_late_ones() -> None:
    m = MarkerStats()
    t = 1_000.0
    for seq in (0, 1, 3):  # 2 skipped
        m.captured(payload("aa", seq, t + seq), t + seq + 0.004)
    first = m.take_interval()
    assert (first["count"], first["in_interval"], first["gaps"]) == (3, 3, 1)
    assert first["lag_ms"]["count"] == 3 and abs(first["lag_ms"]["max"] - 4.0) < 0.01
    m.captured(payload("aa", 1, t + 1), t + 9)  # again: a double, not a marker
    m.captured(payload("aa", 2, t + 2), t + 2.5)  # the gap filled late
    m.captured(payload("bb", 0, t), t + 0.001)  # another run numbers from 0 on its own
    m.captured(b"not json", t)
    m.captured(orjson.dumps({"run_id": "aa", "seq": 5}), t)  # no ts: not a marker
    second = m.take_interval()
    assert (second["count"], second["in_interval"], second["gaps"]) == (5, 2, 0)
    assert (second["duplicated"], second["out_of_order"], second["bad"]) == (1, 1, 2)
    assert abs(second["lag_ms"]["max"] - 500.0) < 0.01  # the double's 8 s lag is not counted
    assert m.take_interval()["lag_ms"] == {"count": 0}  # an interval without markers
    totals = m.totals()
    assert totals["runs"] == {"aa": 4, "bb": 1}
    assert totals["lag_ms"]["count"] == 5 and abs(totals["lag_ms"]["max"] - 500.0) < 0.01
    assert progress_part({**second, "gaps": 1}).startswith(" | markers 5 gaps 1 lag p50")
    assert progress_part({"count": 0}) == ""
