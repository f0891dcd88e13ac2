"""``stream --timeseries``, ``--phases`` and ``--metrics-port`` against a real PostgreSQL.

One 6 s CLI run at 50/s checks the timeseries against the summary and the ledger; one in-process
run with phases (a steady 10 s phase, then a short idle one) checks the phase rate and
scrapes ``/metrics`` during and after it.
"""

from __future__ import annotations

import json
import math
import re
import threading
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from loadgen.ledger import read_ledger
from loadgen.ops.mix import parse_mix
from loadgen.stream import coordinator
from loadgen.stream.metrics import StreamMetrics
from loadgen.stream.phases import parse_phases
from loadgen.stream.timeseries import read_timeseries
from tests.integration.test_stream import (  # noqa: F401 - fixtures
    _ledger_row_changes,
    _run,
    env,
    seeded_dsn,
)

pytestmark = pytest.mark.db


def _sum_dicts(records: list[dict[str, Any]], key: str) -> Counter[str]:
    total: Counter[str] = Counter()
    for r in records:
        total.update(r[key])
    return +total


def _sum_row_changes(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = {}
    for r in records:
        for table, kinds in r["row_changes"].items():
            out.setdefault(table, Counter()).update(kinds)
    return {t: {k: c[k] for k in ("insert", "update", "delete")} for t, c in sorted(out.items())}


@pytest.mark.timing
def test_timeseries_sums_equal_the_summary_and_the_ledger_and_a_steady_rate_is_steady(
    env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    result = _run(
        ["stream", "--rate", "50/s", "--duration", "6", "--workers", "2", "--progress",
         "--timeseries", "ts.jsonl", "--summary-json", "s.json", "--ledger", "ledger/"],
        env, tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    records = read_timeseries(tmp_path / "ts.jsonl")
    assert records[0]["kind"] == "run" and records[0]["run_id"] == summary["run_id"]
    assert records[-1] == {"kind": "summary", **summary}
    intervals = [r for r in records if r["kind"] == "interval"]
    assert [r["interval"] for r in intervals] == list(range(len(intervals)))
    assert 6 <= len(intervals) <= 7
    assert sum(r["ops"] for r in intervals) == summary["total_ops"]
    assert sum(r["committed_txns"] for r in intervals) == summary["committed_txns"]
    assert _sum_dicts(intervals, "by_op") == Counter(summary["by_op"])
    assert _sum_dicts(intervals, "by_kind") == +Counter(summary["by_kind"])
    assert _sum_row_changes(intervals) == summary["row_changes"]
    assert _ledger_row_changes(read_ledger(str(tmp_path / "ledger"))) == summary["row_changes"]
    # steady: 50 an interval, +-1, plus the operations that a commit's latency or a late start
    # (schedule lag: the worker was off the CPU) moved across an edge, at most rate x (the
    # interval's max latency + its lag p99, ~its max with 50 ops), and the slots a worker
    # kept off the CPU lost (token-bucket overflow: dropped, counted where noticed — this
    # interval or the next); the first interval holds the warm-up
    for i, r in enumerate(intervals[1:6], start=1):
        late_ms = r["latency_ms"]["max"] + r["schedule_lag_ms"]["p99"]
        moved = math.ceil(50 * late_ms / 1000)
        lost = r["dropped"] + (intervals[i + 1]["dropped"] if i + 1 < len(intervals) else 0)
        assert abs(r["ops"] - 50) <= 1 + moved + lost, (i, r["ops"], r["latency_ms"], lost)
        assert r["target_rate_per_s"] == 50.0
    # the progress lines show the same intervals (each once every worker reported it; a line
    # that gave up waiting, after 200 ms, shows what had arrived: at most one here)
    shown = [
        (float(m[1]), float(m[2]))
        for m in re.finditer(r"^progress: ([0-9.]+) s, ([0-9.]+) ops/s", result.stderr, re.M)
    ]
    assert len(shown) >= 5, result.stderr
    by_end = {round(r["t1_s"], 1): r["ops"] / r["duration_s"] for r in intervals[:6]}
    same = [abs(by_end[t] - rate) < 0.05 for t, rate in shown if t in by_end]
    assert len(same) == len(shown) and same.count(False) <= 1, (shown, by_end)
    lat = [r["latency_ms"] for r in intervals if r["ops"]]
    assert all(x["p50"] <= x["p95"] <= x["p99"] <= x["max"] for x in lat)


def js_dropped(summary: Any) -> int:
    return int(summary.total.num_dropped)


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timing
def test_phases_hit_their_rates_and_metrics_equal_the_summary(
    seeded_dsn: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    plan = parse_phases("10s@40/s,1.5s@0")
    spec = coordinator.RunSpec(
        dsn=seeded_dsn, num_workers=2, rate_per_s=plan.num_tokens / plan.duration_s,
        is_paced=False, arrivals="token-bucket", burst=None, duration_s=plan.duration_s,
        max_ops=None, batch_size=50, mix=parse_mix("insert=60,update=40"), seed=5,
        report_interval_s=0.5, interval_s=2.0, max_jitter_ms=0, connect_retry_s=2.0,
        phases=plan, timeseries=str(tmp_path / "ts.jsonl"),
    )  # fmt: skip
    port = _free_port()
    metrics = StreamMetrics(port, host="127.0.0.1")
    metrics.start()
    during: list[dict[Any, float]] = []
    done = threading.Event()

    def scrape_while_running() -> None:
        while not done.is_set():
            sample = _scrape(port)
            if sample.get(("loadgen_workers_alive", ())):
                during.append(sample)
            done.wait(0.5)

    scraper = threading.Thread(target=scrape_while_running)
    scraper.start()
    try:
        summary = coordinator.run(spec, metrics=metrics)
    finally:
        done.set()
        scraper.join()
    try:
        final = _scrape(port)
    finally:
        metrics.close()
    js = summary.to_json()
    # per phase: within 2 % of its rate over its 10 s; the idle phase does nothing
    steady, idle = js["phases"]
    assert steady["duration_s"] == pytest.approx(10)
    assert abs(steady["ops"] - 400) <= 0.02 * 400, steady["ops"]
    assert idle["target_rate_per_s"] == 0  # what it holds completed past the steady phase
    assert steady["ops"] + idle["ops"] == 400 - js_dropped(summary)
    assert js["total_ops"] == steady["ops"] + idle["ops"]
    records = read_timeseries(tmp_path / "ts.jsonl")
    assert [r["ops"] for r in records if r["kind"] == "phase"] == [steady["ops"], idle["ops"]]
    assert {r["phase"] for r in records if r["kind"] == "interval" and r["t0_s"] >= 10} == {1}
    # scraped during the run: the target rate and live workers; at the end: the summary's counts
    alive = [s[("loadgen_workers_alive", ())] for s in during]
    assert alive and set(alive) <= {1, 2} and alive.count(2) >= len(alive) - 1
    assert {s[("loadgen_rate_target_ops_per_second", ())] for s in during} <= {40.0, 0.0}
    committed = {
        labels: v
        for (name, labels), v in final.items()
        if name == "loadgen_ops_total" and ("outcome", "committed") in labels
    }
    by_op = {dict(labels)["operation"]: v for labels, v in committed.items()}
    assert by_op == {k: float(v) for k, v in js["by_op"].items()}
    assert final[("loadgen_txns_total", ())] == js["committed_txns"]
    assert final[("loadgen_latency_seconds_count", ())] == js["total_ops"] + js["no_op"]["total"]
    assert final[("loadgen_latency_seconds_bucket", (("le", "+Inf"),))] == js["total_ops"]
    rows = sum(v for (name, _), v in final.items() if name == "loadgen_rows_total")
    assert rows == sum(sum(k.values()) for k in js["row_changes"].values())
    assert final[("loadgen_workers_alive", ())] == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--phases", "10s@5/s", "--rate", "5/s"], "--rate cannot go with --phases"),
        (["--phases", "10s@5/s", "--duration", "5"], "--duration cannot go with --phases"),
        (["--phases", "10s@fast"], "--phases phase 1 rate"),
        (["--phases", "5s@0"], "schedule no operation"),
        (["--timeseries", "afile/ts.jsonl", "--max-ops", "1"], "afile is not a directory"),
        (["--summary-json", "afile/d/s.json", "--max-ops", "1"], "afile is not a directory"),
        (["--summary-json", "/proc/x.json", "--duration", "2"], "cannot write in /proc"),
        (["--timeseries", "/proc/x.jsonl", "--duration", "2"], "cannot write in /proc"),
        (["--metrics-port", "0", "--max-ops", "1"], "--metrics-port = 0 must be 1..65535"),
    ],
)
def test_bad_observe_flags_are_one_line_exit_2(
    env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    args: list[str],
    needle: str,
) -> None:
    (tmp_path / "afile").write_text("")
    result = _run(["stream", "--no-progress", *args], env, tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("loadgen: error")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not result.stderr.startswith("stream:")  # refused before the header: nothing ran


def test_output_paths_create_their_missing_directories_like_the_ledger(
    env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    result = _run(
        ["stream", "--no-progress", "--max-ops", "5", "--rate", "unlimited",
         "--ledger", "run1/", "--timeseries", "run1/ts/ts.jsonl",
         "--summary-json", "run1/out/summary.json"],
        env, tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run1/out/summary.json").read_text())
    assert summary["total_ops"] >= 5
    assert read_timeseries(tmp_path / "run1/ts/ts.jsonl")
    assert list((tmp_path / "run1").glob("*.jsonl"))  # the ledger's parts, in the same directory


def test_a_metrics_port_in_use_is_exit_2_before_the_run(
    env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run(["stream", "--no-progress", "--max-ops", "5", "--metrics-port", str(port)],
                      env, tmp_path)  # fmt: skip
    assert result.returncode == 2 and f"--metrics-port {port}: cannot listen" in result.stderr
    assert "operations committed" not in result.stdout  # nothing ran
