"""``loadgen report`` renders in a real headless Chromium: every chart is in the DOM, as SVG,
the page needs no network, and the screenshot is a real image (look at it: see the brief)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from loadgen.stream.phases import parse_phases
from loadgen.stream.stats import IntervalStats
from loadgen.stream.timeseries import TimeseriesWriter, figures

pytest.importorskip("matplotlib")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHART_IDS = ("chart-throughput", "chart-latency", "chart-lag", "chart-errors", "chart-cdc-lag")


def _write_run(directory: Path, rate: float, with_watch: bool) -> None:
    """A run directory as `stream --timeseries --summary-json` leaves it (20 intervals)."""
    directory.mkdir()
    lines = [{"kind": "run", "schema": 1, "run_id": directory.name, "workers": 2,
              "target_rate_per_s": rate, "report_interval_s": 1.0, "phases": None}]  # fmt: skip
    for k in range(20):
        stats = IntervalStats()
        n = int(rate) + (k % 3)
        names = ["insert_consulta"] * (n * 2 // 3) + ["update_exame"] * (n - n * 2 // 3)
        stats.record_commit(names, [], [0] * n, 1_000_000, 1_000_000 * (5 + k))
        if k == 7:
            stats.record_error("40", 3)
        record = {"kind": "interval", "interval": k, "t0_s": k, "t1_s": k + 1.0,
                  "duration_s": 1.0, "target_rate_per_s": rate}  # fmt: skip
        lines.append({**record, **figures(stats, 1.0)})
        if with_watch:
            lines.append({"kind": "watch", "t1_s": k + 1.0, "matched": 10 * k, "pending": 3,
                          "lag_ms": {"p50": 20.0 + k, "p99": 90.0 + 2 * k}})  # fmt: skip
    (directory / "ts.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    (directory / "summary.json").write_bytes(orjson.dumps({"total_ops": 20 * int(rate)}))
    if not with_watch:  # `cdc watch --json > watch.jsonl` beside the run instead
        watch = [{"type": "interval", "elapsed_s": k + 1.0, "matched": 9 * k,
                  "lag_ms": {"all": {"count": 9, "p50": 5.0 + k, "p95": 9.0, "p99": 12.0 + k,
                                     "max": 30.0}, "tables": {}}} for k in range(20)]  # fmt: skip
        watch.append({"type": "final", "ok": True})
        (directory / "watch.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in watch))


def _report(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADGEN_")}
    return subprocess.run([sys.executable, "-m", "loadgen", "report", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_the_report_renders_every_chart_in_headless_chromium(tmp_path: Path) -> None:
    _write_run(tmp_path / "run1", 50.0, with_watch=True)
    _write_run(tmp_path / "run2", 80.0, with_watch=False)
    result = _report(["run1", "run2", "--out", "r.html", "--png", "r.png"], tmp_path)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "r.html").read_text()
    # nothing to fetch: no script, stylesheet or image from elsewhere (namespaces are names)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page) and "<script" not in page
    assert "<link" not in page and "@import" not in page
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chrome = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,3000"]  # fmt: skip
    url = (tmp_path / "r.html").as_uri()
    dom = subprocess.run([*chrome, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout  # fmt: skip
    for chart in CHART_IDS:  # each chart a figure with an SVG drawing, one column per run
        start = dom.index(f'id="{chart}"')
        section = dom[start : dom.find("</figure>", start)]
        assert section.count("<svg") == 1 and section.count('id="axes_') == 2, chart
    cdc = dom[dom.index('id="chart-cdc-lag"') :]
    assert "no cdc watch records" not in cdc[: cdc.find("</figure>")]  # both runs have lag
    assert 'id="summary-0"' in dom and 'id="summary-1"' in dom and "run1" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*chrome, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000  # charts, not a blank page
    keep = os.environ.get("LOADGEN_REPORT_SCREENSHOT")  # to look at it: a path to copy it to
    if keep:
        shutil.copy(shot, keep)


def test_a_report_of_a_real_writer_file_and_bad_input(tmp_path: Path) -> None:
    w = TimeseriesWriter(tmp_path / "ts.jsonl", 1.0, [0], parse_phases("2s@5/s"))
    w.open({"workers": 1})
    w.close(None, 0)
    result = _report(["ts.jsonl", "--out", "r.html"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'id="chart-cdc-lag"' not in (tmp_path / "r.html").read_text()  # no watch records
    (tmp_path / "x.jsonl").write_text('{"kind": "run", "schema": 99}\n')
    bad = _report(["x.jsonl"], tmp_path)
    assert bad.returncode == 2 and "schema 99" in bad.stderr and "Traceback" not in bad.stderr
    missing = _report(["nope"], tmp_path)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
