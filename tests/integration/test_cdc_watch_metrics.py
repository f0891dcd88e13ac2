"""``cdc watch --metrics-port`` beside a real ``stream``, on a real slot of the test server.

``/metrics`` is scraped while the watch runs (counters only grow, histograms are cumulative)
and, during ``--metrics-linger`` after the final report, its figures are compared with the
watch's ``--summary-json``: the same numbers, from the same matcher.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.test_cdc_watch import done, rig, stream, watch  # noqa: F401 - fixture

pytestmark = [pytest.mark.db, pytest.mark.slow]
prometheus_client = pytest.importorskip("prometheus_client")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _scrape_when_up(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _scrape(port)
        except OSError:
            assert proc.poll() is None, "watch exited before serving /metrics"
            assert time.monotonic() < deadline, "no /metrics"
            time.sleep(0.05)


def _v(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _lag_tables(samples: Samples) -> dict[str, list[tuple[float, float]]]:
    """table -> [(le, cumulative count)] in le order."""
    out: dict[str, list[tuple[float, float]]] = {}
    for (name, labels), value in samples.items():
        if name == "loadgen_cdc_lag_seconds_bucket":
            d = dict(labels)
            out.setdefault(d["table"], []).append((float(d["le"]), value))
    return {t: sorted(v) for t, v in out.items()}


def _assert_metrics_equal_summary(end: Samples, doc: dict[str, Any]) -> None:
    """Every figure /metrics shows at the end is the --summary-json's."""
    c = doc["counts"]
    for metric, key in (
        ("matched", "matched"), ("ledger_changes", "ledger_changes"),
        ("captured_changes", "captured_changes"), ("late", "late_matches"),
        ("missing", "missing_reported_live"), ("redelivered", "redelivered"),
        ("reconnects", "reconnects"),
    ):  # fmt: skip
        assert _v(end, f"loadgen_cdc_{metric}_total") == c[key], metric
    checks = {ch["name"]: ch["count"] for ch in doc["checks"]}
    assert _v(end, "loadgen_cdc_duplicated_total") == checks["duplicated"]
    assert _v(end, "loadgen_cdc_unexpected_total") == checks["unexpected"]
    assert _v(end, "loadgen_cdc_overdue") == checks["missing"]
    assert _v(end, "loadgen_cdc_pending") == checks["missing"]  # all decided
    for name, count in checks.items():
        if name != "missing":
            assert _v(end, "loadgen_cdc_check_failures_total", check=name) == count, name
    lag = doc["lag_ms"]
    tables = _lag_tables(end)
    assert set(tables) == set(lag["tables"]) and len(tables) >= 3
    for table, buckets in tables.items():
        counts = [n for _, n in buckets]
        assert counts == sorted(counts) and buckets[-1][0] == float("inf")
        assert (
            counts[-1]
            == lag["tables"][table]["count"]
            == _v(end, "loadgen_cdc_lag_seconds_count", table=table)
        ), table
        # the p50 (ms, a bucket's upper edge) lies within the buckets either side of it
        p50_s = lag["tables"][table]["p50"] / 1000.0
        below = [n for le, n in buckets if le < p50_s / 1.03]
        above = [n for le, n in buckets if le >= p50_s * 1.03]
        assert (not below or below[-1] <= counts[-1] / 2) and above[0] >= counts[-1] / 2
    total_sum = sum(_v(end, "loadgen_cdc_lag_seconds_sum", table=t) for t in tables)
    assert 0 < total_sum / lag["all"]["count"] <= lag["all"]["max"] / 1000.0


