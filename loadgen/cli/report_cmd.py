"""``loadgen report``: plots of stream runs in one self-contained HTML file (and a PNG)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from loadgen.cli.app import app
from loadgen.errors import ConfigError


@app.command("report")
def report(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="A stream --timeseries file, or a directory holding one (and the "
            "--summary-json); two or more are shown side by side.",
            show_default=False,
        ),
    ],
    out: str = typer.Option(
        "report.html", "--out", "-o", help="The HTML file to write.", show_default=True
    ),
    png: str | None = typer.Option(
        None, "--png", help="Also write every chart as one PNG image here.", show_default=False
    ),
) -> None:
    """Write an HTML report: throughput by kind, latency and lag percentiles, errors, CDC lag
    (with cdc watch records), settings and summary; no network needed to open it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("report needs matplotlib: pip install 'loadgen[report]'") from None
    from loadgen.report.charts import write_png
    from loadgen.report.html import render
    from loadgen.report.runs import load_run

    loaded = [load_run(r) for r in runs]
    text = render(loaded)
    for target in (out, png):
        if target and not Path(target).resolve().parent.is_dir():
            raise ConfigError(f"report: directory of {target!r} does not exist")
    try:
        Path(out).write_text(text, encoding="utf-8")
        if png:
            write_png(png, loaded)
    except OSError as exc:
        raise ConfigError(f"report: cannot write: {exc.strerror or exc}") from None
    print(f"report: {out}" + (f", {png}" if png else ""), file=sys.stderr)
