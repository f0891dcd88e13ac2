"""Command line: a thin Typer layer. Parses, builds settings, calls one function, maps errors.

Each group of commands lives in its own module and registers itself on ``app`` when imported.
"""

from __future__ import annotations

import importlib

from loadgen.cli.app import app, main

# Importing a module registers its commands on ``app``; this order is the order in --help.
COMMAND_MODULES = (
    "db_cmds",
    "seed_cmd",
    "stream_cmd",
    "ops_cmd",
    "cdc_cmd",
    "capture_cmd",
    "scenario_cmd",
)
for _name in COMMAND_MODULES:
    importlib.import_module(f"loadgen.cli.{_name}")

__all__ = ["app", "main"]
