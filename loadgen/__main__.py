"""Entry point of ``loadgen`` (the console script) and ``python -m loadgen``.

Signals are recorded from the first line (``loadgen.interrupts.defer``), before the CLI's heavy
imports, so Ctrl-C or SIGTERM while Python starts is one line (exit 4), or a graceful stop of
``stream``, never a traceback or a silent death.
"""

from __future__ import annotations

from loadgen import interrupts


def main() -> None:
    """Run the command line given in ``sys.argv`` and exit with its code."""
    interrupts.defer()
    from loadgen.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