def test_metrics_scraped_during_a_watch_equal_its_summary_at_the_end(
    rig: dict[str, Any],  # noqa: F811
) -> None:
    port = _free_port()
    summary = Path(rig["cwd"]) / "watch.json"
    w = watch(rig, "--until-caught-up", "--grace", "20", "--interval", "0.3",
              "--metrics-port", str(port), "--metrics-linger", "120",
              "--summary-json", str(summary))  # fmt: skip
    first = _scrape_when_up(port, w.proc)
    assert _v(first, "loadgen_cdc_matched_total") == 0  # before the stream: nothing yet
    s = stream(rig, "--rate", "150/s", "--duration", "3s")
    during: list[Samples] = []
    while s.poll() is None:
        during.append(_scrape(port))
        time.sleep(0.25)
    done(s)
    w.wait_for(lambda: bool(w.of("final")), timeout_s=90)
    assert w.proc.poll() is None  # lingering: still serving
    end = _scrape(port)
    # while it ran: counters never went down, and it saw the run in progress
    series = [*during, end]
    for name in ("loadgen_cdc_matched_total", "loadgen_cdc_ledger_changes_total",
                 "loadgen_cdc_captured_changes_total"):  # fmt: skip
        values = [_v(x, name) for x in series]
        assert values == sorted(values), name
    assert any(0 < _v(x, "loadgen_cdc_matched_total") < _v(end, "loadgen_cdc_matched_total")
               for x in during)  # fmt: skip
    doc = orjson.loads(summary.read_bytes())
    assert doc["ok"] and doc["counts"]["matched"] >= 200, doc["notes"]
    _assert_metrics_equal_summary(end, doc)
    # SIGTERM ends the linger at once, with the report's exit code
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(timeout=10) == 0


def test_the_figures_of_the_final_sweep_are_published_without_any_interval(
    rig: dict[str, Any],  # noqa: F811
) -> None:
    """No interval ends (--interval 3600): all /metrics shows at the end is what the final
    sweep published; --duration stops the watch once the stream is done."""
    port = _free_port()
    summary = Path(rig["cwd"]) / "watch.json"
    w = watch(rig, "--interval", "3600", "--duration", "12", "--metrics-port", str(port),
              "--metrics-linger", "120", "--summary-json", str(summary))  # fmt: skip
    _scrape_when_up(port, w.proc)
    s = stream(rig, "--rate", "150/s", "--duration", "2s")
    done(s)
    # nothing published before the final sweep (on a slow machine the watch's 12 s may end
    # before the stream does: then the final sweep has run and published already)
    before_end = _v(_scrape(port), "loadgen_cdc_matched_total")
    assert before_end == 0 or w.of("final"), before_end
    w.wait_for(lambda: bool(w.of("final")), timeout_s=90)
    end = _scrape(port)
    doc = orjson.loads(summary.read_bytes())
    assert doc["counts"]["matched"] >= 100 and "stopped: duration" in doc["notes"]
    _assert_metrics_equal_summary(end, doc)
    w.proc.send_signal(signal.SIGINT)
    assert w.proc.wait(timeout=10) in (0, 1)


def test_a_metrics_port_in_use_is_one_line_exit_2_before_the_database(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "loadgen", "cdc", "watch", "--ledger", "l/",
             "--metrics-port", str(port)],
            env={**cli_env, "LOADGEN_DSN": "postgresql://nobody@127.0.0.1:1/none"},
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and f"--metrics-port {port}: cannot listen" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-port", "0"], "--metrics-port 0: must be 1..65535"),
        (["--metrics-port", "9464", "--metrics-linger", "4000"], "--metrics-linger 4000: must be"),
        (["--summary-json", "afile/s.json"], "--summary-json 'afile/s.json': afile is not a dir"),
        (["--summary-json", "/proc/w.json"], "--summary-json '/proc/w.json': cannot write in"),
    ],
)
def test_bad_metrics_flags_are_one_line_exit_2(
    tmp_path: Path, cli_env: dict[str, str], args: list[str], message: str
) -> None:
    (tmp_path / "afile").write_text("")
    r = subprocess.run(
        [sys.executable, "-m", "loadgen", "cdc", "watch", "--ledger", "l/", *args],
        env={**cli_env, "LOADGEN_DSN": "postgresql://nobody@127.0.0.1:1/none"},
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
