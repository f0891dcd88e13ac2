"""Entry point of ``loadgen`` (the console script) and ``python -m loadgen``.

A ``loadgen stream`` command line spawns its spare workers next (``loadgen.stream.early_spares``),
about 0.1 s before the CLI's imports would let the command do it: its first operation waits
for a spare's imports. A line without the word ``stream`` imports nothing of
``loadgen.stream`` (``--help``, ``counts`` and ``check`` start at once).

Signals are recorded from the first line (``loadgen.interrupts.defer``), before the CLI's heavy
imports, so Ctrl-C or SIGTERM while Python starts is one line (exit 4), or a graceful stop of
``stream``, never a traceback or a silent death.

On the way out the heap is frozen (``gc.freeze``): the interpreter's shutdown then skips the
full collections that would walk every object the command's imports made (numpy, psycopg,
typer, rich...), ~0.15 s of CPU for ``stream`` (bench/bench_startup.py). Nothing is skipped
but the collector's walk: atexit handlers, flushes and finalizers run as before.

The command over, SIGINT and SIGTERM are ignored to the exit (``interrupts.ignore_for_exit``):
the recorder had been left in place, so nothing acted on them anyway, and one caught while the
interpreter finalizes would print a traceback.
"""

from __future__ import annotations

import gc
import sys
from types import ModuleType

from loadgen import interrupts


def main() -> None:
    """Run the command line given in ``sys.argv`` and exit with its code."""
    interrupts.defer()
    early_spares: ModuleType | None = None
    if "stream" in sys.argv[1:]:  # other commands import nothing of loadgen.stream
        from loadgen.stream import early_spares  # multiprocessing: once signals are recorded

    try:
        if early_spares is not None:
            early_spares.spawn_early(sys.argv[1:])  # `stream`: its spares import meanwhile
        from loadgen.cli import main as cli_main

        cli_main()
    finally:
        if early_spares is not None:
            early_spares.close_untaken()  # those no command took (bad input, --help): reaped
        gc.freeze()
        interrupts.ignore_for_exit()  # the command is over: a late signal must not race the exit


if __name__ == "__main__":
    main()
