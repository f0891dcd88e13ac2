"""Command line: a thin Typer layer. Parses, builds settings, calls one function, maps errors.

Each group of commands lives in its own module and registers itself on ``app`` when imported.
"""

from __future__ import annotations

from loadgen.cli.app import app, main

# Importing registers the commands on ``app`` (order = order in --help).
from loadgen.cli import db_cmds, seed_cmd, stream_cmd, cdc_cmd, scenario_cmd  # noqa: E402,F401,I001

__all__ = ["app", "main"]
