"""Command line: a thin Typer layer. Parses, builds settings, calls one function, maps errors.

Each group of commands lives in its own module and registers itself on ``app`` when imported;
``loadgen.cli.app.COMMANDS`` says which module holds which command, and the root group imports
a module only when its command is looked up (so ``loadgen --help`` and ``loadgen counts``
start without numpy, Faker or rich).
"""

from __future__ import annotations

from loadgen.cli.app import app, main

__all__ = ["app", "main"]
