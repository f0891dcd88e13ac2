"""``loadgen stream``'s spares spawned by the console entry point, before the CLI is imported.

The CLI's own imports (typer, click, the command modules) take about 0.1 s before
``loadgen stream`` could spawn its spares (``loadgen.stream.spares``); a stream's first
operation waits for a spare's imports, so ``loadgen.__main__`` reads the raw command line
first (``spares_wanted``) and, for a stream run, spawns the spares at once (``spawn_early``).
The command takes them (``take``) instead of spawning its own; the entry point reaps whatever
nothing took (``close_untaken``: a typo in an option, ``--help``, an error before the run).

The raw command line is read the way the CLI will read it, for what it decides here only: the
command's name after the global options, ``--workers``/``-w`` and ``--max-ops``. Anything
unexpected (an unknown global option, a value that is not a number) reads as "no early
spares" or as the default guess: typer parses the same line moments later and gives the
error; a wrong guess costs an idle process, killed when the fleet is planned.

Standard library only. Main thread of the CLI's process.
"""

from __future__ import annotations

from loadgen.stream.spares import Spares, spare_count

GLOBAL_OPTIONS_WITH_VALUE = ("--dsn", "--config", "--log-level")  # loadgen.cli.app's callback
HELP_OPTIONS = ("-h", "--help")

_early: Spares | None = None  # spawned by spawn_early, not taken yet


def _int_value(args: list[str], i: int, long: str, short: str | None) -> tuple[int | None, int]:
    """The integer value of the option at ``args[i]`` if it is ``long``/``short`` (else
    ``(None, i)``), and the index of the argument after it."""
    arg = args[i]
    text: str | None = None
    if arg == long or (short is not None and arg == short):
        if i + 1 >= len(args):
            return None, i + 1
        text, i = args[i + 1], i + 1
    elif arg.startswith(long + "="):
        text = arg[len(long) + 1 :]
    elif short is not None and arg.startswith(short) and len(arg) > len(short):
        text = arg[len(short) :]
    else:
        return None, i
    try:
        return int(text), i + 1
    except ValueError:
        return None, i + 1


def spares_wanted(argv: list[str]) -> int:
    """Spares to spawn early for the command line ``argv`` (without the program name): 0 unless
    it runs ``loadgen stream`` (not its ``--help``); else ``spare_count`` of its ``--workers``
    and ``--max-ops`` (the defaults when absent or not a number)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # the global options, before the command
        arg = argv[i]
        if arg in GLOBAL_OPTIONS_WITH_VALUE:
            i += 2
        elif arg.split("=", 1)[0] in GLOBAL_OPTIONS_WITH_VALUE:
            i += 1
        else:  # --help, or an option the CLI will reject: no run
            return 0
    if i >= len(argv) or argv[i] != "stream":
        return 0
    workers = max_ops = None
    rest = argv[i + 1 :]
    j = 0
    while j < len(rest):
        if rest[j] in HELP_OPTIONS:
            return 0
        if rest[j] == "--":
            break
        value, k = _int_value(rest, j, "--workers", "-w")
        if k != j:
            workers, j = value, k
            continue
        value, k = _int_value(rest, j, "--max-ops", None)
        if k != j:
            max_ops, j = value, k
            continue
        j += 1
    return spare_count(workers, max_ops)


def spawn_early(argv: list[str]) -> None:
    """Spawn the spares ``spares_wanted(argv)`` asks for (none: nothing happens)."""
    global _early
    count = spares_wanted(argv)
    if count > 0 and _early is None:
        _early = Spares().start(count)


def take() -> Spares | None:
    """The spares ``spawn_early`` spawned, handed over once (then None)."""
    global _early
    spares, _early = _early, None
    return spares


def close_untaken() -> None:
    """Reap the early spares no command took (``Spares.close``)."""
    spares = take()
    if spares is not None:
        spares.close()
