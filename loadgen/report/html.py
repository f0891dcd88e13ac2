"""The report as one self-contained HTML file: inline SVG charts, no script, no network."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from loadgen.report.charts import chart_svg, charts_for
from loadgen.report.runs import Run

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }
figure { margin: 0 0 1.5em; } figure svg { max-width: 100%; height: auto; }
.runs { display: flex; gap: 2em; flex-wrap: wrap; }
"""

_SUMMARY_KEYS = (
    "total_ops", "ops_per_s", "target_rate_per_s", "elapsed_s", "committed_txns", "workers",
    "by_kind", "errors", "in_doubt", "latency_ms", "schedule_lag_ms", "stop_reason", "run_id",
)  # fmt: skip
_SETTING_KEYS = (
    "run_id", "started_at", "workers", "target_rate_per_s", "arrivals", "duration_s", "max_ops",
    "batch_size", "seed", "profile", "report_interval_s", "mix",
)  # fmt: skip


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items()) or "-"
    return "-" if v is None else str(v)


def _table(rows: Sequence[tuple[str, Any]], css_id: str) -> str:
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_value(v))}</td></tr>" for k, v in rows
    )
    return f'<table id="{css_id}">{body}</table>'


def _phase_table(run: Run, i: int) -> str:
    if not run.phases:
        return ""
    head = "<tr><th>phase</th><th>duration s</th><th>target ops/s</th><th>ops/s</th>"
    head += "<th>ops</th><th>p99 ms</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(str(p.get('name')))}</td><td>{p.get('duration_s')}</td>"
        f"<td>{p.get('target_rate_per_s')}</td><td>{p.get('ops_per_s')}</td>"
        f"<td>{p.get('ops')}</td><td>{(p.get('latency_ms') or {}).get('p99')}</td></tr>"
        for p in run.phases
    )
    return f'<h3>Phases</h3><table id="phases-{i}">{head}{rows}</table>'


def render(runs: Sequence[Run]) -> str:
    """The whole document: per run its settings, summary and phases; then every chart."""
    columns = []
    for i, run in enumerate(runs):
        settings = [(k, run.header.get(k)) for k in _SETTING_KEYS if k in run.header]
        summary = [(k, run.summary[k]) for k in _SUMMARY_KEYS if run.summary and k in run.summary]
        columns.append(
            f'<div class="run"><h2>{html.escape(run.label)}</h2>'
            f"<h3>Settings</h3>{_table(settings, f'settings-{i}')}"
            f"<h3>Summary</h3>{_table(summary, f'summary-{i}') if summary else '<p>none</p>'}"
            f"{_phase_table(run, i)}</div>"
        )
    figures = "".join(
        f'<figure id="chart-{c.key}" data-chart="{c.key}"><figcaption>'
        f"{html.escape(c.title)}</figcaption>{chart_svg(c, runs)}</figure>"
        for c in charts_for(runs)
    )
    title = "loadgen report: " + ", ".join(r.label for r in runs)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><div class="runs">{"".join(columns)}</div>'
        f"{figures}</body></html>\n"
    )
